"""Where metrics go: metrics.jsonl (streamed, one record a line), metrics.json (final), wandb optionally."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    """JSON-safe scalars: numpy numbers to Python numbers, NaN and infinity to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


class MetricsWriter:
    """Appends records to run_dir/metrics.jsonl as they come (flushed, so nothing finished is lost) and
    writes the final summary to run_dir/metrics.json. With wandb=True also logs to Weights & Biases
    (imported only then; mode 'offline' by default)."""

    def __init__(
        self, run_dir: str | Path, wandb_settings: dict | None = None, run_config: dict | None = None
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._wandb = None
        if wandb_settings is not None:
            import wandb

            self._wandb = wandb.init(config=run_config, dir=str(self.run_dir), **wandb_settings)

    def log(self, record: dict) -> None:
        self._jsonl.write(json.dumps(_plain(record)) + "\n")
        self._jsonl.flush()
        if self._wandb is not None:
            self._wandb.log({key: value for key, value in record.items() if isinstance(value, (int, float))})

    def finish(self, summary: dict) -> None:
        (self.run_dir / "metrics.json").write_text(json.dumps(_plain(summary), indent=2) + "\n")
        self.log({"event": "final", **summary})
        self._jsonl.close()
        if self._wandb is not None:
            self._wandb.summary.update(_plain(summary))
            self._wandb.finish()
