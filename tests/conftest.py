import random

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_global_rngs():
    # river's checks shuffle and drop features with the global `random`; keep runs repeatable
    random.seed(0)
    np.random.seed(0)
