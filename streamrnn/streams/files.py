"""Files, standard input and river datasets as sources; JSON-lines files and stdout as sinks.

A file is one partition (0) and a record's offset is its index among the file's records
(0-based; the CSV header is not a record), so a checkpoint can resume a file part-way.
Standard input cannot seek: resuming skips as many lines as the checkpoint had read.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import select
import sys

from streamrnn.streams.messages import BadMessages, Decoder, Observation, Sink, Source

__all__ = ["JsonLinesSource", "CsvSource", "StdinSource", "DatasetSource", "JsonLinesSink",
           "file_source"]

BATCH = 512


class _LineSource(Source):
    """JSON lines from a binary stream; ``_more`` fills the line buffer."""

    def __init__(self, decoder: Decoder | None = None, bad: BadMessages | None = None):
        self.decoder = decoder or Decoder()
        self.bad = bad or BadMessages()
        self._next = 0     # offset of the next line to hand out
        self._skip = 0     # lines still to skip after a seek
        self._lines = []
        self._pos = 0
        self._eof = False

    def seek(self, positions):
        target = int(positions.get(0, 0))
        if target < self._next:
            self._rewind()
            self._next = 0
        self._skip = target - self._next

    def _rewind(self):
        raise NotImplementedError(f"{type(self).__name__} cannot go back")

    def read(self, timeout=1.0):
        out = []
        decode = self.decoder.decode
        while len(out) < BATCH:
            if self._pos >= len(self._lines):
                if self._eof:
                    break
                self._lines, self._pos = self._more(timeout if not out else 0.0), 0
                if not self._lines:
                    break
                continue
            line = self._lines[self._pos]
            self._pos += 1
            if not line.strip():
                continue  # blank lines are not records
            off = self._next
            self._next += 1
            if self._skip > 0:
                self._skip -= 1
                continue
            out.append(decode(line, 0, off))
        if not out and self._eof and self._pos >= len(self._lines):
            return None
        return out


class JsonLinesSource(_LineSource):
    """One JSON object per line of a file."""

    def __init__(self, path, decoder=None, bad=None):
        super().__init__(decoder, bad)
        self.path = os.fspath(path)
        self._f = open(self.path, "rb")

    def _more(self, timeout):
        lines = self._f.readlines(1 << 20)
        if not lines:
            self._eof = True
        return lines

    def _rewind(self):
        self._f.seek(0)
        self._lines, self._pos, self._eof = [], 0, False

    def describe(self, partition):
        return {"kind": "file", "path": os.path.abspath(self.path), "partition": partition}

    def close(self):
        self._f.close()


class StdinSource(_LineSource):
    """JSON lines from standard input (or any readable file descriptor)."""

    def __init__(self, decoder=None, bad=None, fd=None):
        super().__init__(decoder, bad)
        self.fd = sys.stdin.fileno() if fd is None else fd
        self._tail = b""

    def _more(self, timeout):
        try:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            ready = [self.fd]  # not selectable (e.g. a regular file on some systems)
        if not ready:
            return []
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            self._eof = True
            lines = [self._tail] if self._tail else []
            self._tail = b""
            return lines
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = lines.pop()
        return lines

    def describe(self, partition):
        return {"kind": "stdin", "partition": partition}


def _csv_value(v):
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


class CsvSource(Source):
    """Rows of a CSV file with a header; cells that read as numbers become numbers, empty cells
    are left out, others stay strings (a string target is a bad record)."""

    def __init__(self, path, decoder=None, bad=None):
        self.path = os.fspath(path)
        self.decoder = decoder or Decoder()
        self.bad = bad or BadMessages()
        self._f = open(self.path, newline="", encoding="utf-8")
        self._reader = csv.DictReader(self._f)
        self._next = 0
        self._skip = 0

    def seek(self, positions):
        target = int(positions.get(0, 0))
        if target < self._next:
            self._f.seek(0)
            self._reader = csv.DictReader(self._f)
            self._next = 0
        self._skip = target - self._next

    def read(self, timeout=1.0):
        out = []
        from_dict = self.decoder.from_dict
        for row in self._reader:
            off = self._next
            self._next += 1
            if self._skip > 0:
                self._skip -= 1
                continue
            d = {k: _csv_value(v) for k, v in row.items() if k is not None}
            d = {k: v for k, v in d.items() if v is not None}
            out.append(from_dict(d, 0, off, payload=d))
            if len(out) >= BATCH:
                break
        return out or None

    def describe(self, partition):
        return {"kind": "file", "path": os.path.abspath(self.path), "partition": partition}

    def close(self):
        self._f.close()


def file_source(path, decoder=None, bad=None) -> Source:
    """A CSV source for ``*.csv``, a JSON-lines source otherwise."""
    if str(path).lower().endswith(".csv"):
        return CsvSource(path, decoder, bad)
    return JsonLinesSource(path, decoder, bad)


class DatasetSource(Source):
    """Replays a river dataset ``(x, y)`` as one series named ``key``: dates in ``x`` become the
    time stamp, numbers become features."""

    def __init__(self, dataset, key="series", bad=None, name=None):
        self.dataset = dataset
        self.key = key
        self.name = name or type(dataset).__name__
        self.bad = bad or BadMessages()
        self._it = iter(dataset)
        self._next = 0
        self._skip = 0

    def seek(self, positions):
        target = int(positions.get(0, 0))
        if target < self._next:
            self._it, self._next = iter(self.dataset), 0
        self._skip = target - self._next

    def read(self, timeout=1.0):
        out = []
        for x, y in self._it:
            off = self._next
            self._next += 1
            if self._skip > 0:
                self._skip -= 1
                continue
            t, feats = None, {}
            for k, v in x.items():
                if isinstance(v, (_dt.date, _dt.time)):
                    t = v.isoformat()
                elif isinstance(v, (int, float)) and (not isinstance(v, float) or math.isfinite(v)):
                    feats[k] = v
            out.append(Observation(self.key, feats, float(y), t, 0, off))
            if len(out) >= BATCH:
                break
        return out or None

    def describe(self, partition):
        return {"kind": "dataset", "name": self.name, "partition": partition}


class JsonLinesSink(Sink):
    """JSON lines to a file (appended) or, with ``path`` None or ``"-"``, to standard output."""

    def __init__(self, path=None, flush_every: int = 0):
        if path is None or path == "-":
            self._f = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
            self._text = None if self._f is not None else sys.stdout
            self._own = False
        else:
            self._f = open(path, "ab")
            self._text = None
            self._own = True
        self.flush_every = flush_every
        self._n = 0
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode

    def send(self, record, key=None):
        line = self._dumps(record) + "\n"
        if self._f is not None:
            self._f.write(line.encode())
        else:
            self._text.write(line)
        self._n += 1
        if self.flush_every and self._n % self.flush_every == 0:
            self.flush()

    def tick(self):
        self.flush()

    def flush(self):
        try:
            (self._f or self._text).flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self):
        self.flush()
        if self._own:
            os.fsync(self._f.fileno())
            self._f.close()

