"""Where metrics go: metrics.jsonl (streamed, one record a line), metrics.json (final), wandb optionally.

A run folder belongs to one run: the writer claims it by creating metrics.jsonl exclusively, and refuses a
folder that already holds a run's files, so no finished result is ever appended to or overwritten.
A run that fails leaves failed.json (status, error, traceback and the run's provenance) instead of
metrics.json.
With wandb, the run folder also keeps the wandb run's id (wandb_run.json), so that a resumed run continues
the same wandb run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import string
import traceback
from pathlib import Path
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """JSON-safe scalars: numpy numbers to Python numbers, NaN and infinity to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


RUN_FILES = ("metrics.jsonl", "metrics.json", "failed.json")
logger = logging.getLogger("llp_jax")


# How an empty string reads in a log line, by key: LLP-BP's candidate "" is the schedule's own settings.
EMPTY_VALUES = {"schedule": "(defaults)"}


def log_value(key: str, value: int | float | str) -> str:
    """A value of a log line: a float to 4 significant digits, an empty string as EMPTY_VALUES says or
    as "" (never as nothing at the end of a line)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if value == "":
        return EMPTY_VALUES.get(key, '""')
    return str(value)


def log_line(record: dict) -> str:
    """A record as one readable log line: its round and epoch or event first, then key value pairs."""
    head = [f"{key} {record[key]}" for key in ("round", "epoch", "event") if key in record]
    rest = [
        f"{key} {log_value(key, value)}"
        for key, value in record.items()
        if key not in ("round", "epoch", "event") and isinstance(value, int | float | str)
    ]
    return ", ".join(head) + ": " + " ".join(rest)


GLOB_CHARACTERS = "[]*?"


def check_folder_name(run_dir: Path) -> None:
    """ValueError when run_dir's path holds a glob character: orbax finds the pieces of a checkpoint by
    glob, so a checkpoint saved there cannot be read back (an encoder saved under ".../widths=[16,8]/" lost
    its manifest and load_encoder failed). Sweep job folders never hold one (llp_jax.config.folder_name)."""
    found = sorted({character for character in str(run_dir) if character in GLOB_CHARACTERS})
    if found:
        raise ValueError(
            f"the run folder {run_dir} holds {' '.join(found)}: orbax cannot save a checkpoint under such a "
            "path (it finds the checkpoint's pieces by glob); give hydra.run.dir or hydra.sweep.dir without "
            f"the characters {GLOB_CHARACTERS}"
        )


def check_writable(folder: Path, setting: str) -> None:
    """PermissionError or NotADirectoryError naming `folder` (and the `setting` that chose it) when a run
    could not create it or write into it: its nearest existing ancestor must be a folder this user may
    write to. Checked before any work, because the first thing that writes there (the log's file handler)
    would fail with a message naming neither."""
    existing = folder.expanduser().absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(
            f"the run folder {folder} cannot be created: {existing} is a file, not a folder; choose another "
            f"folder ({setting}=...)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            f"the run folder {folder} cannot be written: {existing} is not writable by this user; choose "
            f"another folder ({setting}=...) or change its permissions"
        )


def claim_run_dir(run_dir: Path):
    """Create run_dir if needed and open run_dir/metrics.jsonl exclusively for writing; FileExistsError
    naming the folder when it holds another run's files (also when two runs start in it at once)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    taken = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not taken:
        try:
            return open(run_dir / "metrics.jsonl", "x", encoding="utf-8")
        except FileExistsError:  # another run claimed it since the check
            taken = ["metrics.jsonl"]
    unfinished = "" if "metrics.json" in taken else "; or add train.resume=true to continue that run"
    raise FileExistsError(
        f"{run_dir} already holds a run ({', '.join(taken)}); results are never overwritten: give this run "
        f"its own folder (hydra.run.dir=... or another sweep dir){unfinished}"
    )


def records_written(run_dir: Path) -> int:
    """The number of records in run_dir/metrics.jsonl (0 when there is none)."""
    jsonl = run_dir / "metrics.jsonl"
    return len(jsonl.read_text(encoding="utf-8").splitlines()) if jsonl.exists() else 0


def reopen_run_dir(run_dir: Path, keep: int):
    """Reopen an unfinished run's metrics.jsonl for a resumed run: its first `keep` records (those its
    latest checkpoint covers) are kept and the file is rewritten with them, never appended to blindly;
    failed.json goes. FileNotFoundError or FileExistsError where there is nothing to resume."""
    jsonl = run_dir / "metrics.jsonl"
    if (run_dir / "metrics.json").exists():
        raise FileExistsError(f"{run_dir} holds a finished run (metrics.json): there is nothing to resume")
    if not jsonl.exists():
        raise FileNotFoundError(f"{run_dir / 'metrics.jsonl'} is missing: there is no run to resume there")
    kept = jsonl.read_text(encoding="utf-8").splitlines(keepends=True)[:keep]
    partial = run_dir / "metrics.jsonl.tmp"
    partial.write_text("".join(kept), encoding="utf-8")
    os.replace(partial, jsonl)
    (run_dir / "failed.json").unlink(missing_ok=True)
    return open(jsonl, "a", encoding="utf-8")


WANDB_RUN_FILE = "wandb_run.json"


def wandb_mode(configured: str | None) -> str:
    """The wandb mode of a run: the config's logger.mode when it names one, else the environment's WANDB_MODE
    when set (WANDB_MODE=disabled turns wandb off for every run started from that shell or job), else
    "offline" (wandb's own default would be online)."""
    return configured or os.environ.get("WANDB_MODE") or "offline"


def wandb_run_state(run_dir: Path, resume: tuple[int, int] | None) -> tuple[str, int]:
    """(id, step offset) of the wandb run of the run in run_dir, kept in run_dir/wandb_run.json: record i
    of metrics.jsonl goes to wandb step i + offset. A new run draws a new id, offset 0. A resumed run,
    resume = (records its first start wrote to metrics.jsonl, records replayed), reads the id that its
    first start wrote, so that wandb continues that run, and moves the offset so that its steps go on
    after the last one its first start logged (the records after the checkpoint that it computes again
    included); one whose first start did not use wandb starts a new wandb run."""
    path = run_dir / WANDB_RUN_FILE
    run_id, offset = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8)), 0
    if resume is not None and path.exists():
        saved = json.loads(path.read_text(encoding="utf-8"))
        run_id, offset = saved["id"], saved["step_offset"] + resume[0] - resume[1]
    partial = run_dir / f"{WANDB_RUN_FILE}.tmp"
    partial.write_text(json.dumps({"id": run_id, "step_offset": offset}) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return run_id, offset


def start_wandb(run_dir: Path, settings: dict, run_config: dict | None, resume: tuple[int, int] | None):
    """(the wandb run of a run folder, its step offset), wandb imported only here, or (None, 0) when the
    mode (`wandb_mode`) is disabled. A resumed run passes the id kept in the folder (`wandb_run_state`)
    with resume="allow": online, wandb continues that run; offline, it writes a second offline-run-*-<id>
    folder, which `wandb sync` uploads into the same run."""
    mode = wandb_mode(settings.get("mode"))
    if mode == "disabled":
        return None, 0
    import wandb

    run_id, offset = wandb_run_state(run_dir, resume)
    settings = {**settings, "mode": mode, "id": run_id} | ({"resume": "allow"} if resume is not None else {})
    return wandb.init(config=run_config, dir=str(run_dir), **settings), offset


def wandb_prefix(record: dict) -> str:
    """Where a record's keys go in wandb: under candidate<c>/ for a record of candidate c of LLP-BP's
    schedule (schedule.candidates), then under round<r>/ for a record of round r; "" otherwise. The
    "chosen" event names a candidate but belongs to the run."""
    prefix = ""
    if "candidate" in record and record.get("event") != "chosen":
        prefix += f"candidate{record['candidate']}/"
    if "round" in record:
        prefix += f"round{record['round']}/"
    return prefix


def wandb_numbers(record: dict) -> dict:
    """The numbers of a record (booleans, strings and lists left out), without the round and candidate that
    `wandb_prefix` puts in the keys."""
    numbers = {key: value for key, value in record.items() if isinstance(value, int | float)}
    return {
        key: value
        for key, value in numbers.items()
        if not isinstance(value, bool) and key not in ("round", "candidate")
    }


def check_log_every(log_every: Any) -> None:
    """ValueError unless `log_every` (logger.log_every: an INFO line every this many epochs) is an integer
    >= 1."""
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
        raise ValueError(
            f"logger.log_every={log_every!r} must be an integer >= 1 (an INFO log line every this many "
            "epochs), e.g. logger.log_every=10"
        )


class MetricsWriter:
    """Streams records to run_dir/metrics.jsonl as they come (flushed, so nothing finished is lost) and
    writes the final summary to run_dir/metrics.json, or failed.json for a run that failed. The folder
    must not hold another run (`claim_run_dir`). Events (a BP round, the calibration) and epochs 1,
    1 + log_every, ... also go to the `llp_jax` logger at INFO, so a cluster log is readable without
    progress bars. With wandb settings also logs to Weights & Biases (`start_wandb`: imported only then;
    the mode by `wandb_mode`), record i of metrics.jsonl at step i (`wandb_run_state`: a resumed run's
    steps go on after its first start's)."""

    def __init__(
        self,
        run_dir: str | Path,
        wandb_settings: dict | None = None,
        run_config: dict | None = None,
        log_every: int = 10,
        resume_from: int | None = None,
        log_encoder: bool = False,
    ):
        self.run_dir = Path(run_dir)
        check_folder_name(self.run_dir)
        check_log_every(log_every)
        self.log_every, self.log_encoder = log_every, log_encoder
        self.records = 0  # records logged so far, those of a resumed run's replay included
        self._replay = 0
        resume = None
        if resume_from is None:
            self._jsonl = claim_run_dir(self.run_dir)
        else:
            resume = (records_written(self.run_dir), resume_from)
            self._jsonl, self._replay = reopen_run_dir(self.run_dir, resume_from), resume_from
        self.wandb_run, self._wandb_offset = None, 0
        if wandb_settings is not None:
            self.wandb_run, self._wandb_offset = start_wandb(self.run_dir, wandb_settings, run_config, resume)
        self._wandb_prefixes: set[str] = set()
        self._candidates: dict[int, dict] = {}  # candidate -> its latest numbers, keyed as in wandb

    def log(self, record: dict) -> None:
        self.records += 1
        if self.wandb_run is not None:
            self._remember_candidate(record)
        if self._jsonl.closed or self.records <= self._replay:  # a resumed run's replay: already on disk
            return
        self._jsonl.write(json.dumps(json_safe(record)) + "\n")
        self._jsonl.flush()
        event = record.get("event")
        if event not in (None, "final") or record.get("epoch", 0) % self.log_every == 1 % self.log_every:
            logger.info(log_line(record))
        if self.wandb_run is not None:
            self.wandb_run.log(self._wandb_keys(record), step=self.records + self._wandb_offset, commit=True)

    def _wandb_keys(self, record: dict) -> dict:
        """The numbers of a record for wandb under its `wandb_prefix`: round<r>/ when it belongs to a round
        of LLP-BP, candidate<c>/ before that when it belongs to a candidate of schedule.candidates, so that
        neither the rounds' nor the candidates' curves overwrite each other; each round's curves are drawn
        against its epochs. A BP record's message changes become a line plot and its marginals' histogram
        a histogram. The "chosen" event's candidate is chosen_candidate."""
        prefix = wandb_prefix(record)
        values = wandb_numbers(record) | self._wandb_media(record)
        keys = {prefix + key: value for key, value in values.items()}
        if record.get("event") == "chosen":
            keys["chosen_candidate"] = record["candidate"]
        if "round" in record and prefix not in self._wandb_prefixes:
            self._wandb_prefixes.add(prefix)
            self.wandb_run.define_metric(f"{prefix}epoch")
            self.wandb_run.define_metric(f"{prefix}*", step_metric=f"{prefix}epoch")
        return keys

    def _remember_candidate(self, record: dict) -> None:
        """Keep the latest numbers of each candidate (a resumed run's replay included), keyed as in wandb
        without candidate<c>/, and make the chosen one's the summary when the "chosen" event comes."""
        if record.get("event") == "chosen":
            self._summarise_chosen(record["candidate"])
        elif "candidate" in record:
            prefix = f"round{record['round']}/" if "round" in record else ""
            numbers = {prefix + key: value for key, value in wandb_numbers(record).items()}
            self._candidates.setdefault(record["candidate"], {}).update(numbers)

    def _summarise_chosen(self, candidate: int) -> None:
        """The chosen candidate's latest numbers as the run's summary, without candidate<c>/ (round0/...,
        scale, shift), and chosen_candidate: what the run returns is that candidate's model."""
        chosen = {**self._candidates.get(candidate, {}), "chosen_candidate": candidate}
        self.wandb_run.summary.update(json_safe(chosen))

    def _wandb_media(self, record: dict) -> dict:
        import wandb

        media = {}
        if "bp_deltas" in record:
            table = wandb.Table(data=list(enumerate(record["bp_deltas"], 1)), columns=["iteration", "delta"])
            media["bp_deltas"] = wandb.plot.line(
                table, "iteration", "delta", title="BP: largest message change"
            )
        if "bp_marginals_histogram" in record:
            counts = np.asarray(record["bp_marginals_histogram"])
            edges = np.linspace(0.0, 1.0, len(counts) + 1)
            media["bp_marginals"] = wandb.Histogram(np_histogram=(counts, edges))
        return media

    def finish(self, summary: dict) -> None:
        (self.run_dir / "metrics.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n")
        self.log({"event": "final", **summary})
        self._close()
        if self.wandb_run is not None:
            self.wandb_run.summary.update(json_safe(summary))
            if self.log_encoder and (self.run_dir / "encoder").exists():
                import wandb

                artifact = wandb.Artifact(f"encoder-{self.wandb_run.id}", type="model")
                artifact.add_dir(str(self.run_dir / "encoder"))
                artifact.add_file(str(self.run_dir / "encoder.json"))
                self.wandb_run.log_artifact(artifact)
            self.wandb_run.finish()

    def fail(self, error: BaseException, details: dict | None = None, status: str = "failed") -> None:
        """Record a failed run: failed.json with its status ("failed", or "preempted" for a run stopped by
        SIGTERM: llp_jax.preemption), `details` (the run's method, dataset, seed, tags and provenance:
        llp_jax.experiment.failure_details), error and traceback; wandb is closed too."""
        record = {
            "status": status,
            **json_safe(details or {}),
            "error": f"{type(error).__name__}: {error}",
            "traceback": "".join(traceback.format_exception(error)),
        }
        (self.run_dir / "failed.json").write_text(json.dumps(record, indent=2) + "\n")
        self.log({"event": status, "error": record["error"]})
        self._close()
        if self.wandb_run is not None:
            self.wandb_run.finish(exit_code=1)

    def _close(self) -> None:
        if not self._jsonl.closed:
            self._jsonl.close()
