"""Structured fuzzing of checkpoints: thousands of well-signed mutations of real files.

Each structural mutation changes the JSON header (numbers to negatives, huge numbers, floats or
strings; lists to objects; keys dropped, renamed or duplicated; deep nesting; array
descriptors' shape, offset and dtype; ``$array`` references repeated; the data block's length).
Each lie changes numbers of a state keeping their types, so it reaches the model's own
validation. The file is re-signed so it passes the checksum, and a child process loads it.
Every load must end in CheckpointError or in models that then learn and forecast normally, with
memory in proportion to the file; a child that dies by a signal fails the test and names the
mutation. The seed is fixed, so a failure is reproducible with :func:`mutate` / :func:`lie`.
"""
import copy
import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_checkpoint_compat import OLD
from test_checkpoint_hostile import run_child, sign, split, trained
from streamrnn import checkpoint as ck
from streamrnn import spec as sp

N_MUTATIONS = 2500  # structural mutations
N_LIES = 500        # and type-preserving lies about numbers
PER_CHILD = 500
SEED = 20261201

HUGE = [2 ** 31, 2 ** 32 + 1, 2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 10 ** 30, -2 ** 63,
        1e308, -1e308, 5e-324]


def _paths(node, prefix=()):
    """Every path to a value in a JSON tree (objects and lists included)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _get(root, path):
    for p in path:
        root = root[p]
    return root


def _set(root, path, value):
    _get(root, path[:-1])[path[-1]] = value


def _new_value(rng, old, header):
    """A replacement for ``old``: the structured kinds of lie a writer could tell."""
    n_arrays = len(header["arrays"])
    choices = []
    if type(old) in (int, float):
        choices += [-old if old else -1, old + 1, old - 1, old * 2 + 1, 0, -1,
                    rng.choice(HUGE), float(old) + 0.5, str(old), bool(old), None, [old]]
    if type(old) is str:
        choices += ["", old + "x", old * 50, 0, -1, None, [old], {"x": old}, "\u0000",
                    "nan", "$array"]
    if type(old) is bool or old is None:
        choices += [0, 1, 2, -1, "true", None, not old, [], {}]
    if type(old) is list:
        choices += [{str(i): v for i, v in enumerate(old)}, [], old[:-1], old + old[-1:],
                    old[:1] * 3, old + [None], old + [-1], [old], old[::-1]]
    if type(old) is dict:
        d = dict(old)
        if d:
            k = rng.choice(sorted(d))
            drop = {kk: vv for kk, vv in d.items() if kk != k}
            renamed = {(kk + "_" if kk == k else kk): vv for kk, vv in d.items()}
            choices += [drop, renamed, list(d.values()), {**d, "extra": d[k]}, {k: d[k]}]
        choices += [{}, {"$array": rng.randrange(-1, n_arrays + 2)}, {"$float": "nan"},
                    {"$float": "-inf"}]
    choices += [{"$array": rng.randrange(max(1, n_arrays))}]  # a reference, maybe repeated
    deep = old
    for _ in range(rng.choice([2, 5, 40])):
        deep = [deep]
    choices.append(deep)
    return rng.choice(choices)


def mutate(header, rng):
    """Apply 1 to 3 structured mutations to ``header`` in place; return their descriptions."""
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        try:
            _one(header, rng, done)
        except (LookupError, TypeError, AttributeError, ValueError):
            done.append("(a mutation of a part an earlier one removed: skipped)")
    return done


def _one(header, rng, done):
    if True:
        region = rng.random()
        if region < 0.15:  # array descriptors
            i = rng.randrange(len(header["arrays"]))
            d = header["arrays"][i]
            field = rng.choice(["shape", "offset", "dtype", "nbytes", "shape", "offset"])
            old = d[field]
            if field == "shape":
                new = rng.choice([[s * 2 for s in old], old + [1], old[:-1], [0] * len(old),
                                  [-s for s in old], [2 ** 31] * len(old), [sum(old) + 1]])
            elif field == "offset":
                new = rng.choice([old + 8, old - 8, old + 4, 0, 2 ** 40, -8,
                                  header["arrays"][max(0, i - 1)]["offset"]])
            elif field == "dtype":
                new = rng.choice(["<f4", "<i8", "|b1", ">f8", "|O", "<c16", "<U8", "f8"])
            else:
                new = rng.choice([old + 8, old * 2, 0, -old])
            d[field] = new
            done.append(f"arrays[{i}].{field}: {old!r} -> {new!r}")
            return
        if region < 0.25:  # a reference to an array used elsewhere
            refs = [p for p in _paths(header["states"])
                    if isinstance(_get(header["states"], p), dict)
                    and "$array" in _get(header["states"], p)]
            if refs:
                a, b = rng.sample(refs, 2) if len(refs) > 1 else (refs[0], refs[0])
                _set(header["states"], b, copy.deepcopy(_get(header["states"], a)))
                done.append(f"states{list(b)} := states{list(a)} (repeated $array)")
                return
        top = rng.choices(["states", "spec", "position", "keys", "source", "extra", None],
                          weights=[70, 10, 6, 6, 2, 2, 4])[0]
        root = header if top is None else header[top]
        paths = [p for p in _paths(root)]
        if top is None:
            paths = [p for p in paths if len(p) == 1]
            if rng.random() < 0.5:
                k = rng.choice(sorted(header))
                old = header.pop(k)
                if rng.random() < 0.5:
                    header[k + "_"] = old
                done.append(f"header field {k!r} dropped or renamed")
                return
        if not paths or paths == [()]:
            new = _new_value(rng, root, header)
            header[top] = new
            done.append(f"{top}: -> {json.dumps(new)[:120]}")
            return
        path = rng.choice([p for p in paths if p] or paths)
        old = _get(root, path)
        new = _new_value(rng, old, header)
        _set(root, path, new)
        where = ".".join(map(str, ((top,) if top else ()) + path))
        done.append(f"{where}: {json.dumps(old)[:80]} -> {json.dumps(new)[:120]}")


# type-preserving lies about the numbers of a state: they pass every structural check and so
# reach the model's own validation (scalers, history, counters) and then learning
_LIES = [lambda v: -v, lambda v: v * 1e6, lambda v: v + 1, lambda v: 0, lambda v: v * 1e90,
         lambda v: 2 ** 62 - 1 if type(v) is int else 1e100,
         lambda v: -1 if type(v) is int else -1e100, lambda v: v * 3 if type(v) is int else 5e-324]


def lie(header, rng):
    """Change 1 or 2 numbers of the states outside the networks, keeping their types."""
    leaves = [p for p in _paths(header["states"])
              if p and type(_get(header["states"], p)) in (int, float) and "_net" not in p[:2]]
    done = []
    for _ in range(rng.choice([1, 2])):
        p = rng.choice(leaves)
        old = _get(header["states"], p)
        new = rng.choice(_LIES)(old)
        if type(old) is int and type(new) is float and abs(new) < 2 ** 62:
            new = int(new)
        _set(header["states"], p, new)
        done.append(f"states{list(p)}: {old!r} -> {new!r}")
    return done


def _dup_keys(text, rng):
    """A JSON text with one object key duplicated (a later value silently wins in most
    parsers)."""
    i = text.find('"t": ', rng.randrange(len(text)))
    if i < 0:
        return text, None
    return text[:i] + '"t": -1, ' + text[i:], f"duplicate key 't' at {i}"


def _sources(tmp):
    out = []
    specs = [sp.model_spec("gru", hidden_size=3, seed=1),
             sp.model_spec("lstm", hidden_size=2, num_layers=2, seasonality=3, update_every=2,
                           tbptt_steps=3, seed=2, optimizer="RMSProp", lr=0.01),
             sp.model_spec("rnn", hidden_size=3, seed=3, loss="Huber", optimizer="SGD",
                           clip_gradient=0.5)]
    for j, spec in enumerate(specs):
        p = tmp / f"src{j}.srnn"
        models = {"a": trained(spec, 25), "b": trained(spec, 8, 2), "fresh": sp.build_model(spec)}
        ck.save(p, models, spec, source={"kind": "kafka", "topic": "t", "partition": j},
                position={"partition": j, "offset": 1000 + j})
        out.append(split(p.read_bytes()))
    out.append(split(OLD))  # a file of streamrnn 0.1.0 (its state layout before the state API)
    return out


def test_thousands_of_mutations_never_crash_and_end_in_refusal_or_working_models(
        tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    sources = _sources(tmp)
    rng = random.Random(SEED)
    files, described = [], []
    for n in range(N_MUTATIONS + N_LIES):
        header, data = sources[n % len(sources)]
        header = copy.deepcopy(header)
        what = mutate(header, rng) if n < N_MUTATIONS else lie(header, rng)
        text = json.dumps(header)
        if rng.random() < 0.03:
            text, dup = _dup_keys(text, rng)
            what.append(dup)
        if rng.random() < 0.03:  # a data block that lost or gained bytes
            cut = rng.choice([-8, -1, 1, 8, -len(data)])
            data = data[:cut] if cut < 0 else data + b"\0" * cut
            what.append(f"data block {cut:+d} bytes")
        p = tmp / f"m{n}.srnn"
        p.write_bytes(sign(text.encode(), data))
        files.append(p)
        described.append(what)
    batches = [files[i:i + PER_CHILD] for i in range(0, len(files), PER_CHILD)]
    with ThreadPoolExecutor(2) as pool:  # two children at a time: the machines have 2 cores
        results = [r for batch in pool.map(lambda b: run_child(b, timeout=600), batches)
                   for r in batch]
    counts = {"refused": 0, "ok": 0}
    bad = []
    for i, r in enumerate(results):
        if r["result"] in counts:
            counts[r["result"]] += 1
        else:
            bad.append(f"{files[i].name}: {described[i]}: {r['message'][:300]}")
    print(f"{N_MUTATIONS} mutations and {N_LIES} lies: {counts}")
    assert not bad, "\n".join(bad[:30])
    # memory in proportion to the file, whatever the file says
    greedy = [f"{files[i].name}: {described[i]}: peak {r['peak']} for {r['size']} bytes"
              for i, r in enumerate(results) if r["peak"] > 4 * r["size"] + (16 << 20)]
    assert not greedy, "\n".join(greedy[:30])
    assert counts["refused"] > N_MUTATIONS // 2 and counts["ok"] > N_LIES // 10, counts


def test_mutations_are_reproducible():
    h = {"arrays": [{"dtype": "<f8", "shape": [2], "offset": 0, "nbytes": 16}],
         "states": [{"x": {"$array": 0}, "y": [1, 2.5, "s"]}], "spec": {"cell": "gru"},
         "position": {"partition": 0, "offset": 3}, "keys": ["k"], "source": None,
         "extra": {}}
    a, b = copy.deepcopy(h), copy.deepcopy(h)
    assert mutate(a, random.Random(7)) == mutate(b, random.Random(7)) and a == b
    with pytest.raises(AssertionError):
        assert a == h
