"""Decoded messages of one partition as columns: what the batched loop reads and learns.

A :class:`Columns` holds consecutive messages of one partition, in source order: the good ones
as rows of arrays (key, y, time stamp, features as a matrix with named columns, NaN where a
row has no such feature) and the bad ones as their :class:`~streamrnn.streams.Observation`
(with its ``error``), at their row. Kafka's batch decoder (``streamrnn._core._codec``) fills
them without a Python object per message; :func:`by_partition` makes them from observations
(any source), with the same content.
"""
from __future__ import annotations

import numpy as np

from streamrnn._core._scaling import VALUE_LIMIT

__all__ = ["Columns", "by_partition", "from_decoded"]

_EMPTY = np.zeros((0, 0))


class Columns:
    """Rows of one partition. ``offset`` (int64), ``key`` (list; None for a bad row), ``y``
    (float64; NaN for a bad row), ``time`` (list), ``X`` (float64, rows x ``len(names)``; NaN:
    the row has no such feature), ``names`` (the feature names, a list), ``good`` (bool),
    ``bad`` (``[(row, Observation)]`` of the bad rows, in order) and ``slow`` (``{row: x}``:
    the feature dict of a good row with a feature beyond the models' range, for the model's
    own error message)."""

    __slots__ = ("partition", "offset", "key", "y", "time", "X", "names", "good", "bad", "slow",
                 "n_good", "at", "xs")

    def __init__(self, partition, offset, key, y, time, X, names, good, bad=(), slow=None,
                 at=None, xs=None):
        self.at = at          # int64: each row's place in the read that brought it
        self.xs = xs          # the rows' feature dicts, when made from observations
        self.partition = partition
        self.offset = offset
        self.key = key
        self.y = y
        self.time = time
        self.X = X
        self.names = names
        self.good = good
        self.bad = list(bad)
        self.slow = slow or {}
        self.n_good = len(key) - len(self.bad)

    def __len__(self):
        return len(self.key)

    def observation(self, i):
        """Row ``i`` as an Observation (its own for a bad row)."""
        from streamrnn.streams.messages import Observation
        for j, o in self.bad:
            if j == i:
                return o
        x = self.slow.get(i)
        if x is None:
            x = {}
            if self.names:
                for name, v in zip(self.names, self.X[i].tolist()):
                    if v == v:
                        x[name] = v
        return Observation(self.key[i], x, float(self.y[i]), self.time[i], self.partition,
                           int(self.offset[i]))

    def cut(self, need):
        """``(head, tail)``: the rows up to and including the ``need``-th good one, and the rest
        (``need`` >= 1; the whole as head when it holds fewer)."""
        if self.n_good <= need:
            return self, None
        if not self.bad:
            stop = need
        else:
            stop = int(np.flatnonzero(self.good)[need - 1]) + 1
        return self._rows(0, stop), self._rows(stop, len(self))

    def _rows(self, i, j):
        bad = [(r - i, o) for r, o in self.bad if i <= r < j]
        slow = {r - i: x for r, x in self.slow.items() if i <= r < j}
        return Columns(self.partition, self.offset[i:j], self.key[i:j], self.y[i:j],
                       self.time[i:j], self.X[i:j], self.names, self.good[i:j], bad, slow,
                       self.at[i:j], None if self.xs is None else self.xs[i:j])

    @staticmethod
    def concat(parts):
        """One Columns of consecutive ``parts`` (of one partition)."""
        if len(parts) == 1:
            return parts[0]
        names = list(parts[0].names)
        for c in parts[1:]:
            if c.names != names:
                for k in c.names:
                    if k not in names:
                        names.append(k)
        key, time, bad, slow, Xs = [], [], [], {}, []
        xs = [] if all(c.xs is not None for c in parts) else None
        at = 0
        for c in parts:
            key += c.key
            time += c.time
            if xs is not None:
                xs += c.xs
            bad += [(r + at, o) for r, o in c.bad]
            slow.update({r + at: x for r, x in c.slow.items()})
            if c.names == names:
                Xs.append(c.X)
            else:
                X = np.full((len(c), len(names)), np.nan)
                if c.names:
                    X[:, [names.index(k) for k in c.names]] = c.X
                Xs.append(X)
            at += len(c)
        return Columns(parts[0].partition, np.concatenate([c.offset for c in parts]), key,
                       np.concatenate([c.y for c in parts]), time, np.concatenate(Xs), names,
                       np.concatenate([c.good for c in parts]), bad, slow,
                       np.concatenate([c.at for c in parts]), xs)


def _in_range(x):
    return all(-VALUE_LIMIT <= v <= VALUE_LIMIT for v in x.values())


def by_partition(observations):
    """``{partition: Columns}`` of ``observations`` (in source order within each partition)."""
    groups = {}
    for i, o in enumerate(observations):
        g = groups.get(o.partition)
        if g is None:
            g = groups[o.partition] = ([], [])
        g[0].append(o)
        g[1].append(i)
    return {p: _of(p, obs, at) for p, (obs, at) in groups.items()}


def _of(p, obs, at):
    n = len(obs)
    names, col = [], {}
    key, time, bad, slow = [None] * n, [None] * n, [], {}
    y = np.full(n, np.nan)
    good = np.ones(n, dtype=bool)
    cells = []
    for i, o in enumerate(obs):
        if o.error is not None:
            bad.append((i, o))
            good[i] = False
            continue
        key[i], time[i], y[i] = o.key, o.time, o.y
        x = o.x
        if x:
            for k, v in x.items():
                c = col.get(k)
                if c is None:
                    c = col[k] = len(names)
                    names.append(k)
                cells.append((i, c, v))
            if not _in_range(x):
                slow[i] = x
    X = np.full((n, len(names)), np.nan)
    if cells:
        rows, cs, vs = zip(*cells)
        X[list(rows), list(cs)] = np.array(vs, dtype=np.float64)
    offset = np.fromiter((o.offset for o in obs), dtype=np.int64, count=n)
    xs = [o.x for o in obs]
    return Columns(p, offset, key, y, time, X, names, good, bad, slow,
                   np.array(at, dtype=np.int64), xs)


def from_decoded(status, part, off, y, keys, times, X, names, deferred):
    """``{partition: Columns}`` of a batch decoded by ``_codec.decode_messages``; ``deferred``
    maps the rows it left (status 1) to their Observation from the full decoder."""
    n = len(status)
    keep = status != 2
    if deferred:
        names = list(names)
        col = {k: j for j, k in enumerate(names)}
        extra = []
        slow = {}
        good = status == 0
        for i, o in deferred.items():
            part[i], off[i] = o.partition, o.offset
            if o.error is None:
                good[i] = True
                keys[i], times[i], y[i] = o.key, o.time, o.y
                if o.x:
                    for k, v in o.x.items():
                        c = col.get(k)
                        if c is None:
                            c = col[k] = len(names)
                            names.append(k)
                        extra.append((i, c, v))
                    if not _in_range(o.x):
                        slow[i] = o.x
        if len(names) > X.shape[1]:
            X = np.concatenate([X, np.full((n, len(names) - X.shape[1]), np.nan)], axis=1)
        if extra:
            rows, cs, vs = zip(*extra)
            X[list(rows), list(cs)] = np.array(vs, dtype=np.float64)
    else:
        good, slow = status == 0, {}
    out = {}
    for p in np.unique(part[keep]).tolist():
        sel = keep & (part == p)
        idx = np.flatnonzero(sel)
        if len(idx) == n:
            k, t, gi = keys, times, good
            Xp, yp, op = X, y, off
        else:
            k = [keys[i] for i in idx.tolist()]
            t = [times[i] for i in idx.tolist()]
            gi = good[idx]
            Xp, yp, op = X[idx], y[idx], off[idx]
        bad, sl = [], {}
        if deferred or slow:
            pos = {int(i): j for j, i in enumerate(idx.tolist())}
            bad = [(pos[i], o) for i, o in sorted(deferred.items())
                   if o.error is not None and i in pos]
            sl = {pos[i]: x for i, x in slow.items() if i in pos}
        out[p] = Columns(p, op, k, yp, t, Xp, names, gi, bad, sl,
                         np.arange(n, dtype=np.int64) if len(idx) == n else idx)
    return out
