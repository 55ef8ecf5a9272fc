"""RMSprop against Adam on the same task: a GRU regressor on river's TrumpApproval.

streamrnn takes river's optimizer objects and runs the same update rule in compiled code.
Each model is evaluated by progressive validation (predict, then learn) with MAE.

    python examples/optimizers.py [--quick]
"""
import argparse
import itertools

from river import datasets, evaluate, metrics, optim

from streamrnn import GRURegressor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the first 400 days only")
    quick = ap.parse_args().quick

    optimizers = {"RMSprop(0.005)": optim.RMSProp(0.005),
                  "Adam(0.002)   ": optim.Adam(0.002),
                  "Adam(0.01)    ": optim.Adam(0.01)}
    for name, opt in optimizers.items():
        data = datasets.TrumpApproval()
        data = itertools.islice(data, 400) if quick else data
        model = GRURegressor(hidden_size=16, optimizer=opt, seed=1)
        print(f"{name}  {evaluate.progressive_val_score(data, model, metrics.MAE())}")


if __name__ == "__main__":
    main()
