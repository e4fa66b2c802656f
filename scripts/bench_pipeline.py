"""Time each stage of LLP-BP (graph, BP, training, evaluation, compilation) against the supervised method
with the same encoder and epochs, on synthetic data of n rows and random bags of size B.

Each (n, B, method) runs in a fresh Python process (so that compilations, the BP loop's compile count and
the peak resident memory are that run's; JAX's persistent compilation cache stays off) and prints one JSON
object: the device, the stage seconds summed over the rounds and round by round, the compilations
(count and seconds, from jax.monitoring, also by window: graph + BP, training), the BP loop's
compilations, BP's iterations and convergence, the test AUC and the peak RSS.

    python scripts/bench_pipeline.py --n 100000 --bag-size 8 256 2048
    python scripts/bench_pipeline.py --n 1000000 --bag-size 2048 --epochs 20   # on an accelerator

Extra Hydra overrides go after --override (every method, e.g. model.widths=[64,32]) or --llp-bp-override
(LLP-BP's own groups, e.g. schedule=easyllp_warm bp.max_iters=50).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # llp_jax from this checkout

from llp_jax.bp import loop  # noqa: E402
from llp_jax.config import compose, resolve  # noqa: E402
from llp_jax.data import load_dataset  # noqa: E402
from llp_jax.experiment import build_bags  # noqa: E402
from llp_jax.methods import METHODS  # noqa: E402
from llp_jax.streams import stream_key, stream_seed  # noqa: E402
from llp_jax.train.loop import predict  # noqa: E402
from llp_jax.train.metrics import classification_metrics  # noqa: E402

COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class CompileClock:
    """Seconds spent tracing, lowering and compiling (jax.monitoring), and the number of backend
    compilations, since it was made; `lap()` gives those since the last lap."""

    def __init__(self) -> None:
        self.seconds, self.count, self._lap = 0.0, 0, (0.0, 0)
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration: float, **kwargs) -> None:
        if event in COMPILE_EVENTS:
            self.seconds += duration
            self.count += event == COMPILE_EVENTS[-1]

    def lap(self) -> tuple[float, int]:
        seconds, count = self.seconds - self._lap[0], self.count - self._lap[1]
        self._lap = (self.seconds, self.count)
        return seconds, count


def run_one(n: int, bag_size: int, method: str, epochs: int | None, seed: int, overrides: list[str]) -> dict:
    """One run in this process: its stage times, compilations and peak memory."""
    clock = CompileClock()
    args = ["dataset=synthetic", f"dataset.n={n}", f"bagging.bag_size={bag_size}", f"method={method}"]
    args += [
        "train.progress=false",
        f"seed={seed}",
        *([f"train.epochs={epochs}"] if epochs else []),
        *overrides,
    ]
    run = resolve(compose(*args))
    start = time.perf_counter()
    data = load_dataset(run.dataset.name, seed=stream_seed(run.seed, "split"), **run.dataset.options)
    train_bags, val_bags = build_bags(data, run)
    data_s = time.perf_counter() - start
    clock.lap()

    rounds: dict[tuple[int, int], dict] = {}

    def log(record: dict) -> None:  # the method's records; the compile laps split at the stages' ends
        if record.get("event") not in ("bp", "round_end"):
            return
        seconds, count = clock.lap()
        key = (record.get("candidate", 0), record["round"])  # schedule=auto: every candidate's rounds
        entry = rounds.setdefault(key, {"candidate": key[0], "round": key[1]})
        if record["event"] == "bp":
            entry.update(
                graph_s=record["graph_build_s"],
                bp_s=record["bp_s"],
                graph_bp_compile_s=seconds,
                graph_bp_compilations=count,
                graph_edges=record["graph_edges"],
                bp_iterations=record["bp_iterations"],
                bp_converged=record["bp_converged"],
            )
        else:
            entry.update(train_s=record["train_s"], train_compile_s=seconds, train_compilations=count)

    start = time.perf_counter()
    result = METHODS[run.method_name].fit(
        data, train_bags, val_bags, run.method, stream_key(jax.random.key(run.seed), "method"), log
    )
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    logits, _ = predict(result.model, data.test.x, run.method.train.eval_batch_size)
    test = classification_metrics(data.test.y, logits, "test")
    eval_s = time.perf_counter() - start
    graph_s = sum(entry.get("graph_s", 0.0) for entry in rounds.values())
    bp_s = sum(entry.get("bp_s", 0.0) for entry in rounds.values())
    train_s = sum(entry.get("train_s", 0.0) for entry in rounds.values()) if rounds else fit_s
    return {
        "device": str(jax.devices()[0].device_kind),
        "devices": [str(device) for device in jax.devices()],
        "n": n,
        "n_train": int(train_bags.sizes.sum()),
        "bag_size": bag_size,
        "method": method,
        "epochs": run.method.train.epochs,
        "overrides": overrides,
        "data_s": data_s,
        "graph_s": graph_s,
        "bp_s": bp_s,
        "train_s": train_s,
        "other_s": fit_s - graph_s - bp_s - train_s,  # LLP-BP: the embeddings and calibrations between stages
        "eval_s": eval_s,
        "fit_s": fit_s,
        "compile_s": clock.seconds,
        "compilations": clock.count,
        "bp_loop_compilations": loop._advance._cache_size(),
        "rounds": list(rounds.values()),
        "test_auc": test["test_auc"],
        "epochs_run": len(result.history),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000], help="synthetic rows (all splits)")
    parser.add_argument("--bag-size", type=int, nargs="+", default=[8, 256, 2048])
    parser.add_argument("--methods", nargs="+", default=["llp_bp", "supervised"])
    parser.add_argument("--epochs", type=int, default=None, help="train.epochs (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides of every method")
    parser.add_argument("--llp-bp-override", nargs="*", default=[], help="Hydra overrides of LLP-BP only")
    parser.add_argument("--one", action="store_true", help="run the single configuration given, here")
    args = parser.parse_args()
    if args.one:
        n, bag_size, method = args.n[0], args.bag_size[0], args.methods[0]
        print(json.dumps(run_one(n, bag_size, method, args.epochs, args.seed, args.override)), flush=True)
        return
    for n, bag_size, method in itertools.product(args.n, args.bag_size, args.methods):
        command = [sys.executable, __file__, "--one", "--n", str(n), "--bag-size", str(bag_size)]
        command += ["--methods", method, "--seed", str(args.seed)]
        overrides = args.override + (args.llp_bp_override if method == "llp_bp" else [])
        command += [*(["--epochs", str(args.epochs)] if args.epochs else []), "--override", *overrides]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(json.dumps({"n": n, "bag_size": bag_size, "method": method, "error": done.returncode}))
            continue
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
