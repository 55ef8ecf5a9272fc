"""A GlobalForecaster state saved under other rules (an older revision of the core's
arithmetic) is refused with a clear message and leaves the model as it was."""
import pickle

import pytest

from streamrnn import GlobalForecaster


def _model():
    m = GlobalForecaster(cell="gru", hidden_size=4, tbptt_steps=4, seasonality=3, horizon=4,
                         max_keys=6, max_batch=4, seed=1)
    for t in range(12):
        m.learn_many(["a", "b"], [float(t % 3), 2.0 + t], None)
    return m


def test_the_state_carries_its_revision_and_round_trips():
    m = _model()
    tree = m._export_state()
    assert tree["revision"] == GlobalForecaster._REVISION == 4   # 4: the adaptive member
    other = _model()
    other.learn_one("c", 5.0)
    other._import_state(tree)
    assert pickle.dumps(other) == pickle.dumps(m)


@pytest.mark.parametrize("revision", [None, 1, 2, 3, 5, "4", 4.0])
def test_a_state_of_another_revision_is_refused_and_changes_nothing(revision):
    m = _model()
    tree = dict(m._export_state())
    if revision is None:
        del tree["revision"]          # what a state of an older streamrnn holds
    else:
        tree["revision"] = revision
    target = _model()
    target.learn_one("z", 1.0)
    before = pickle.dumps(target)
    with pytest.raises(ValueError, match="other rules"):
        target._import_state(tree)
    assert pickle.dumps(target) == before
