"""The trained encoder of a run, saved with orbax into the run folder and loaded back from it."""

from __future__ import annotations

import json
from pathlib import Path

import jax
from flax import nnx

from llp_jax.models import MODELS, Encoder, make_encoder, model_name
from llp_jax.train.checkpoints import orbax_checkpoint, process_local

CHECKPOINT_DIR = "encoder"
# Beside the orbax folder: what rebuilds the module the state belongs to.
METADATA_FILE = "encoder.json"


def save_encoder(model: Encoder, run_dir: str | Path) -> Path:
    """Write the encoder's state to run_dir/encoder (an orbax checkpoint) and its model name, settings and
    feature_shape and n_classes to run_dir/encoder.json; returns the checkpoint's path."""
    run_dir = Path(run_dir).resolve()
    metadata = {
        "model": model_name(model.settings),
        "settings": model.settings._asdict(),
        "feature_shape": list(model.feature_shape),
        "n_classes": model.n_classes,
    }
    (run_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    checkpointer = orbax_checkpoint().StandardCheckpointer(multiprocessing_options=process_local())
    checkpointer.save(run_dir / CHECKPOINT_DIR, jax.device_get(nnx.state(model)), force=True)  # host arrays
    checkpointer.wait_until_finished()
    return run_dir / CHECKPOINT_DIR


def load_encoder(run_dir: str | Path) -> Encoder:
    """The encoder a finished run saved, rebuilt from its encoder.json and orbax state.

    Use it like any encoder: logits, embedding = load_encoder(run_dir)(x).
    """
    run_dir = Path(run_dir).resolve()
    for name in (METADATA_FILE, CHECKPOINT_DIR):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name} is missing; give the folder of a finished run")
    metadata = json.loads((run_dir / METADATA_FILE).read_text())
    settings = MODELS[metadata["model"]].settings(**metadata["settings"])
    # Shapes only: the restored state replaces every parameter.
    # n_classes: 2 for encoders saved before K-class heads
    shape, n_classes = metadata["feature_shape"], metadata.get("n_classes", 2)
    abstract = nnx.eval_shape(lambda: make_encoder(settings, shape, rngs=0, n_classes=n_classes))
    graphdef, abstract_state = nnx.split(abstract)
    state = orbax_checkpoint().StandardCheckpointer().restore(run_dir / CHECKPOINT_DIR, abstract_state)
    return nnx.merge(graphdef, state)
