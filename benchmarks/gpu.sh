#!/usr/bin/env bash
# The GPU figures of benchmarks/RESULTS.md, on the device machine of the `device` tool, in calls of under
# 10 minutes each.
# Here first:  bash ../shared/tools/device-wheels.sh    (hydra, omegaconf, antlr4, pgmax into .whl/)
#              rm -rf data_cache && cp -r ../shared/datasets data_cache    (git-ignored; ../shared does not travel)
# Then there:  run command="bash benchmarks/gpu.sh bench"   with carry [".whl", "data_cache"]
#              run command="bash benchmarks/gpu.sh tests"   with carry [".whl", "data_cache"]
#              run command="bash benchmarks/gpu.sh fashion" with carry [".whl", "data_cache"]
#              run command="bash benchmarks/gpu.sh scale"   (issue 13: n = 1e6, bag 2,048 end to end)
#              run command="bash benchmarks/gpu.sh rounds"  (issue 13: graph + BP against training per round;
#                                                      issue 24: compile_s of a 3-seed sweep in one process)
# What they print lands in $OUT.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 LLP_JAX_DATA_DIR=$PWD/data_cache
out=${OUT:-benchmarks/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -c "import jax, flax, optax; print(jax.__version__, flax.__version__, optax.__version__, jax.devices())" \
  | tee "$out/versions.txt"
case "${1:-bench}" in
  bench)
    python3 scripts/bench_bp.py --n 1000000 --bag-size 2048 --k 5 --mode count | tee "$out/bp_count.jsonl"
    python3 scripts/bench_bp.py --n 1000000 --bag-size 8 --k 5 --mode clique --pgmax | tee "$out/bp_clique.jsonl"
    python3 scripts/bench_knn.py --n 1000000 --d 128 --k 10 | tee "$out/knn.jsonl"
    ;;
  tests)
    python3 -m pytest -q -m "not slow" tests 2>&1 | tail -5 | tee "$out/tests.txt"
    ;;
  fashion)
    # The fashion-MNIST table with the default CNN and epoch budget (make results-fashion is sized for a CPU).
    python3 scripts/train.py -m seed=0,1,2 bagging.bag_size=32,128,512 dataset=fashion_mnist model=cnn \
      method=supervised,dllp,easyllp,llp_bp train.progress=false hydra.sweep.dir=/tmp/fashion 2>&1 \
      | grep "test AUC" | tee "$out/fashion.txt"
    python3 scripts/report.py /tmp/fashion --out "$out/fashion_table"   # run folders hold checkpoints: not in $OUT
    ;;
  scale)
    python3 scripts/bench_knn.py --n 100000 --d 64 --k 5 --floor --recall-queries 200 | tee "$out/knn_floor.jsonl"
    python3 scripts/bench_pipeline.py --n 1000000 --bag-size 2048 --methods llp_bp supervised --epochs 5 \
      --llp-bp-override schedule=easyllp_warm | tee "$out/pipeline.jsonl"
    ;;
  rounds)
    for cell in "bank_marketing 128" "adult 512"; do
      set -- $cell
      python3 scripts/train.py -m method=llp_bp dataset=$1 bagging.bag_size=$2 seed=0,1,2 \
        compilation_cache_dir=null train.progress=false hydra.sweep.dir=/tmp/rounds/$1 2>&1 | (grep "test AUC" || true)
      python3 benchmarks/round_costs.py /tmp/rounds/$1 | tee "$out/round_costs_$1.jsonl"
    done
    ;;
  *) echo "usage: bash benchmarks/gpu.sh bench|tests|fashion|scale|rounds" >&2; exit 2 ;;
esac
