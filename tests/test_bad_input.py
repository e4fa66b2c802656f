"""Bad input: every case of the README's "Bad input" list (ids shared with this file) fails before training
with its error type and the words that name the value, key or file and the fix.

Each case goes only as far as the stage where it must fail, on the path a run takes: the config composed as
the command line composes it (compose), `resolve` (settings, before any data is loaded), `load_inputs` (the
run's data and bags: files and features) or `run_experiment` (run folders). The files cases edit the fixture
tables (tests/fixtures/files) in a copy.
"""

import io
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

from llp_jax.config import compose, resolve
from llp_jax.degenerate import DegenerateSetupError, DegenerateWarning
from llp_jax.experiment import load_inputs, run_experiment
from llp_jax.writers import check_writable

README = Path(__file__).parents[1] / "README.md"
FIXTURES = Path(__file__).parent / "fixtures" / "files"

SETTINGS = ("debug=fast", "method=llp_bp")  # synthetic data and every settings group, LLP-BP's included
FILES = (
    "dataset=files",
    "bagging=given",
    "method=dllp",
    "dataset.train_path=train.csv",
    "dataset.bags_path=bags.csv",
    "dataset.test_path=test.csv",
    "dataset.categorical_columns=[color]",
)
VAL = ("dataset.val_path=val.csv", "dataset.val_bags_path=val_bags.csv")
SMALL = ("dataset.n=1400",)  # synthetic data of 1,400 rows (980 in the training split)
TRAIN = (FIXTURES / "train.csv").read_text()
TRAIN_FRAME = pd.read_csv(FIXTURES / "train.csv")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def many_rows_train(rows_per_bag: int = 20) -> str:
    """The fixture's bags 10..17 with `rows_per_bag` rows each, a distinct income per row."""
    lines = ["bag_id,age,income,color"]
    for bag in range(10, 18):
        lines += [f"{bag},{20 + row},{bag + row / 100:.2f},red" for row in range(rows_per_bag)]
    return "\n".join(lines) + "\n"


def bags_table(counts: dict[int, int]) -> str:
    return "bag_id,count\n" + "".join(f"{bag},{count}\n" for bag, count in counts.items())


BAG_SIZES = TRAIN_FRAME.groupby("bag_id").size().to_dict()
CLASS_COUNTS = ("dataset.count_columns=[n0,n1,n2]",)  # a wide K-class bag table, one column per class


def class_table(**changed: list[int]) -> str:
    """A wide bag table of 3 classes: each bag's rows in class 0 but one in class 1 (class 2 in bags 15
    and 16), with the counts of the bags `changed` (bag id as b<id> -> counts) replaced."""
    rows = {bag: [size - 1, 0, 1] if bag in (15, 16) else [size - 1, 1, 0] for bag, size in BAG_SIZES.items()}
    rows.update({int(name[1:]): counts for name, counts in changed.items()})
    return "bag_id,n0,n1,n2\n" + "".join(f"{bag},{','.join(map(str, c))}\n" for bag, c in rows.items())


NON_FINITE = (
    r"split has 1 row\(s\) with NaN or infinite features, the first is row {} of the split; remove or impute"
)


class Case(NamedTuple):
    """overrides: the command line's; error and words: the exception and a regex its message (with its
    cause's, for Hydra's) must hold; stage: where it must fail (compose, resolve, load, run or folder);
    edits: table name -> its new text (or bytes), or (old, new) to replace in the fixture table; links:
    symbolic links name -> target made in the data folder; run_files: files already in the run folder;
    run_folder: its name."""

    overrides: tuple[str, ...]
    error: type[Exception]
    words: str
    stage: str = "resolve"
    edits: dict[str, str | bytes | tuple[str, str]] = {}
    run_files: dict[str, str] = {}
    run_folder: str = "run"
    links: dict[str, str] = {}


def settings(*overrides: str) -> tuple[str, ...]:
    return (*SETTINGS, *overrides)


def files(*overrides: str) -> tuple[str, ...]:
    return (*FILES, *overrides)


CASES = {
    # Settings: fail when the config is composed or resolved.
    "seed-negative": Case(
        settings("seed=-1"), ValueError, "seed=-1 must be a non-negative integer; use e.g. seed=0"
    ),
    "method-unknown": Case(
        ("method=dlp",), MissingConfigException, r"Could not find 'method/dlp'.*dllp", stage="compose"
    ),
    "seed-huge": Case(
        settings("seed=99999999999999999999"),
        ValueError,
        r"seed=99999999999999999999 is above 9223372036854775807 \(2\*\*63 - 1\), the largest seed JAX "
        r"takes; use e.g. seed=0",
    ),
    "model-widths-zero": Case(
        settings("model.widths=[0]"),
        ValueError,
        r"model.widths=\[0\]: every size must be an integer >= 1, e.g. model.widths=\[256,128,64\]",
    ),
    "model-widths-negative": Case(
        settings("model.widths=[-4]"), ValueError, r"model.widths=\[-4\]: every size must be an integer >= 1"
    ),
    "logger-log-every": Case(
        settings("logger.log_every=0"),
        ValueError,
        r"logger.log_every=0 must be an integer >= 1 .* e.g. logger.log_every=10",
    ),
    "optimized-metric": Case(
        settings("optimized_metric=test_auc"),
        ValueError,
        r"optimized_metric='test_auc'; a sweeper may only optimise a validation criterion.*'selection_loss'",
    ),
    "shard-unknown": Case(settings("shard=all"), ValueError, r"shard='all'; choose one of \('auto', 'off'\)"),
    "override-unicode": Case(
        settings("bagging=feature", "bagging.columns=[état]"),
        OverrideParseException,
        r"LexerNoViableAltException: bagging.columns=\[état\]",
        stage="compose",
    ),
    "bagging-bag-size": Case(
        settings("bagging.bag_size=0"),
        ValueError,
        r"bagging.bag_size=0 must be an integer >= 1 \(rows per bag\), e.g. bagging.bag_size=32",
    ),
    "bagging-size-range-malformed": Case(
        settings("bagging.size_range=[500]"),
        ValueError,
        r"bagging.size_range=\[500\]; expected two integers \[low, high\] .* "
        r"e.g. bagging.size_range=\[500,1500\]",
    ),
    "bagging-size-range-order": Case(
        settings("bagging.size_range=[1500,500]"),
        ValueError,
        r"bagging.size_range=\[1500, 500\]; expected two integers \[low, high\] with 1 <= low <= high",
    ),
    "bagging-feature-columns": Case(
        settings("bagging=feature", "bagging.columns=[]"),
        ValueError,
        r"bagging.columns=\[\]; feature bags group rows by 1 or 2 categorical columns, "
        r"e.g. 'bagging.columns=",
    ),
    "bagging-feature-sizes": Case(
        settings("bagging=feature", "bagging.min_size=100", "bagging.max_size=10"),
        ValueError,
        r"bagging.min_size=100 and bagging.max_size=10: need 1 <= min_size <= max_size .* "
        r"e.g. bagging.min_size=8",
    ),
    "graph-k": Case(settings("graph.k=0"), ValueError, r"graph.k=0 must be an integer >= 1"),
    "graph-kernel-unknown": Case(
        settings("graph.kernel=laplace"),
        ConfigCompositionException,
        r"Invalid value 'laplace', expected one of \[matern12, rbf, cosine\]",
        stage="compose",
    ),
    "graph-kernel-distance": Case(
        settings("graph.kernel=cosine", "graph.weight_distance=euclidean"),
        ValueError,
        r"graph.kernel='cosine' .* needs weight_distance='cosine'; got weight_distance='euclidean'. "
        r"Use kernel=",
    ),
    "graph-lengthscale": Case(
        settings("graph.lengthscale=0"),
        ValueError,
        r"graph.lengthscale=0 must be positive and finite \(or 'median'\)",
    ),
    "bp-damping": Case(settings("bp.damping=1.0"), ValueError, r"bp.damping=1.0; expected 0 <= damping < 1"),
    "bp-lambda": Case(
        settings("bp.lambda_b=-1"), ValueError, r"bp.lambda_b=-1.0; expected a finite number >= 0"
    ),
    "bp-temperature": Case(settings("bp.temperature=-1"), ValueError, r"bp.temperature=-1.0; expected >= 0"),
    "bp-max-iters": Case(settings("bp.max_iters=0"), ValueError, r"bp.max_iters=0; expected an integer >= 1"),
    "bp-hard-counts": Case(
        settings("bp=clique", "bp.hard_counts=true"),
        ValueError,
        r"bp.hard_counts=True with bag_factor='clique': .* "
        r"use bag_factor='count' or 'gaussian' for hard counts",
    ),
    "schedule-rounds": Case(
        settings("schedule.rounds=0"), ValueError, r"schedule.rounds=0 must be at least 1"
    ),
    "schedule-rounds-huge": Case(
        settings("schedule.rounds=1000000000"),
        ValueError,
        r"schedule.rounds=1000000000 is above 100, the most rounds a run may take .* "
        r"use e.g. schedule.rounds=2",
    ),
    "schedule-candidate": Case(
        settings("schedule=auto", 'schedule.candidates=["","rounds=two"]'),
        ValueError,
        r"rounds='two' is not a valid int",
    ),
    "train-learning-rate": Case(
        settings("train.learning_rate=0"),
        ValueError,
        r"train.learning_rate=0.0 must be a positive number, e.g. 1e-3",
    ),
    "train-learning-rate-huge": Case(
        settings("train.learning_rate=1e6"),
        ValueError,
        r"train.learning_rate=1000000.0 is above 1: .* training would diverge; use e.g. 1e-3",
    ),
    "train-epochs": Case(settings("train.epochs=0"), ValueError, r"train.epochs=0 must be at least 1"),
    "train-batch-size": Case(
        settings("train.batch_size=0"), ValueError, r"train.batch_size=0 must be at least 1"
    ),
    "train-weight-decay": Case(
        settings("train.weight_decay=-1"),
        ValueError,
        r"train.weight_decay=-1.0 must be a number >= 0 \(0 turns weight decay off\)",
    ),
    "train-patience": Case(
        settings("train.patience=-1"), ValueError, r"train.patience=-1 must be at least 1"
    ),
    "train-select-on": Case(
        settings("train.select_on=val_auc"),
        ConfigCompositionException,
        r"Invalid value 'val_auc', expected one of \[val_bags, val_count_nll, val_instances\]",
        stage="compose",
    ),
    # Data: fail when loaded, before any bag is trained on.
    "dataset-positive-rate": Case(
        settings("dataset.positive_rate=1.5"),
        ValueError,
        r"dataset.positive_rate=1.5 must lie strictly between 0 and 1",
        stage="load",
    ),
    "bagging-size-range-above-rows": Case(
        settings(*SMALL, "bagging.size_range=[5000,6000]"),
        ValueError,
        r"bagging.size_range=\[5000, 6000\]: a split of 980 rows cannot hold one bag of 5000 rows or more; "
        r"give a range whose low end is at most 980",
        stage="load",
    ),
    "graph-k-above-rows": Case(
        settings(*SMALL, "graph.k=5000"),
        ValueError,
        r"graph.k=5000 is not below the 980 training rows the similarity graph joins .* use graph.k < 980",
        stage="load",
    ),
    "method-binary-only": Case(
        ("debug=fast", "method=easyllp", "dataset.n_classes=4"),
        ValueError,
        r"method=easyllp trains on two classes only and these data have 4; choose one of \['countloss', "
        r"'dllp', 'llp_bp', 'supervised'\]",
        stage="load",
    ),
    "schedule-binary-only": Case(
        settings("schedule=easyllp_warm", "dataset.n_classes=4"),
        ValueError,
        r"these data have 4 classes, and schedule.warm_start=easyllp is binary only "
        r"\(use dllp or countloss\)",
        stage="load",
    ),
    "dataset-val-fraction": Case(
        files("dataset.val_fraction=1.5"),
        ValueError,
        r"dataset.val_fraction=1.5 must lie strictly between 0 and 1 .* e.g. dataset.val_fraction=0.1",
        stage="load",
    ),
    "files-missing-file": Case(
        files("dataset.train_path=nowhere.csv"),
        FileNotFoundError,
        r"train_path='nowhere.csv': no such file .*nowhere.csv \(relative paths",
        stage="load",
    ),
    "files-directory": Case(
        files("dataset.train_path=../data"),
        IsADirectoryError,
        r"train_path='../data': .*data/../data is a directory, not a file; give the path of a table in it",
        stage="load",
    ),
    "files-symlink-loop": Case(
        files("dataset.train_path=loop.csv"),
        OSError,
        r"train_path='loop.csv': .*loop.csv is a symlink loop .*; point the link at the table",
        stage="load",
        links={"loop.csv": "loop.csv"},
    ),
    "files-parquet-as-csv": Case(
        files(),
        ValueError,
        r"train.csv is a parquet file, not a CSV; rename it to .*train.parquet",
        stage="load",
        edits={"train.csv": parquet_bytes(TRAIN_FRAME)},
    ),
    "files-utf16": Case(
        files(),
        ValueError,
        r"train.csv is UTF-16 text; re-save it as UTF-8",
        stage="load",
        edits={"train.csv": TRAIN.encode("utf-16")},
    ),
    "files-latin1": Case(
        files(),
        ValueError,
        r"train.csv is not UTF-8 text \(byte b'\\xe9' on line 7\): likely latin-1 or cp1252; "
        r"re-save it as UTF-8",
        stage="load",
        edits={"train.csv": TRAIN.replace("11,60,4.5,red", "11,60,4.5,rosé").encode("latin-1")},
    ),
    "files-no-features": Case(
        files("dataset.feature_columns=[]"),
        ValueError,
        r"train.csv: no feature columns \(dataset.feature_columns=\[\], its columns \['bag_id', 'age', "
        r"'income', 'color'\]\); a model needs at least one",
        stage="load",
    ),
    "files-only-bag-id": Case(
        files(),
        ValueError,
        r"train.csv: no feature columns \(dataset.feature_columns=\[\], its columns \['bag_id'\]\); a model "
        r"needs at least one: list them, or leave feature_columns null",
        stage="load",
        edits={"train.csv": TRAIN_FRAME[["bag_id"]].to_csv(index=False)},
    ),
    "files-missing-column": Case(
        files("dataset.feature_columns=[age,weight,color]"),
        ValueError,
        r"train.csv: no column\(s\) \['weight'\]; its columns are \['bag_id', 'age', 'income', 'color'\]",
        stage="load",
    ),
    "files-non-numeric": Case(
        files("dataset.categorical_columns=[]"),
        ValueError,
        r"train.csv: column 'color' is not numeric \(dtype \w+\); list it among the categorical columns",
        stage="load",
    ),
    "files-empty": Case(
        files(),
        ValueError,
        r"train.csv is empty; write a header line of column names",
        stage="load",
        edits={"train.csv": ""},
    ),
    "files-header-only-train": Case(
        files(),
        ValueError,
        r"train.csv has no rows, only its header; write its rows",
        stage="load",
        edits={"train.csv": "bag_id,age,income,color\n"},
    ),
    "files-header-only-test": Case(
        files(),
        ValueError,
        r"test.csv has no rows, only its header; write its rows",
        stage="load",
        edits={"test.csv": "age,income,color,label\n"},
    ),
    "files-duplicate-header": Case(
        files(),
        ValueError,
        r"train.csv: column\(s\) \['age'\] appear more than once in its header; "
        r"give each column its own name",
        stage="load",
        edits={"train.csv": ("bag_id,age,income,color", "bag_id,age,age,color")},
    ),
    "files-fractional-count": Case(
        files(),
        ValueError,
        r"bags.csv: 1 count\(s\) in column 'count' are not whole numbers, e.g. bag 13: 2.5; "
        r".* write whole numbers",
        stage="load",
        edits={"bags.csv": ("13,3", "13,2.5")},
    ),
    "files-proportions-as-counts": Case(
        files(),
        ValueError,
        r"bags.csv: count column 'count' holds fractions in \[0, 1\] \(e.g. bag 10: 0.33+\d\), "
        r"which look like proportions; set proportion_column='count'",
        stage="load",
        edits={"bags.csv": (FIXTURES / "bags_proportion.csv").read_text().replace("proportion", "count")},
    ),
    "files-mixed-counts-proportions": Case(
        files(),
        ValueError,
        r"bags.csv: count column 'count' mixes counts and proportions: fractions in \[0, 1\] "
        r"\(e.g. bag 13: 0.75\) beside counts above 1 \(bag 11: 2.0\); write every bag's count",
        stage="load",
        edits={"bags.csv": ("13,3", "13,0.75")},
    ),
    "files-count-not-number": Case(
        files(),
        ValueError,
        r"bags.csv: 1 value\(s\) in column 'count' are not numbers, e.g. 'ten' for bag 13 \(data row 4\); "
        r"write every bag's value as a number",
        stage="load",
        edits={"bags.csv": ("13,3", "13,ten")},
    ),
    "files-count-above-size": Case(
        files(),
        ValueError,
        r"bags.csv does not fit its data table: 1 bag\(s\) have a count outside \[0, bag size\], "
        r"e.g. bag 14: count 3.0 for 2 rows",
        stage="load",
        edits={"bags.csv": ("14,0", "14,3")},
    ),
    "files-negative-count": Case(
        files(),
        ValueError,
        r"bags.csv does not fit its data table: .* e.g. bag 12: count -1.0 for 2 rows",
        stage="load",
        edits={"bags.csv": ("12,1", "12,-1")},
    ),
    "files-class-forms": Case(
        files(*CLASS_COUNTS, "dataset.class_column=class"),
        ValueError,
        r"dataset.count_columns=\['n0', 'n1', 'n2'\] and dataset.class_column='class' are two forms of "
        r"K-class bag table; set one of them",
        stage="load",
        edits={"bags.csv": class_table()},
    ),
    "files-class-counts-sum": Case(
        files(*CLASS_COUNTS),
        ValueError,
        r"bags.csv does not fit its data table: 1 bag\(s\) have class counts that do not sum to the bag "
        r"size, e.g. bag 13: counts \[1.0, 1.0, 1.0\] sum to 3 for 4 rows",
        stage="load",
        edits={"bags.csv": class_table(b13=[1, 1, 1])},
    ),
    "files-class-count-negative": Case(
        files(*CLASS_COUNTS),
        ValueError,
        r"bags.csv does not fit its data table: 1 bag\(s\) have a negative or missing class count, "
        r"e.g. bag 12: counts \[3.0, -1.0, 0.0\]",
        stage="load",
        edits={"bags.csv": class_table(b12=[3, -1, 0])},
    ),
    "files-class-label-unknown": Case(
        files(*CLASS_COUNTS),
        ValueError,
        r"test.csv: label column 'label' holds label\(s\) \[5\] that are not among the bag tables' classes "
        r"\[0, 1, 2\]",
        stage="load",
        edits={"bags.csv": class_table(), "test.csv": ("25,1.3,blue,0", "25,1.3,blue,5")},
    ),
    "files-class-missing": Case(
        files(*CLASS_COUNTS),
        ValueError,
        r"class\(es\) \[2\] of the 3 classes appear in no bag of the train split .* use more data "
        r"\(or other bags\) that contain them, or fewer classes",
        stage="load",
        edits={"bags.csv": class_table(b15=[1, 1, 0], b16=[1, 1, 0])},
    ),
    "features-inf-train": Case(
        files(*VAL),
        ValueError,
        "the train " + NON_FINITE.format(5),
        stage="load",
        edits={"train.csv": ("11,60,4.5,red", "11,60,inf,red")},
    ),
    "features-inf-val": Case(
        files(*VAL),
        ValueError,
        "the val " + NON_FINITE.format(2),
        stage="load",
        edits={"val.csv": ("2,36,2.6,green", "2,36,-inf,green")},
    ),
    "features-nan-val": Case(
        files(*VAL),
        ValueError,
        r"val.csv: numeric column 'income' has 1 missing values; impute them or list the column among the "
        "categorical columns",
        stage="load",
        edits={"val.csv": ("2,36,2.6,green", "2,36,nan,green")},
    ),
    "features-huge-train": Case(
        files(*VAL),
        ValueError,
        r"train.csv: numeric column 'income' holds 1 value\(s\) more than 1e\+06 times its typical spread "
        r"from its median, e.g. row 5: 1e\+300 .* standardising would squash the column's other values to 0",
        stage="load",
        edits={"train.csv": ("11,60,4.5,red", "11,60,1e300,red")},
    ),
    "features-huge-test": Case(
        files(*VAL),
        ValueError,
        r"test.csv: numeric column 'income' holds 1 value\(s\) more than 1e\+06 times its typical spread "
        r"from its median, e.g. row 3: 1e\+300",
        stage="load",
        edits={"test.csv": ("25,1.3,blue,0", "25,1e300,blue,0")},
    ),
    "features-inf-test": Case(
        files(*VAL),
        ValueError,
        "the test " + NON_FINITE.format(3),
        stage="load",
        edits={"test.csv": ("25,1.3,blue,0", "25,inf,blue,0")},
    ),
    "test-one-class": Case(
        files(),
        ValueError,
        r"the test split has 1 class\(es\) \(2 rows, labels \[1\]\): its AUC is undefined; "
        "use a test set with both positive and negative rows",
        stage="load",
        edits={"test.csv": "age,income,color,label\n30,2.0,red,1\n51,3.7,green,1\n"},
    ),
    # Run folders: fail before any data is loaded.
    "run-folder-taken": Case(
        settings(),
        FileExistsError,
        r"run already holds a run \(metrics.json\); results are never overwritten: "
        r"give this run its own folder",
        stage="run",
        run_files={"metrics.json": "{}"},
    ),
    "run-folder-unwritable": Case(
        settings(),
        NotADirectoryError,
        r"the run folder .*a_file/run cannot be created: .*a_file is a file, not a folder; "
        r"choose another folder \(hydra.run.dir=...\)",
        stage="folder",
    ),
    "run-folder-glob": Case(
        settings(),
        ValueError,
        r"the run folder .*widths=\[16,8\] holds \[ \]: orbax cannot save a checkpoint under such a path.*"
        r"give hydra.run.dir or hydra.sweep.dir without the characters",
        stage="run",
        run_folder="widths=[16,8]",
    ),
    "resume-missing": Case(
        settings("train.resume=true"),
        FileNotFoundError,
        r"config_resolved.yaml is missing: there is no run to resume in .*run; "
        r"point hydra.run.dir at the folder of the run to resume, or drop train.resume=true",
        stage="run",
    ),
}


# Degenerate but legal setups: they warn (DegenerateWarning, and a log line) when the data are loaded, and
# fail with the same words under strict=true (DegenerateSetupError); `error` is the strict run's.
ONE_BAG = r"the train split has 1 bag\(s\) of {} rows: .* fewer than 3 bags leave almost nothing to learn"
DEGENERATE = {
    "bagging-one-bag": Case(
        settings(*SMALL, "bagging.bag_size=100000"), DegenerateSetupError, ONE_BAG.format(980), stage="load"
    ),
    "files-two-bags": Case(
        files(),
        DegenerateSetupError,
        ONE_BAG.format(3),
        stage="load",
        edits={"train.csv": "\n".join(TRAIN.splitlines()[:7]) + "\n"},  # bags 10 and 11
    ),
    "bags-all-negative": Case(
        files(),
        DegenerateSetupError,
        r"every bag of the train split is fully negative \(count 0\), 7 bag\(s\) of 18 rows: one class only",
        stage="load",
        edits={"bags.csv": bags_table(dict.fromkeys(BAG_SIZES, 0))},
    ),
    "bags-all-positive": Case(
        tuple("method=llp_bp" if override == "method=dllp" else override for override in files()),
        DegenerateSetupError,
        r"every bag of the train split is fully positive \(count = size\), 7 bag\(s\) of 18 rows",
        stage="load",
        edits={"bags.csv": bags_table(BAG_SIZES)},
    ),
    "files-many-levels": Case(
        files("dataset.categorical_columns=[color,income]"),
        DegenerateSetupError,
        r"categorical column 'income' has 140 levels in 140 training rows \(more than 100\): .* if it holds "
        "numbers, drop it from the categorical columns",
        stage="load",
        edits={"train.csv": many_rows_train()},
    ),
}


def readme_ids() -> list[str]:
    """The ids of the README's "Bad input" list, in its order."""
    section = README.read_text(encoding="utf-8").split("**Bad input**", 1)[1]
    cases = section.split("\n\n", 2)[1]  # the paragraph after the section's first
    return re.findall(r"^- `([a-z0-9-]+)`", cases, flags=re.MULTILINE)


def data_folder(
    edits: dict[str, str | bytes | tuple[str, str]], folder: Path, links: dict[str, str] | None = None
) -> Path:
    """A copy of the fixture tables in `folder` with `edits` (table -> text or bytes, or (old, new) in its
    text) and symbolic `links` (name -> target)."""
    shutil.copytree(FIXTURES, folder)
    for name, edit in edits.items():
        table = folder / name
        if isinstance(edit, tuple):
            text = table.read_text()
            assert edit[0] in text, (name, edit)
            edit = text.replace(*edit)
        if isinstance(edit, bytes):
            table.write_bytes(edit)
        else:
            table.write_text(edit)
    for name, target in (links or {}).items():
        (folder / name).symlink_to(target)
    return folder


def attempt(case: Case, tmp_path: Path) -> None:
    """Run `case` up to its stage, as a run would."""
    overrides = list(case.overrides)
    if "dataset=files" in overrides:
        overrides.append(f"dataset.data_dir={data_folder(case.edits, tmp_path / 'data', case.links)}")
    cfg = compose(*overrides)
    if case.stage == "compose":
        return
    if case.stage == "folder":  # what the command line checks before Hydra opens the run's log there
        (tmp_path / "a_file").write_text("")
        check_writable(tmp_path / "a_file" / "run", "hydra.run.dir")
        return
    if case.stage == "run":
        run_dir = tmp_path / case.run_folder
        run_dir.mkdir()
        for name, text in case.run_files.items():
            (run_dir / name).write_text(text)
        run_experiment(cfg, run_dir)
        return
    run = resolve(cfg)
    if case.stage == "load":
        load_inputs(run)


def test_the_readme_lists_exactly_the_cases_tested():
    listed, tested = readme_ids(), set(CASES) | set(DEGENERATE)
    assert len(listed) == len(set(listed)), "an id appears twice in the README's Bad input list"
    only_readme, only_here = sorted(set(listed) - tested), sorted(tested - set(listed))
    assert not only_readme and not only_here, f"only in the README: {only_readme}; only here: {only_here}"


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_fails_before_training_with_the_fix(case_id, tmp_path):
    case = CASES[case_id]
    with pytest.raises(case.error) as failure:
        attempt(case, tmp_path)
    error = failure.value
    message = f"{error}\n{error.__cause__ or ''}"  # Hydra's composition errors carry the reason as the cause
    assert re.search(case.words, message, flags=re.DOTALL), message


@pytest.mark.parametrize("case_id", list(DEGENERATE))
def test_degenerate_setup_warns_and_fails_under_strict(case_id, tmp_path, caplog):
    case = DEGENERATE[case_id]
    with pytest.warns(DegenerateWarning) as caught:
        attempt(case, tmp_path / "warns")
    warned = [str(warning.message) for warning in caught if warning.category is DegenerateWarning]
    assert any(re.search(case.words, message, flags=re.DOTALL) for message in warned), warned
    assert re.search(case.words, caplog.text, flags=re.DOTALL), caplog.text
    with pytest.raises(case.error) as failure:
        attempt(case._replace(overrides=(*case.overrides, "strict=true")), tmp_path / "strict")
    message = str(failure.value)
    assert re.search(case.words, message, flags=re.DOTALL), message
    assert "set strict=false to run anyway" in message


def test_quoted_unicode_list_elements_compose():
    """The fix the README gives for `override-unicode`."""
    cfg = compose(*SETTINGS, "bagging=feature", 'bagging.columns=["état"]')
    assert list(cfg.bagging.columns) == ["état"]
