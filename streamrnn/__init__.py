"""streamrnn: recurrent networks that keep learning while the data streams in."""
from streamrnn.regression import GRURegressor, LSTMRegressor, RNNRegressor

__version__ = "0.1.0"

__all__ = ["RNNRegressor", "LSTMRegressor", "GRURegressor"]
