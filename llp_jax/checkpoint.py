"""The trained encoder of a run, saved with orbax into the run folder and loaded back from it."""

from __future__ import annotations

import json
from pathlib import Path

import orbax.checkpoint as ocp
from flax import nnx
from omegaconf import OmegaConf

from llp_jax.models import make_encoder

CHECKPOINT_DIR = "encoder"


def save_encoder(model: nnx.Module, run_dir: str | Path) -> Path:
    """Write the encoder's state to run_dir/encoder (an orbax checkpoint); returns that path."""
    path = Path(run_dir).resolve() / CHECKPOINT_DIR
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, nnx.state(model), force=True)
    checkpointer.wait_until_finished()
    return path


def load_encoder(run_dir: str | Path) -> nnx.Module:
    """The encoder a finished run saved, rebuilt from its config_resolved.yaml and metrics.json.

    Use it like any encoder: logits, embedding = load_encoder(run_dir)(x).
    """
    run_dir = Path(run_dir).resolve()
    for name in ("config_resolved.yaml", "metrics.json", CHECKPOINT_DIR):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name} is missing; give the folder of a finished run")
    cfg = OmegaConf.load(run_dir / "config_resolved.yaml")
    feature_shape = tuple(json.loads((run_dir / "metrics.json").read_text())["feature_shape"])
    model = make_encoder(cfg.model, feature_shape, seed=0)
    graphdef, abstract_state = nnx.split(model)
    state = ocp.StandardCheckpointer().restore(run_dir / CHECKPOINT_DIR, abstract_state)
    return nnx.merge(graphdef, state)
