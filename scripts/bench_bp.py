"""Time loopy BP (llp_jax.bp) on a synthetic LLP Gibbs graph, optionally against PGMax 0.6.1.

The graph: n instances, every instance joined to k random others (a stand-in for the kNN graph,
symmetrised, weights uniform in (0, 1]), random bags of size B with counts from Bernoulli(0.3) labels.
Prints one JSON object per configuration: compile time (first call minus a steady run) and the median
steady-state run time of `--iters` iterations (early stop off), with `block_until_ready`.

    python scripts/bench_bp.py --n 100000 --bag-size 8 --k 5 --mode clique
    python scripts/bench_bp.py --n 100000 --bag-size 2048 --k 5 --mode count

--compare-engine REV times the whole engine (llp_jax.bp: problem layout, loop and factors) of the git
revision REV on the same graph and bags in the same process, alternating rounds with today's, and prints
per-iteration times per round, their ratio and the largest difference of the marginals; --compare REV
(count mode) swaps in only REV's count factor, with today's exact tree (FULL_WINDOWS) as a third variant:

    python scripts/bench_bp.py --n 1000000 --bag-size 2048 --mode count --iters 10 --compare-engine cc88151
    python scripts/bench_bp.py --n 1000000 --bag-size 2048 --mode count --iters 10 --compare HEAD

--pgmax also times PGMax 0.6.1 (the paper's BP library) on the identical factor graph in clique mode. It
is a benchmark opponent only: install it in the benchmark's own environment, e.g.
    python -m venv /tmp/pgmax-venv && /tmp/pgmax-venv/bin/pip install jax numpy pandas tqdm numba scipy \
        && /tmp/pgmax-venv/bin/pip install --no-deps pgmax==0.6.1
and run this script with that interpreter.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import importlib
import io
import itertools
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType

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


def engine_at(revision: str) -> ModuleType:
    """llp_jax.bp as it was at a git revision of this repository: `git archive REV llp_jax` unpacked into a
    temporary folder (kept until exit) and imported as llp_jax while today's modules are set aside, which
    are put back afterwards; the revision's functions keep their own modules' globals."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", revision, "llp_jax"], capture_output=True, check=True
    ).stdout
    folder = tempfile.mkdtemp(prefix=f"llp_jax_{revision}_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")

    def ours(name: str) -> bool:
        return name == "llp_jax" or name.startswith("llp_jax.")

    today = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in today:
        del sys.modules[name]
    sys.path.insert(0, folder)
    try:
        return importlib.import_module("llp_jax.bp")
    finally:
        sys.path.remove(folder)
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(today)


@contextlib.contextmanager
def count_factor(variant: str, baseline: ModuleType):
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


def count_factor_variants(problem: BPProblem, settings: BPSettings, revision: str) -> dict:
    """--compare: today's loop with the count factor at `revision` ("baseline"), today's, and today's exact
    tree, as `bench_compare`'s variants."""
    baseline = engine_at(revision).factors

    def variant(name):
        @contextlib.contextmanager
        def enter():
            with count_factor(name, baseline):
                yield lambda: solve(problem, settings).marginals

        return enter

    return {name: variant(name) for name in ("baseline", "today", "exact")}


def engine_variants(
    graph: SimilarityGraph, bags: Bags, settings: BPSettings, problem: BPProblem, revision: str
) -> dict:
    """--compare-engine: the whole engine at `revision` ("baseline"), on the problem it lays out itself from
    the graph and bags with the settings' fields it knows, and today's on `problem`, as `bench_compare`'s
    variants."""
    engine = engine_at(revision)
    theirs = engine.BPSettings(**{name: getattr(settings, name) for name in engine.BPSettings._fields})
    base = engine.build_problem(graph, bags, theirs)
    if settings.bag_factor == "clique":
        base = merge_parallel_edges(base)
    runs = {
        "baseline": lambda: engine.solve(base, theirs).marginals,
        "today": lambda: solve(problem, settings).marginals,
    }
    return {name: functools.partial(contextlib.nullcontext, run) for name, run in runs.items()}


def bench_compare(variants: dict, repeats: int) -> dict:
    """Per-run times of the variants ({name: a context manager yielding a function that runs BP once and
    returns the marginals}) in `repeats` rounds that alternate them, so that the machine's load falls on
    all alike; a first run per round compiles where needed. Returns {name: (compile_s of the first round,
    [run_s per round], marginals)}."""
    out = {}
    for _ in range(repeats):
        for name, enter in variants.items():
            with enter() as run:
                marginals, first = timed(run)
                run_s = timed(run)[1]
            previous = out.get(name, (max(0.0, first - run_s), [], marginals))
            out[name] = (previous[0], [*previous[1], run_s], marginals)
    return out


def print_compare(timed_variants: dict, revision: str, common: dict, iters: int) -> None:
    """One JSON line per variant of `bench_compare`: per-iteration ms per round, and against "baseline"
    the speedup per round and the largest difference of the marginals."""
    base_runs, base_marginals = timed_variants["baseline"][1], np.asarray(timed_variants["baseline"][2])
    for variant, (compile_s, runs, theirs) in timed_variants.items():
        backend = f"llp_jax@{revision}" if variant == "baseline" else "llp_jax"
        record = dict(backend=backend, variant=variant, **common, iterations=iters, compile_s=compile_s)
        record["iteration_ms"] = [1e3 * r / iters for r in runs]  # one per round
        record["median_iteration_ms"] = 1e3 * statistics.median(runs) / iters
        record["speedup_vs_baseline"] = [b / r for b, r in zip(base_runs, runs, strict=True)]
        record["median_speedup_vs_baseline"] = statistics.median(record["speedup_vs_baseline"])
        difference = np.max(np.abs(np.asarray(theirs) - base_marginals))
        record["max_abs_marginal_diff_vs_baseline"] = float(difference)
        print(json.dumps(record), flush=True)


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
    parser.add_argument(
        "--compare-engine",
        metavar="REV",
        help="also time the whole BP engine of git revision REV on the same problem, alternating",
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
        if args.compare_engine:
            variants = engine_variants(graph, bags, settings, problem, args.compare_engine)
            print_compare(bench_compare(variants, args.repeats), args.compare_engine, common, args.iters)
            continue
        if args.compare and mode == "count":
            variants = count_factor_variants(problem, settings, args.compare)
            print_compare(bench_compare(variants, args.repeats), args.compare, common, args.iters)
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
