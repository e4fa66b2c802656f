"""Time K-state BP (llp_jax.bp.run_potts_bp) beside the binary engine, and measure the per-class bag
factors' error against the exact joint factor.

`speed` (default): bench_bp.py's synthetic graph (n instances, k random neighbours each, random bags of
B), labels uniform over K classes; each engine (binary on the class-1 counts, K-state on the count
vectors) runs in a child process of its own, which prints its compile time, the median steady-state time
of `--iters` iterations (early stop off) and its peak resident memory (ru_maxrss; on an accelerator also
the device's peak bytes). One JSON object per engine:

    python scripts/bench_potts.py speed --n 100000 --bag-size 128 --classes 10

`error`: clustered synthetic data (K Gaussian clusters, one per class), its exact kNN graph, random bags
of B (small enough for the joint factor) with their count vectors, a weak unary from noisy class means;
BP with the per-class count factors and with the joint factor (hard counts, same settings), and prints the
marginals' mean and largest absolute difference and both pseudo-labels' accuracy:

    python scripts/bench_potts.py error --n 2000 --bag-size 8 --classes 3 4 10
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # llp_jax, also from a benchmark-only venv
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_bp import synthetic_graph  # noqa: E402

from llp_jax.bp import (  # noqa: E402
    BPSettings,
    build_potts_problem,
    build_problem,
    run_potts_bp,
    solve,
    solve_potts,
)
from llp_jax.data.bags import Bags  # noqa: E402
from llp_jax.graph import GraphSettings, build_graph  # noqa: E402


def class_count_bags(bags: Bags, n: int, n_classes: int, seed: int) -> tuple[Bags, Bags]:
    """Labels uniform over the classes: bags with count vectors, and the same bags with class 1's count."""
    labels = np.random.default_rng(seed + 1).integers(0, n_classes, n)
    member_labels = np.where(bags.mask, labels[bags.members], -1)
    counts = np.stack([(member_labels == c).sum(axis=1) for c in range(n_classes)], axis=1)
    return bags._replace(counts=counts.astype(np.float32)), bags._replace(
        counts=counts[:, 1].astype(np.float32)
    )


def one_engine(args) -> None:
    """The child process: time one engine and print its JSON record."""
    settings = BPSettings(
        lambda_s=args.lambda_s, lambda_b=args.lambda_b, max_iters=args.iters, early_stop=False
    )
    graph, bags = synthetic_graph(args.n, args.bag_size, args.k, args.seed)
    vector_bags, class_one_bags = class_count_bags(bags, args.n, args.classes, args.seed)
    if args.engine == "binary":
        problem = build_problem(graph, class_one_bags, settings)
        run = lambda: solve(problem, settings)  # noqa: E731
    else:
        problem = build_potts_problem(graph, vector_bags, settings)
        run = lambda: solve_potts(problem, settings)  # noqa: E731
    jax.block_until_ready(problem)
    start = time.perf_counter()
    jax.block_until_ready(run())
    first = time.perf_counter() - start
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        runs.append(time.perf_counter() - start)
    run_s = statistics.median(runs)
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    record = dict(
        engine=args.engine, device=device.device_kind, n=args.n, B=args.bag_size, k=args.k,
        classes=args.classes if args.engine == "potts" else 2, iterations=args.iters,
        compile_s=max(0.0, first - run_s), run_s=run_s, per_iteration_ms=1e3 * run_s / args.iters,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        device_peak_mib=stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None,
    )  # fmt: skip
    print(json.dumps(record), flush=True)


def speed(args) -> None:
    """Each engine in its own process (peak memory per engine), binary first."""
    for engine in ("binary", "potts"):
        command = [sys.executable, __file__, "one", "--engine", engine]
        for name in ("n", "bag_size", "k", "classes", "iters", "repeats", "lambda_s", "lambda_b", "seed"):
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        subprocess.run(command, check=True)


def clustered(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x float32[n, 8] from one Gaussian cluster a class, labels int[n], and a weak unary float[n, K]
    (a nearest-mean classifier fitted on 5 rows a class, its log-probabilities tempered by 20)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, (n_classes, 8))
    labels = rng.integers(0, n_classes, n)
    x = (centres[labels] + rng.normal(0.0, 1.0, (n, 8))).astype(np.float32)
    means = np.stack([x[labels == c][:5].mean(axis=0) for c in range(n_classes)])
    logits = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(axis=2) * 0.05
    return x, labels, logits - logits.max(axis=1, keepdims=True)


def error(args) -> None:
    for n_classes in args.classes_list:
        x, labels, unary = clustered(args.n, n_classes, args.seed)
        graph = build_graph(x, GraphSettings(k=args.k))
        order = np.random.default_rng(args.seed + 2).permutation(args.n)
        n_bags = args.n // args.bag_size
        members = order[: n_bags * args.bag_size].reshape(n_bags, args.bag_size).astype(np.int32)
        counts = np.stack([(labels[members] == c).sum(axis=1) for c in range(n_classes)], axis=1)
        mask = np.ones_like(members, bool)
        bags = Bags(members, mask, mask.sum(axis=1).astype(np.int32), counts.astype(np.float32))
        common = dict(lambda_s=args.lambda_s, hard_counts=True, max_iters=args.iters, tol=1e-5)
        results = {}
        for name, joint in (("per_class", False), ("joint", True)):
            start = time.perf_counter()
            result = run_potts_bp(graph, bags, BPSettings(**common, joint_counts=joint), unary=unary)
            marginals = np.asarray(jax.block_until_ready(result.marginals))
            results[name] = dict(
                marginals=marginals, seconds=time.perf_counter() - start, n_iters=int(result.n_iters),
                converged=bool(result.converged),
            )  # fmt: skip
        in_bags = members.ravel()
        diff = np.abs(results["per_class"]["marginals"] - results["joint"]["marginals"])[in_bags]
        record = dict(
            device=jax.devices()[0].device_kind, n=args.n, B=args.bag_size, k=args.k, classes=n_classes,
            lambda_s=args.lambda_s, mean_abs_marginal_diff=float(diff.mean()),
            max_abs_marginal_diff=float(diff.max()),
            unary_accuracy=float(np.mean(np.argmax(unary, axis=1) == labels)),
        )  # fmt: skip
        for name, r in results.items():
            record[f"{name}_accuracy"] = float(np.mean(np.argmax(r["marginals"], axis=1) == labels))
            record[f"{name}_iterations"] = r["n_iters"]
            record[f"{name}_converged"] = r["converged"]
            record[f"{name}_seconds"] = r["seconds"]
        print(json.dumps(record), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("speed", "one", "error"):
        p = sub.add_parser(name)
        p.add_argument("--n", type=int, default=100_000 if name != "error" else 2000)
        p.add_argument("--bag-size", type=int, default=128 if name != "error" else 8)
        p.add_argument("--k", type=int, default=5)
        p.add_argument("--iters", type=int, default=100)
        p.add_argument("--lambda-s", type=float, default=1.0)
        p.add_argument("--lambda-b", type=float, default=10.0)
        p.add_argument("--seed", type=int, default=0)
        if name == "error":
            p.add_argument("--classes", dest="classes_list", type=int, nargs="+", default=[3, 4, 10])
        else:
            p.add_argument("--classes", type=int, default=10)
            p.add_argument("--repeats", type=int, default=3)
        if name == "one":
            p.add_argument("--engine", choices=("binary", "potts"), required=True)
    args = parser.parse_args()
    {"speed": speed, "one": one_engine, "error": error}[args.command](args)


if __name__ == "__main__":
    main()
