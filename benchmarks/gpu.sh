#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md, in one run on the device machine of the `device` tool.
# Here first:   bash ../shared/tools/device-wheels.sh        (fetches hydra, omegaconf, antlr4, pgmax into .whl/)
# Then there:   run command="bash benchmarks/gpu.sh" with carry [".whl"]; the JSON lines land in $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD
out=${OUT:-benchmarks/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -m pytest -q -m "not slow" tests/test_bp.py tests/test_graph.py | tail -3 | tee "$out/tests.txt"
python3 scripts/bench_bp.py --n 1000000 --bag-size 2048 --k 5 --mode count | tee "$out/bp_count.jsonl"
python3 scripts/bench_bp.py --n 1000000 --bag-size 8 --k 5 --mode clique --pgmax | tee "$out/bp_clique.jsonl"
python3 scripts/bench_knn.py --n 1000000 --d 128 --k 10 | tee "$out/knn.jsonl"
