"""The data fingerprint: sha256 of the files a run read (or of its arrays), compared when it resumes."""

import hashlib
import json
import os
import time

import numpy as np
import pytest

from llp_jax.data import load_dataset
from llp_jax.data.paths import recording_files
from llp_jax.provenance import (
    FINGERPRINT_FILE,
    arrays_sha256,
    check_same_data,
    data_fingerprint,
    file_sha256,
    record_data_fingerprint,
)


def test_a_files_sha256_is_that_of_its_bytes_and_follows_a_rewrite(tmp_path):
    path = tmp_path / "bags.csv"
    content = os.urandom(3 << 20)  # several chunks of hashlib.file_digest
    path.write_bytes(content)
    assert file_sha256(path) == hashlib.sha256(content).hexdigest()
    path.write_bytes(b"bag_id,count\n1,0\n")  # the same path, rewritten: read again, not the kept digest
    assert file_sha256(path) == hashlib.sha256(b"bag_id,count\n1,0\n").hexdigest()


def test_the_fingerprint_holds_the_files_a_loader_read_or_the_arrays(tmp_path):
    for name, text in {
        "train.csv": "bag_id,f\n1,0.5\n1,1.5\n2,2.0\n2,0.1\n",
        "bags.csv": "bag_id,count\n1,1\n2,0\n",
    }.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "test.csv").write_text("f,label\n0.3,0\n1.2,1\n")
    paths = {"train_path": "train.csv", "bags_path": "bags.csv", "test_path": "test.csv"}
    with recording_files() as files:
        data = load_dataset("files", data_dir=tmp_path, val_fraction=0.5, **paths)
    fingerprint = data_fingerprint(data, files)
    assert fingerprint == {str(tmp_path / name): file_sha256(tmp_path / name) for name in paths.values()}
    synthetic = load_dataset("synthetic", n=1000)
    assert list(data_fingerprint(synthetic, [])) == ["synthetic arrays"]
    changed = synthetic.train.x.copy()
    changed[0, 0] += 1.0
    other = type(synthetic)(
        synthetic.name, type(synthetic.train)(changed, synthetic.train.y), synthetic.val, synthetic.test
    )
    assert (
        arrays_sha256(other) != arrays_sha256(synthetic) == arrays_sha256(load_dataset("synthetic", n=1000))
    )


def test_resuming_on_other_data_is_refused_naming_the_file(tmp_path):
    data = tmp_path / "bags.csv"
    data.write_text("bag_id,count\n1,1\n")
    run = tmp_path / "run"
    run.mkdir()
    check_same_data(run)  # a run started before fingerprints were kept: nothing to compare
    record_data_fingerprint(run, {str(data): file_sha256(data)})
    saved = json.loads((run / FINGERPRINT_FILE).read_text())
    check_same_data(run)  # unchanged
    record_data_fingerprint(run, saved)  # a resumed run's fingerprint, equal to its first start's
    data.write_text("bag_id,count\n1,0\n")
    digest = "[0-9a-f]{12}"
    changed = rf"changed since it started: {data} \(sha256 {digest}\.\.\. when the run started, {digest}"
    with pytest.raises(ValueError, match=changed + r"\.\.\. now\).*start a new run in another folder"):
        check_same_data(run)
    data.unlink()
    with pytest.raises(ValueError, match=r"bags.csv \(missing now\)"):
        check_same_data(run)
    with pytest.raises(ValueError, match=r"synthetic arrays \(not read when the run started\)"):
        record_data_fingerprint(run, {"synthetic arrays": "0" * 64})


def test_the_arrays_of_45k_rows_are_hashed_in_well_under_a_second():
    rng = np.random.default_rng(0)
    data = load_dataset("synthetic", n=1000)
    big = type(data.train)(rng.normal(size=(45_000, 100)).astype(np.float32), np.zeros(45_000, np.int32))
    data = type(data)(data.name, big, data.val, data.test)
    start = time.perf_counter()
    arrays_sha256(data)
    assert time.perf_counter() - start < 1.0  # about 0.03 s (2-core CPU)
