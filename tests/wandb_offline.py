"""Reading back what wandb wrote offline: the offline-run-* folders under a folder and the records of their
.wandb files (the run, its history rows and summary updates), so that tests check what `wandb sync` would
upload rather than what the wandb objects in memory hold."""

import json
from pathlib import Path
from typing import NamedTuple

BLOCK = 32768  # a .wandb file is a LevelDB-style log: blocks of chunks with a 7-byte header each
FULL, LAST = 1, 4


class OfflineRun(NamedTuple):
    """One offline-run-* folder: the run's id, whether it was started with resume, its history rows
    (step, {key: value}) in order and its summary (every update applied in order)."""

    folder: Path
    run_id: str
    resume: bool
    history: list[tuple[int, dict]]
    summary: dict


def wandb_records(path: Path) -> list:
    """The records (wandb_internal_pb2.Record) of a .wandb file."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is no .wandb file"
    position, chunks, records = 7, b"", []
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:  # a block's trailer
            position += left
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        chunks += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
            chunks = b""
    return records


def _items(items) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def offline_runs(folder: Path) -> list[OfflineRun]:
    """Every offline-run-* folder under `folder`, oldest first (their names begin with the start time)."""
    runs = []
    for run_folder in sorted(folder.rglob("offline-run-*"), key=lambda path: path.name):
        (wandb_file,) = run_folder.glob("*.wandb")
        run_id, resume, history, summary = None, False, [], {}
        for record in wandb_records(wandb_file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run_id, resume = record.run.run_id, record.run.resume
            elif kind == "history":
                history.append((record.history.step.num, _items(record.history.item)))
            elif kind == "summary":
                summary.update(_items(record.summary.update))
        runs.append(OfflineRun(run_folder, run_id, resume, history, summary))
    return runs
