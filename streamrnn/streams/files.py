"""Files, standard input and river datasets as sources; JSON-lines files and stdout as sinks.

A file is one partition (0) and a record's offset is its index among the file's records
(0-based; the CSV header is not a record), so a checkpoint can resume a file part-way.
Standard input cannot seek: resuming skips as many lines as the checkpoint had read.

Lines are buffered in linear time, and a line longer than ``max_line_bytes`` (default 1 MiB)
is a bad message (``line too long``) that keeps its offset; it is skipped as it streams past,
never held in memory whole.
"""
from __future__ import annotations

import csv
import datetime as _dt
import errno
import json
import logging
import math
import os
import select
import stat
import sys

from streamrnn.streams.messages import BadMessages, Decoder, Observation, Sink, Source

__all__ = ["JsonLinesSource", "CsvSource", "StdinSource", "DatasetSource", "JsonLinesSink",
           "file_source", "LineSplitter", "MAX_LINE_BYTES"]

log = logging.getLogger("streamrnn.streams")

BATCH = 512
MAX_LINE_BYTES = 1 << 20
_HEAD = 1024  # bytes of an over-long line kept for its dead-letter record


class TooLong:
    """Stands for a line longer than the limit: its length and its first bytes."""

    __slots__ = ("nbytes", "head")

    def __init__(self, nbytes, head):
        self.nbytes = nbytes
        self.head = head

    def strip(self):
        return True  # not a blank line


class LineSplitter:
    """Split a byte stream fed in chunks into lines, in time linear in the bytes fed; a line
    longer than ``max_line_bytes`` comes out as a :class:`TooLong` and is never held whole."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES):
        if type(max_line_bytes) is not int or max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be an int >= 1, got {max_line_bytes!r}")
        self.max = max_line_bytes
        self.reset()

    def reset(self):
        self._parts = []   # pieces of the line in progress
        self._len = 0      # its length so far
        self._over = 0     # > 0: the line in progress is too long; bytes seen of it
        self._head = b""

    def feed(self, chunk: bytes) -> list:
        """The lines completed by ``chunk`` (bytes without the newline, or TooLong)."""
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if lines:
            first = lines[0]
            if self._over:
                lines[0] = TooLong(self._over + len(first), self._head)
            elif self._parts:
                total = self._len + len(first)
                lines[0] = (TooLong(total, (b"".join(self._parts) + first[:_HEAD])[:_HEAD])
                            if total > self.max else b"".join(self._parts) + first)
            self.reset()
            if len(chunk) > self.max:  # only then can a line inside the chunk be too long
                mx = self.max
                lines = [ln if type(ln) is not bytes or len(ln) <= mx
                         else TooLong(len(ln), ln[:_HEAD]) for ln in lines]
        if tail:
            self._add(tail)
        return lines

    def _add(self, piece):
        if self._over:
            self._over += len(piece)
        elif self._len + len(piece) > self.max:
            self._over = self._len + len(piece)
            self._head = (b"".join(self._parts) + piece[:_HEAD])[:_HEAD]
            self._parts, self._len = [], 0
        else:
            self._parts.append(piece)
            self._len += len(piece)

    def finish(self) -> list:
        """The last line when the stream ends without a newline."""
        if self._over:
            out = [TooLong(self._over, self._head)]
        elif self._parts:
            out = [b"".join(self._parts)]
        else:
            out = []
        self.reset()
        return out


class _LineSource(Source):
    """JSON lines from a binary stream; ``_more`` fills the line buffer."""

    def __init__(self, decoder: Decoder | None = None, bad: BadMessages | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES):
        self.decoder = decoder or Decoder()
        self.bad = bad or BadMessages()
        self.max_line_bytes = max_line_bytes
        self._split = LineSplitter(max_line_bytes)
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
            if type(line) is TooLong:
                out.append(self.decoder.too_long(line.nbytes, self.max_line_bytes, 0, off,
                                                 line.head))
            else:
                out.append(decode(line, 0, off))
        if not out and self._eof and self._pos >= len(self._lines):
            return None
        return out


class JsonLinesSource(_LineSource):
    """One JSON object per line of a file."""

    def __init__(self, path, decoder=None, bad=None, max_line_bytes=MAX_LINE_BYTES):
        super().__init__(decoder, bad, max_line_bytes)
        self.path = os.fspath(path)
        self._f = open(self.path, "rb")

    def _more(self, timeout):
        while True:  # a file never blocks: read on until a line is complete
            chunk = self._f.read(1 << 20)
            if not chunk:
                self._eof = True
                return self._split.finish()
            lines = self._split.feed(chunk)
            if lines:
                return lines

    def _rewind(self):
        self._f.seek(0)
        self._split.reset()
        self._lines, self._pos, self._eof = [], 0, False

    def describe(self, partition):
        return {"kind": "file", "path": os.path.abspath(self.path), "partition": partition}

    def close(self):
        self._f.close()


class StdinSource(_LineSource):
    """JSON lines from standard input (or any readable file descriptor)."""

    def __init__(self, decoder=None, bad=None, fd=None, max_line_bytes=MAX_LINE_BYTES):
        super().__init__(decoder, bad, max_line_bytes)
        self.fd = sys.stdin.fileno() if fd is None else fd

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
            return self._split.finish()
        return self._split.feed(chunk)

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


_TOO_LONG = "\ufdd0streamrnn-line-too-long:"  # a noncharacter: never in a real CSV cell


def _limited_lines(f, max_chars):
    """The lines of text file ``f``; a line over ``max_chars`` characters is read past in
    pieces and stands as one marker line (so it stays one record)."""
    while True:
        line = f.readline(max_chars + 1)
        if not line:
            return
        if len(line) > max_chars and not line.endswith("\n"):
            n = len(line)
            while True:
                more = f.readline(1 << 16)
                n += len(more)
                if not more:
                    break
                if more.endswith("\n"):
                    n -= 1  # the newline is not part of the line
                    break
            line = f"{_TOO_LONG}{n}\n"
        yield line


_DELIMITERS = ",;\t|"


def _delimiter(header: str) -> str:
    """The delimiter of a CSV file, read off its header line: whichever of ``,`` ``;`` tab
    ``|`` it holds most often (ties in that order; ``,`` when it holds none)."""
    counts = [(header.count(d), -i, d) for i, d in enumerate(_DELIMITERS)]
    n, _, d = max(counts)
    return d if n else ","


class CsvSource(Source):
    """Rows of a CSV file with a header; cells that read as numbers become numbers, empty cells
    are left out, others stay strings (a string target is a bad record).

    The rules: the first line is the header (a UTF-8 byte-order mark, as Excel's "CSV UTF-8"
    writes, is dropped); the delimiter is read off the header line (the most frequent of
    ``,`` ``;`` tab ``|``); cells may be quoted with ``"``; the header must name the target
    column (and the key and time columns when given), else opening fails with the columns it
    has. A line over ``max_line_bytes`` characters is a bad record (``line too long``) read
    past in pieces; a row csv cannot parse (e.g. a cell over csv's own field limit) is a bad
    record; bytes that are not UTF-8 read as U+FFFD. A bad record's dead-letter payload is its
    raw line."""

    def __init__(self, path, decoder=None, bad=None, max_line_bytes=MAX_LINE_BYTES):
        self.path = os.fspath(path)
        self.decoder = decoder or Decoder()
        self.bad = bad or BadMessages()
        self.max_line_bytes = max_line_bytes
        self._f = open(self.path, newline="", encoding="utf-8-sig", errors="replace")
        try:
            self._open_reader()
            self.columns = list(self._reader.fieldnames or [])
            self._check_columns()
        except BaseException:
            self._f.close()
            raise
        self._next = 0
        self._skip = 0

    def _open_reader(self):
        self._raw = []
        lines = _limited_lines(self._f, self.max_line_bytes)
        first = next(lines, "")
        self.delimiter = _delimiter(first)

        def tap():
            if first:
                self._raw.append(first)
                yield first
            for line in lines:
                self._raw.append(line)
                yield line
        self._reader = csv.DictReader(tap(), delimiter=self.delimiter)
        _ = self._reader.fieldnames  # reads the header
        self._raw.clear()

    def _check_columns(self):
        cols = self.columns
        shown = ", ".join(repr(c) for c in cols[:30]) + (", ..." if len(cols) > 30 else "")
        if not cols:
            raise ValueError(f"{self.path}: empty file, no header line (the first line must "
                             "name the columns)")
        d = self.decoder
        need = [("target", d.target, "--target")]
        if getattr(d, "_key_kind", None) == "field":
            need.append(("key", d.key, "--key"))
        if d.time:
            need.append(("time", d.time, "--time"))
        for role, name, opt in need:
            if name not in cols:
                raise ValueError(f"{self.path}: no column {name!r} (the {role}, {opt}); its "
                                 f"header (delimiter {self.delimiter!r}) has the columns {shown}")

    def seek(self, positions):
        target = int(positions.get(0, 0))
        if target < self._next:
            self._f.seek(0)
            self._open_reader()
            self._next = 0
        self._skip = target - self._next

    def read(self, timeout=1.0):
        out = []
        from_dict = self.decoder.from_dict
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                break
            except csv.Error as e:  # e.g. a field over csv's size limit: a bad record
                row = e
            raw = "".join(self._raw).rstrip("\r\n")
            self._raw.clear()
            off = self._next
            self._next += 1
            if self._skip > 0:
                self._skip -= 1
                continue
            if isinstance(row, csv.Error):
                out.append(Observation(None, None, None, None, 0, off, f"not CSV: {row}", raw,
                                       "other"))
                continue
            first = next(iter(row.values()), None)
            if type(first) is str and first.startswith(_TOO_LONG):
                out.append(self.decoder.too_long(int(first[len(_TOO_LONG):]),
                                                 self.max_line_bytes, 0, off))
                continue
            d = {k: _csv_value(v) for k, v in row.items() if k is not None}
            d = {k: v for k, v in d.items() if v is not None}
            out.append(from_dict(d, 0, off, payload=raw))
            if len(out) >= BATCH:
                break
        return out or None

    def describe(self, partition):
        return {"kind": "file", "path": os.path.abspath(self.path), "partition": partition}

    def close(self):
        self._f.close()


def file_source(path, decoder=None, bad=None, max_line_bytes=MAX_LINE_BYTES) -> Source:
    """A CSV source for ``*.csv``, a JSON-lines source otherwise."""
    if str(path).lower().endswith(".csv"):
        return CsvSource(path, decoder, bad, max_line_bytes)
    return JsonLinesSource(path, decoder, bad, max_line_bytes)


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
    """JSON lines to a file (appended) or, with ``path`` None or ``"-"``, to standard output.

    ``flush()`` returns True once every line is written to the operating system; a write or
    flush that fails (a closed pipe: ``BrokenPipeError``; a full disk) raises, which stops a
    :class:`~streamrnn.streams.Runner` with its last checkpoint intact. Opening a regular file
    whose last line was cut short (a crash or a full disk mid-write) first removes that torn
    tail, so appended lines start on a line of their own. ``close()`` fsyncs regular files
    only (not ``/dev/null``, pipes or terminals).
    """

    def __init__(self, path=None):
        if path is None or path == "-":
            self._f = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
            self._text = None if self._f is not None else sys.stdout
            self._own = False
        else:
            self.path = os.fspath(path)
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISREG(st.st_mode) and st.st_size:
                self._drop_torn_tail()
            self._f = open(self.path, "ab")
            self._text = None
            self._own = True
            try:
                self._regular = stat.S_ISREG(os.fstat(self._f.fileno()).st_mode)
            except BaseException:
                self._f.close()
                raise
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode

    def _drop_torn_tail(self):
        fd = os.open(self.path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
                return
            end, keep = size, 0  # find the last newline, reading backwards in blocks
            while end > 0:
                start = max(0, end - (1 << 16))
                i = os.pread(fd, end - start, start).rfind(b"\n")
                if i >= 0:
                    keep = start + i + 1
                    break
                end = start
            os.ftruncate(fd, keep)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.warning("%s ended in a torn line (%d bytes without a newline): removed it before "
                    "appending", self.path, size - keep)

    def send(self, record, key=None):
        line = self._dumps(record) + "\n"
        if self._f is not None:
            self._f.write(line.encode())
        else:
            self._text.write(line)

    @property
    def nan_is_null(self):  # send_many encodes with orjson when installed
        from streamrnn.streams.messages import NAN_IS_NULL
        return NAN_IS_NULL

    def send_many(self, records, keys=None):
        """One write for all ``records`` (orjson when installed: the same JSON values, NaN
        as null)."""
        if not records:
            return []
        from streamrnn.streams.messages import dumps_bytes
        data = b"\n".join(map(dumps_bytes, records)) + b"\n"
        if self._f is not None:
            self._f.write(data)
        else:
            self._text.write(data.decode())
        return []

    def send_encoded(self, values, keys=None):
        """Write records already encoded as JSON bytes (one line each)."""
        if not values:
            return []
        data = b"\n".join(values) + b"\n"
        if self._f is not None:
            self._f.write(data)
        else:
            self._text.write(data.decode())
        return []

    def tick(self):
        self.flush()

    def flush(self):
        (self._f or self._text).flush()  # raises when the file or pipe is gone
        return True

    def close(self):
        if not self._own:
            self.flush()
            return
        if self._f.closed:
            return
        try:
            self._f.flush()
            if self._regular:
                try:
                    os.fsync(self._f.fileno())
                except OSError as e:
                    if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
                        raise
        finally:
            self._f.close()
