"""Time loopy BP (llp_jax.bp) on a synthetic LLP Gibbs graph, optionally against PGMax 0.6.1.

The graph: n instances, every instance joined to k random others (a stand-in for the kNN graph,
symmetrised, weights uniform in (0, 1]), random bags of size B with counts from Bernoulli(0.3) labels.
Prints one JSON object per configuration: compile time (first call minus a steady run) and the median
steady-state run time of `--iters` iterations (early stop off), with `block_until_ready`.

    python scripts/bench_bp.py --n 100000 --bag-size 8 --k 5 --mode clique
    python scripts/bench_bp.py --n 100000 --bag-size 2048 --k 5 --mode count

--compare REV also times the count factor of llp_jax/bp/factors.py at the git revision REV (default HEAD) on
the same problem in the same run, alternating with today's (the exact tree, FULL_WINDOWS, as a third),
and prints per-iteration times, their ratio and the largest difference of the marginals:

    python scripts/bench_bp.py --n 1000000 --bag-size 2048 --mode count --iters 10 --compare HEAD

--pgmax also times PGMax 0.6.1 (the paper's BP library) on the identical factor graph in clique mode. It
is a benchmark opponent only: install it in the benchmark's own environment, e.g.
    python -m venv /tmp/pgmax-venv && /tmp/pgmax-venv/bin/pip install jax numpy pandas tqdm numba scipy \
        && /tmp/pgmax-venv/bin/pip install --no-deps pgmax==0.6.1
and run this script with that interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # llp_jax, also from a benchmark-only venv

from llp_jax.bp import BAG_FACTORS, BPProblem, BPSettings, build_problem, factors, solve  # noqa: E402
from llp_jax.data.bags import Bags  # noqa: E402
from llp_jax.graph import SimilarityGraph  # noqa: E402


def synthetic_graph(n: int, bag_size: int, k: int, seed: int) -> tuple[SimilarityGraph, Bags]:
    """The graph (edges senders < receivers, unique) and the bags."""
    rng = np.random.default_rng(seed)
    source = np.repeat(np.arange(n), k)
    target = rng.integers(0, n, n * k)
    keep = source != target
    pairs = np.unique(np.stack([np.minimum(source, target), np.maximum(source, target)])[:, keep], axis=1)
    weights = rng.uniform(1e-3, 1.0, pairs.shape[1]).astype(np.float32)
    n_bags = -(-n // bag_size)
    order = np.concatenate([rng.permutation(n), np.zeros(n_bags * bag_size - n, np.int64)])
    members = order.reshape(n_bags, bag_size).astype(np.int32)
    mask = (np.arange(n_bags * bag_size) < n).reshape(n_bags, bag_size)
    labels = rng.random(n) < 0.3
    counts = np.where(mask, labels[members], False).sum(axis=1).astype(np.float32)
    graph = SimilarityGraph(n, pairs[0].astype(np.int32), pairs[1].astype(np.int32), weights)
    return graph, Bags(members, mask, mask.sum(axis=1).astype(np.int32), counts)


def merge_parallel_edges(problem: BPProblem) -> BPProblem:
    """One factor per node pair (PGMax refuses two factors on the same variables): the couplings of a
    bag pair that is also a similarity edge are summed, which leaves p(y) unchanged; the padding edges
    (a node to itself, coupling 0: llp_jax.bp.problem) are dropped."""
    pairs = np.stack([np.asarray(problem.senders[0]), np.asarray(problem.receivers[0])])
    real = pairs[0] != pairs[1]
    unique, inverse = np.unique(pairs[:, real], axis=1, return_inverse=True)
    couplings = np.bincount(inverse.ravel(), np.asarray(problem.couplings[0])[real], unique.shape[1])
    return problem._replace(
        senders=jax.numpy.asarray(unique, np.int32),
        receivers=jax.numpy.asarray(unique[::-1], np.int32),
        couplings=jax.numpy.asarray(np.stack([couplings, couplings]), np.float32),
    )


def timed(fn):
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - start


def bench_llp_jax(problem: BPProblem, settings: BPSettings, repeats: int):
    result, first = timed(lambda: solve(problem, settings))
    runs = [timed(lambda: solve(problem, settings))[1] for _ in range(repeats)]
    run_s = statistics.median(runs)
    return result.marginals, int(result.n_iters), max(0.0, first - run_s), run_s


def factors_at(revision: str):
    """llp_jax/bp/factors.py as it was at a git revision of this repository, imported as a module."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "-C", str(root), "show", f"{revision}:llp_jax/bp/factors.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(f"factors_{revision}", None))
    exec(compile(source, f"{revision}:llp_jax/bp/factors.py", "exec"), module.__dict__)
    return module


@contextlib.contextmanager
def count_factor(variant: str, baseline):
    """The count factor's messages for one variant ("today", "exact": today's with FULL_WINDOWS, or
    "baseline": `baseline.bag_count_messages`), with the compiled loops of the others dropped (the variant
    is read when the loop is traced, and the loop's jit cache does not know it)."""
    saved = BAG_FACTORS["count"]
    if variant == "baseline":
        BAG_FACTORS["count"] = saved._replace(messages=baseline.bag_count_messages)
    factors.FULL_WINDOWS = variant == "exact"
    jax.clear_caches()
    try:
        yield
    finally:
        BAG_FACTORS["count"] = saved
        factors.FULL_WINDOWS = False
        jax.clear_caches()


def bench_compare(problem: BPProblem, settings: BPSettings, repeats: int, revision: str):
    """Per-iteration times of the count factor at `revision`, today's, and today's exact tree, in rounds
    that alternate them (so that the machine's load falls on all alike): {variant: (compile_s, [run_s per
    round], marginals)}."""
    baseline = factors_at(revision)
    out = {}
    for _ in range(repeats):
        for variant in ("baseline", "today", "exact"):
            with count_factor(variant, baseline):
                marginals, _, compile_s, run_s = bench_llp_jax(problem, settings, 1)
            previous = out.get(variant, (compile_s, [], marginals))
            out[variant] = (previous[0], [*previous[1], run_s], marginals)
    return out


def bench_pgmax(problem: BPProblem, settings: BPSettings, repeats: int):
    """The same pairwise graph (clique mode) in PGMax: binary variables, one 2x2 factor per edge."""
    import jax._src.xla_bridge as xla_bridge

    jax.lib.xla_bridge = xla_bridge  # pgmax 0.6.1 imports jax.lib.xla_bridge, which current JAX removed
    from pgmax import fgraph, fgroup, infer, vgroup

    start = time.perf_counter()
    n = problem.field.shape[0]
    senders, receivers = np.asarray(problem.senders[0]), np.asarray(problem.receivers[0])
    real = senders != receivers  # the padding edges (a node to itself, coupling 0) are no factors
    senders, receivers = senders[real], receivers[real]
    n_edges = senders.shape[0]
    couplings = np.asarray(problem.couplings[0], np.float32)[real]
    variables = vgroup.NDVarArray(num_states=2, shape=(n,))
    graph = fgraph.FactorGraph(variable_groups=variables)
    potentials = np.zeros((n_edges, 2, 2), np.float32)
    potentials[:, 1, 1] = couplings
    graph.add_factors(
        fgroup.PairwiseFactorGroup(
            variables_for_factors=[
                [variables[int(i)], variables[int(j)]] for i, j in zip(senders, receivers, strict=True)
            ],
            log_potential_matrix=potentials,
        )
    )
    bp = infer.build_inferer(graph.bp_state, backend="bp")
    evidence = np.zeros((n, 2), np.float32)
    evidence[:, 1] = np.asarray(problem.field)
    arrays = bp.init(evidence_updates={variables: evidence})
    build_s = time.perf_counter() - start
    run = jax.jit(bp.run, static_argnames=("num_iters", "temperature"))

    def marginals():
        out = run(
            arrays, num_iters=settings.max_iters, damping=settings.damping, temperature=settings.temperature
        )
        return infer.get_marginals(bp.get_beliefs(out))[variables][:, 1]

    result, first = timed(marginals)
    run_s = statistics.median(timed(marginals)[1] for _ in range(repeats))
    return result, build_s, max(0.0, first - run_s), run_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000], help="instances")
    parser.add_argument("--bag-size", type=int, nargs="+", default=[8], help="bag size B")
    parser.add_argument("--k", type=int, nargs="+", default=[5], help="random neighbours per instance")
    parser.add_argument("--mode", nargs="+", default=["count"], choices=list(BAG_FACTORS))
    parser.add_argument("--iters", type=int, default=100, help="BP iterations (no early stop)")
    parser.add_argument("--repeats", type=int, default=3, help="steady-state runs; the median is reported")
    parser.add_argument("--lambda-s", type=float, default=10.0)
    parser.add_argument("--lambda-b", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pgmax", action="store_true", help="also time PGMax 0.6.1 (clique mode only)")
    parser.add_argument(
        "--compare",
        nargs="?",
        const="HEAD",
        metavar="REV",
        help="count mode: also time the count factor of git revision REV (default HEAD), alternating",
    )
    args = parser.parse_args()
    device = jax.devices()[0].device_kind
    for n, bag_size, k, mode in itertools.product(args.n, args.bag_size, args.k, args.mode):
        settings = BPSettings(
            lambda_s=args.lambda_s,
            lambda_b=args.lambda_b,
            bag_factor=mode,
            max_iters=args.iters,
            early_stop=False,
        )
        start = time.perf_counter()
        graph, bags = synthetic_graph(n, bag_size, k, args.seed)
        problem = build_problem(graph, bags, settings)
        if mode == "clique":
            problem = merge_parallel_edges(problem)
        problem = jax.block_until_ready(problem)
        build_s = time.perf_counter() - start
        common = dict(device=device, n=n, B=bag_size, k=k, mode=mode)
        common["n_similarity_edges"] = graph.n_edges
        common["n_pairwise_factors"] = int(np.sum(problem.senders[0] != problem.receivers[0]))
        if args.compare and mode == "count":
            timed_variants = bench_compare(problem, settings, args.repeats, args.compare)
            base_runs = timed_variants["baseline"][1]
            for variant, (compile_s, runs, theirs) in timed_variants.items():
                backend = f"llp_jax@{args.compare}" if variant == "baseline" else "llp_jax"
                record = dict(backend=backend, variant=variant, **common, iterations=args.iters)
                record["compile_s"] = compile_s
                record["iteration_ms"] = [1e3 * r / args.iters for r in runs]  # one per round
                record["median_iteration_ms"] = 1e3 * statistics.median(runs) / args.iters
                record["speedup_vs_baseline"] = [b / r for b, r in zip(base_runs, runs, strict=True)]
                record["max_abs_marginal_diff_vs_baseline"] = float(
                    np.max(np.abs(np.asarray(theirs) - np.asarray(timed_variants["baseline"][2])))
                )
                print(json.dumps(record), flush=True)
            continue
        marginals, iters, compile_s, run_s = bench_llp_jax(problem, settings, args.repeats)
        common["iterations"] = iters
        record = dict(backend="llp_jax", **common, compile_s=compile_s, run_s=run_s, graph_build_s=build_s)
        print(json.dumps(record), flush=True)
        if args.pgmax and mode == "clique":
            theirs, pg_build_s, pg_compile_s, pg_run_s = bench_pgmax(problem, settings, args.repeats)
            record = dict(backend="pgmax-0.6.1", **common, compile_s=pg_compile_s, run_s=pg_run_s)
            record["graph_build_s"] = build_s + pg_build_s
            record["speedup_llp_jax"] = pg_run_s / run_s
            record["max_abs_marginal_diff"] = float(
                np.max(np.abs(np.asarray(theirs) - np.asarray(marginals)))
            )
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
