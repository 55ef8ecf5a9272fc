"""streamrnn: recurrent networks that keep learning while the data streams in."""
from streamrnn.classification import GRUClassifier, LSTMClassifier, RNNClassifier
from streamrnn.forecasting import GRUForecaster, LSTMForecaster, RNNForecaster
from streamrnn.multiseries import BatchResult, GlobalForecaster
from streamrnn.regression import GRURegressor, LSTMRegressor, RNNRegressor

__version__ = "0.2.0"

__all__ = ["RNNForecaster", "LSTMForecaster", "GRUForecaster", "RNNRegressor", "LSTMRegressor",
           "GRURegressor", "RNNClassifier", "LSTMClassifier", "GRUClassifier"]
# the multi-series forecaster: ``from streamrnn import GlobalForecaster`` (kept out of
# ``__all__``, which the per-series suites iterate over as the one-series estimators)
