"""A streamrnn regressor inside a river pipeline, evaluated by progressive validation.

`compose` drops the date, adds the mean of the five polls as a feature next to them, and scales
everything before the LSTM; the pipeline learns and predicts one day at a time like any river
model. The same pipeline with a linear model is shown for comparison.

    python examples/river_pipeline.py [--quick]
"""
import argparse
import itertools
import statistics

from river import compose, datasets, evaluate, linear_model, metrics, preprocessing

from streamrnn import LSTMRegressor


def poll_mean(x):
    return {"poll_mean": statistics.fmean(x.values())}


def pipeline(model):
    features = compose.Discard("ordinal_date") | (
        compose.FuncTransformer(poll_mean) + compose.Select(
            "gallup", "ipsos", "morning_consult", "rasmussen", "you_gov"))
    return features | preprocessing.StandardScaler() | model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the first 400 days only")
    quick = ap.parse_args().quick

    def days():
        data = datasets.TrumpApproval()
        return itertools.islice(data, 400) if quick else data

    models = {"linear regression": pipeline(linear_model.LinearRegression()),
              "LSTM regressor   ": pipeline(LSTMRegressor(hidden_size=16, scale_inputs=False,
                                                          seed=1))}
    print(models["LSTM regressor   "])
    for name, model in models.items():
        print(f"{name}  {evaluate.progressive_val_score(days(), model, metrics.MAE())}")


if __name__ == "__main__":
    main()
