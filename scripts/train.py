"""Command-line entry point, the same as the `llp-train` console script (llp_jax/cli.py):

python scripts/train.py dataset=adult method=dllp bagging.bag_size=32
python scripts/train.py -m method=dllp,easyllp bagging.bag_size=8,32,128 seed=0,1,2
"""

from llp_jax.cli import main

if __name__ == "__main__":
    main()
