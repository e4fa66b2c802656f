"""A sweep's runs as a table and a plot: the same command as `llp-report` (llp_jax/report.py).

python scripts/report.py multirun/bags --out benchmarks/bag_sizes
python scripts/report.py multirun/lr --by train.learning_rate
"""

from llp_jax.report import main

if __name__ == "__main__":
    main()
