"""streamrnn._core._keymap.KeyMap against the OrderedDict it replaces (the readable
reference): random sequences of the operations GlobalForecaster uses give the same mapping
and the same least-recently-seen order after every operation; misuse raises and changes
nothing."""
import pickle
import random
from collections import OrderedDict

import numpy as np
import pytest

from streamrnn._core._keymap import KeyMap


def same(km, od):
    assert len(km) == len(od)
    assert km.keys() == list(od) == list(km)
    assert km.values() == list(od.values())
    assert km.items() == list(od.items())
    for k, s in od.items():
        assert k in km and km[k] == s and km.get(k) == s


def reference_touch(od, keys, slots):
    """What GlobalForecaster did with its OrderedDict after a step."""
    od.update(zip(keys, slots))
    for k in keys:
        od.move_to_end(k)


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_match_an_ordered_dict(seed):
    rng = random.Random(seed)
    universe = [f"k{i}" for i in range(40)] + [b"b1", b"b2", 3, -7, 2**62, "é", ""]
    km, od = KeyMap(), OrderedDict()
    free = list(range(80))
    rng.shuffle(free)
    for _ in range(600):
        op = rng.random()
        if op < 0.5:  # a step: distinct keys, new ones take free slots
            ks = rng.sample(universe, rng.randint(0, 12))
            # fresh objects, as a decoder makes them: equal, not identical
            ks = [k.encode().decode() if type(k) is str else k for k in ks]
            out = np.empty(len(ks), dtype=np.int64)
            missing = km.lookup(ks, out)
            assert missing == sum(k not in od for k in ks)
            assert out.tolist() == [od.get(k, -1) for k in ks]
            for j in np.flatnonzero(out < 0).tolist():
                out[j] = free.pop()
            km.touch(ks, out)
            reference_touch(od, ks, out.tolist())
        elif op < 0.65 and od:  # evictions
            n = rng.randint(0, min(4, len(od)))
            gone = km.pop_oldest(n)
            assert gone == [od.popitem(last=False)[1] for _ in range(n)]
            free.extend(gone)
        elif op < 0.75 and od:  # forget
            k = rng.choice(list(od))
            s = km.pop(k)
            assert s == od.pop(k)
            free.append(s)
        elif op < 0.8 and od:
            last = rng.random() < 0.5
            item = km.popitem(last=last)
            assert item == od.popitem(last=last)
            free.append(item[1])
        elif op < 0.9:  # a new key entered directly (as a state is loaded)
            k = rng.choice(universe)
            if k not in od:
                s = free.pop()
                km[k] = s
                od[k] = s
        else:  # pickle round trip
            km = pickle.loads(pickle.dumps(km))
        same(km, od)


def test_misuse_raises_and_changes_nothing():
    km = KeyMap([("a", 0), ("b", 5), ("c", 2)])
    before = km.items()
    out = np.empty(2, dtype=np.int64)
    with pytest.raises(ValueError):
        km.lookup(["a"], out)                        # wrong output length
    with pytest.raises(ValueError):
        km.touch(["a", "x"], np.array([0, 5]))       # slot 5 holds b
    with pytest.raises(ValueError):
        km.touch(["a", "b"], np.array([0, 9]))       # b has slot 5
    with pytest.raises(ValueError):
        km.touch(["x"], np.array([-1]))
    with pytest.raises(ValueError):
        km.touch(["a"], np.array([0, 1]))
    with pytest.raises(ValueError):
        km["a"] = 7                                  # a key keeps its slot
    with pytest.raises(ValueError):
        km["x"] = 5                                  # slot taken
    with pytest.raises(ValueError):
        km["x"] = -3
    with pytest.raises(TypeError):
        km["x"] = 1.0
    with pytest.raises(TypeError):
        km.lookup([["unhashable"]], np.empty(1, dtype=np.int64))
    with pytest.raises(ValueError):
        km.pop_oldest(4)
    with pytest.raises(KeyError):
        km.pop("zz")
    assert km.items() == before
    assert KeyMap().keys() == [] and len(KeyMap()) == 0
    with pytest.raises(KeyError):
        KeyMap().popitem()


def test_large_slots_and_growth():
    km = KeyMap()
    slots = np.array([100_000, 3, 70_000], dtype=np.int64)
    km.touch(["x", "y", "z"], slots)
    km.touch(["x"], np.array([100_000]))
    assert km.items() == [("y", 3), ("z", 70_000), ("x", 100_000)]
