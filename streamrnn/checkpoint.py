"""Safe, versioned checkpoints of per-key models and of the stream position.

Loading a checkpoint never executes code: there is no pickle. A file holds a JSON header and
raw little-endian arrays, and a SHA-256 over everything, so a truncated, corrupted or foreign
file is refused with a clear :class:`CheckpointError` before any model is built; models are
only handed back once every one of them has been rebuilt (nothing is ever half-loaded).

File layout (format version 1; all integers little-endian)
----------------------------------------------------------

====== ======== ==============================================================
offset size     content
====== ======== ==============================================================
0      8        magic ``b"SRNNCKPT"``
8      4        format version, uint32 (1)
12     4        reserved, uint32 (0)
16     8        header length ``n`` in bytes, uint64
24     n        header: UTF-8 JSON object (see below)
24+n   pad      zero bytes up to a multiple of 8; the data block starts there
...    m        data block: the arrays' bytes, each starting at a multiple of 8
end-32 32       SHA-256 of every byte before it
====== ======== ==============================================================

The header is strict JSON (no NaN or Infinity tokens) with the fields

``format``
    ``"streamrnn-checkpoint"``;
``version``
    1, the same as in the binary prefix;
``streamrnn``
    the version of streamrnn that wrote the file;
``created``
    UTC time of writing, ISO 8601;
``spec``
    the model spec: ``{"cell": "rnn"|"lstm"|"gru", "params": {...}, "optimizer": {"name", ...},
    "loss": {"name", ...}}``, complete and canonical, enough to rebuild an untrained model
    (see :mod:`streamrnn.spec`);
``source``
    what was read, e.g. ``{"kind": "kafka", "topic": "t", "partition": 3}``;
``position``
    ``{"partition": p, "offset": n}``: the next offset to read in that partition; every
    message before it has been learned by the models in this file, none after it;
``keys``
    the series keys, in the order of ``states``;
``states``
    one state tree per key (``model._export_state()``): JSON objects, lists, strings,
    numbers, booleans and null, where ``{"$array": i}`` stands for array ``i`` and
    ``{"$float": "nan"|"inf"|"-inf"}`` for a non-finite float;
``arrays``
    array descriptors ``{"dtype": "<f8", "shape": [..], "offset": o, "nbytes": b}``, with
    ``offset`` counted from the start of the data block; dtypes are limited to little-endian
    floats, integers and booleans;
``extra``
    free-form JSON the writer adds (e.g. counters of the run).

Validation on load
------------------
A file is untrusted input. Nothing it says is used to allocate, index or count before it is
checked, and every failure is a :class:`CheckpointError` naming the field
(``states[3] (key 's1')._net.state.t: must be an int in [0, 2**62), got -5``):

* the file: a regular file of at most :data:`MAX_FILE` bytes (4 GiB), its size taken before
  reading; a header length that fits the file and is at most :data:`MAX_HEADER`; the SHA-256
  streamed while reading (the data block is read once, into one buffer); zero reserved bytes
  and padding;
* the header: strict UTF-8 JSON (no ``NaN``/``Infinity``, no number that overflows a float, no
  duplicate key in an object), parsed only when its count of objects, lists and values is in
  proportion to the file (a "JSON bomb" of empty lists is refused before parsing); exactly the
  fields above; nesting at most :data:`MAX_DEPTH` (32) levels;
* ``spec``: exactly ``cell``/``params``/``optimizer``/``loss``, known names from
  :mod:`streamrnn._registry`, JSON scalars of each parameter's type, every size within
  ``_registry.LIMITS``, canonical (equal to the spec of the model it builds, except that a
  parameter it lacks, one added to the forecasters after the file was written, takes its
  default); with ``load(path, spec)``, equal to the caller's (the error lists each differing
  field, :func:`streamrnn.spec.spec_diff`);
* ``position``: null or exactly ``{"partition", "offset"}``, the offset an int in
  ``[0, 2**63)``, the partition an int >= 0 or a string of at most 256 characters, and (through
  :class:`CheckpointStore`, or ``load(..., partition=p)``) the partition asked for;
* ``keys``: at most :data:`MAX_KEYS` str of at most :data:`MAX_KEY_LEN` (1024) characters,
  unique, as many as ``states``, each state an object;
* ``arrays``: at most :data:`MAX_ARRAYS_PER_KEY` (64) per key; exactly
  ``dtype``/``shape``/``offset``/``nbytes``; an allowed dtype, at most 8 dimensions, ``nbytes``
  equal to the shape's product times the item size (exact integers); offsets 8-aligned, in
  increasing order, not overlapping, filling the data block. Arrays are views into the read
  buffer (no copy), and each is referenced by exactly one ``{"$array": i}`` of one state: a
  second reference, or an array no state refers to, is refused. Together this bounds the
  memory of a load by a small multiple of the file's size;
* each state's network, against the spec, before the kernel builds it: the configuration
  (cell, hidden size, layers, TBPTT k1/k2, loss) equal to the spec's, input and output widths
  within ``_registry.check_network_size``, every array float64, finite and of the exact shape
  that configuration implies (so the network is never larger than what the file holds), the
  step counters ints in ``[0, 2**62)``, and the optimizer's kind, learning rate,
  hyperparameters and clipping equal to the spec's, its moments of the parameter count; the
  feature map no wider than the network and ``max_features``. A file of a streamrnn 0.1
  forecaster (its spec names ``differencing``, ``damping`` or ``scale_target``) is refused
  first, with the version that wrote it and what to do: 0.2's forecasters are another model.
  The 0.1.0 state layout of networks (``__network__``/``__columns__`` nodes) is still checked
  by the same rules;
* then every model is built from the spec and takes its state through
  ``model._import_state`` (which validates the rest, such as scaler statistics and the random
  generator); any error there is a :class:`CheckpointError` too.

A file of a ``streamrnn.GlobalForecaster`` (a spec with ``"model": "global"``, see
:mod:`streamrnn.spec`) holds that one model, the key :data:`GLOBAL_KEY` (``""``), and one state
tree: ``save(path, {GLOBAL_KEY: model}, spec)``, ``load(path, spec).models[GLOBAL_KEY]``. Its
keys, arrays and counts are checked like the others' (at most :data:`MAX_ARRAYS_GLOBAL`
arrays); its state by ``GlobalForecaster._import_state``, which checks every field (the core's
parts by the core) before it assigns anything, and allocates the slot arrays only once the
state's arrays are seen to hold one row per key, so in proportion to the file. A per-key spec
with a GlobalForecaster, or a global spec with per-key models, is refused by ``save``.

Files are written atomically: to a temporary file in the same directory, flushed and
fsync-ed, renamed over the target, then the directory is fsync-ed. A crash leaves either the
old or the new checkpoint, never a mix.

Checkpoints are organised per source partition (:class:`CheckpointStore`: one file
``partition-<p>.srnn`` per partition of the source, holding the models of the keys first seen in
that partition and that partition's position), so that consumers sharing a Kafka consumer
group can hand partitions, with their models, to each other.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import stat
import struct
import tempfile

import numpy as np

from streamrnn import spec as _spec

__all__ = ["CheckpointError", "Checkpoint", "CheckpointStore", "save", "load", "read_header",
           "state_nbytes", "MAGIC", "FORMAT_VERSION"]

MAGIC = b"SRNNCKPT"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIIQ")  # magic, version, reserved, header length
_DIGEST = 32
_ALIGN = 8
_DTYPES = {"<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1", "|b1"}


# Every number a file gives is checked before it is used to allocate, index or count.
MAX_FILE = 1 << 32        # bytes of a checkpoint file (4 GiB)
MAX_HEADER = 1 << 30      # bytes of its JSON header (1 GiB), and never more than the file
MAX_KEYS = 1 << 20        # series keys in one file
MAX_KEY_LEN = 1024        # characters of one series key
MAX_ARRAYS_PER_KEY = 64   # arrays in one state tree (a forecaster has 36: network 9, columns 3,
                          # its core 2, backbone 9, combiner 4, conformal 9)
MAX_ARRAYS_GLOBAL = 256   # arrays in the state of a GlobalForecaster (one per file)
GLOBAL_KEY = ""           # the key of a file's one GlobalForecaster
MAX_DEPTH = 32            # nesting of JSON objects and lists in the header
MAX_NDIM = 8              # dimensions of one array
MAX_COUNTER = 1 << 62     # step counters: int in [0, 2**62)
MAX_OFFSET = 1 << 63      # stream positions: int in [0, 2**63)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupt, foreign, too new, or written for
    another model or source."""


# ---------------------------------------------------------------------------- state trees
def _encode_tree(node, arrays):
    t = type(node)
    if t is dict:
        if "$array" in node or "$float" in node:
            raise ValueError("state trees must not use the reserved keys '$array' and '$float'")
        out = {}
        for k, v in node.items():
            if type(k) is not str:
                raise TypeError(f"state tree keys must be strings, got {k!r}")
            out[k] = _encode_tree(v, arrays)
        return out
    if t is list or t is tuple:
        return [_encode_tree(e, arrays) for e in node]
    if isinstance(node, np.ndarray):
        arrays.append(node)
        return {"$array": len(arrays) - 1}
    if node is None or t is bool or t is str or t is int:
        return node
    if isinstance(node, (float, np.floating)):
        f = float(node)
        if math.isfinite(f):
            return f
        return {"$float": "nan" if f != f else ("inf" if f > 0 else "-inf")}
    if isinstance(node, np.bool_):
        return bool(node)
    if isinstance(node, (int, np.integer)):
        return int(node)
    raise TypeError(f"cannot store a {type(node).__name__} in a checkpoint")


def state_nbytes(model) -> int:
    """Bytes of a model's learned state as stored (array bytes plus its JSON)."""
    arrays = []
    tree = _encode_tree(model._export_state(), arrays)
    return sum(a.nbytes for a in arrays) + len(json.dumps(tree, separators=(",", ":")))


# ---------------------------------------------------------------------------- files
class Checkpoint:
    """What :func:`load` returns: ``models`` (key -> forecaster, insertion order as stored),
    ``spec``, ``source``, ``position``, ``extra``, ``created`` and ``path``."""

    __slots__ = ("models", "spec", "source", "position", "extra", "created", "path")

    def __init__(self, models, spec, source, position, extra, created, path):
        self.models = models
        self.spec = spec
        self.source = source
        self.position = position
        self.extra = extra
        self.created = created
        self.path = path

    def __repr__(self):
        return (f"Checkpoint({self.path!r}, {len(self.models)} models, "
                f"position={self.position!r})")


def _to_little(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"cannot store an array of dtype {a.dtype} in a checkpoint")
    le = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "<") else a.dtype
    if le.byteorder == "=":
        le = a.dtype.newbyteorder("<")
    return a.astype(le, copy=False)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(path, models: dict, spec: dict, *, source: dict | None = None,
         position: dict | None = None, extra: dict | None = None) -> int:
    """Write ``models`` (key -> forecaster built from ``spec``) atomically to ``path``.

    Returns the number of bytes written.
    """
    path = os.fspath(path)
    _spec.check_spec(spec)  # never write a file that load would refuse
    if position is not None:
        if not isinstance(position, dict) or set(position) != {"partition", "offset"}:
            raise ValueError(f"position must be {{'partition', 'offset'}}, got {position!r}")
        off = position["offset"]
        if isinstance(off, bool) or not isinstance(off, (int, np.integer)) or \
                not 0 <= off < MAX_OFFSET:
            raise ValueError(f"position offset must be an int in [0, 2**63), got {off!r}")
        position = {"partition": position["partition"], "offset": int(off)}
    if len(models) > MAX_KEYS:
        raise ValueError(f"{len(models)} models, over the limit of {MAX_KEYS} per checkpoint")
    _check_kind(models, spec)
    arrays: list[np.ndarray] = []
    keys, states = [], []
    for key, model in models.items():
        if not isinstance(key, str):
            raise TypeError(f"checkpoint keys are series keys as str, got {type(key).__name__} "
                            f"{key!r}")
        if len(key) > MAX_KEY_LEN:
            raise ValueError(f"series key of {len(key)} characters, over the limit of "
                             f"{MAX_KEY_LEN}: {key[:40]!r}...")
        keys.append(key)
        states.append(_encode_tree(model._export_state(), arrays))
    descr, data_len, stored = [], 0, []
    for a in arrays:
        a = _to_little(a)
        descr.append({"dtype": a.dtype.str, "shape": list(a.shape), "offset": data_len,
                      "nbytes": a.nbytes})
        stored.append(a)
        data_len += -(-a.nbytes // _ALIGN) * _ALIGN
    from streamrnn import __version__
    header = {"format": "streamrnn-checkpoint", "version": FORMAT_VERSION,
              "streamrnn": __version__,
              "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
              "spec": spec, "source": source, "position": position, "keys": keys,
              "states": states, "arrays": descr, "extra": extra or {}}
    hbytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    try:  # the reader's structural checks, so a file is never written that load refuses
        _check_header(path, _DECODER.decode(hbytes.decode("utf-8")), data_len)
    except CheckpointError as e:
        raise ValueError(f"cannot write this checkpoint: {e}") from None
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes the file private; use the usual mode
        with os.fdopen(fd, "wb") as f:
            h = hashlib.sha256()

            def put(b):
                h.update(b)
                f.write(b)

            put(_PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(hbytes)))
            put(hbytes)
            put(b"\0" * (-(_PREFIX.size + len(hbytes)) % _ALIGN))
            for a in stored:
                b = a.tobytes()
                put(b)
                put(b"\0" * (-len(b) % _ALIGN))
            f.write(h.digest())
            f.flush()
            os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    return size


def _check_kind(models, spec):
    """A global spec goes with ``{GLOBAL_KEY: GlobalForecaster}``, a per-key spec with
    per-key forecasters."""
    from streamrnn.multiseries import GlobalForecaster
    if _spec.is_global(spec):
        if list(models) != [GLOBAL_KEY] or not isinstance(models[GLOBAL_KEY], GlobalForecaster):
            raise ValueError(f"a global spec is saved as models={{{GLOBAL_KEY!r}: "
                             "GlobalForecaster}")
    elif any(isinstance(m, GlobalForecaster) for m in models.values()):
        raise ValueError("a GlobalForecaster is saved with its global spec "
                         "(streamrnn.spec.spec_from_model(model))")


# ---------------------------------------------------------------------------- reading
_CHUNK = 1 << 20
_HEADER_FIELDS = {"format", "version", "streamrnn", "created", "spec", "source", "position",
                  "keys", "states", "arrays", "extra"}
_NET_CONFIG = {"cell", "n_in", "hidden_size", "num_layers", "n_out", "k1", "k2", "loss",
               "huber_eps"}


def _read_exact(f, n, path):
    b = f.read(n)
    if len(b) != n:
        raise CheckpointError(f"{path} is truncated (it changed while being read)")
    return b


def _is_int(v):
    return type(v) is int


def _json_cost(h: bytes) -> int:
    """An upper estimate of the bytes ``json.loads(h)`` allocates: about 72 per object or list
    and 40 per value, plus the text itself: decoded once (4 bytes a character unless it is
    ASCII, as streamrnn writes it) and the strings made from it."""
    containers = h.count(b"[") + h.count(b"{")
    values = h.count(b",") + h.count(b":") + 1
    return 72 * containers + 40 * values + len(h) * (2 if h.isascii() else 5)


def _no_constant(name):
    raise ValueError(f"{name} is not strict JSON")


def _pairs(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dup[:80]!r} in a JSON object")
    return d


def _finite_float(text):
    f = float(text)
    if not math.isfinite(f):
        raise ValueError(f"number {text[:40]} overflows a float")
    return f


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_no_constant,
                            parse_float=_finite_float)


def _read(path, keep_data: bool):
    """Read and verify a file with bounded memory: ``(path, header, data)`` where ``data`` is
    a writable buffer of the data block (None unless ``keep_data``)."""
    path = os.fspath(path)
    try:  # non-blocking, so that a FIFO or a device is refused instead of waited for
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{path} is not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        try:
            size = st.st_size
            if size > MAX_FILE:
                raise CheckpointError(f"{path} is {size} bytes, over the {MAX_FILE}-byte limit "
                                      "of a checkpoint file")
            prefix = f.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                if prefix and MAGIC.startswith(prefix[:8]):
                    raise CheckpointError(f"{path} is truncated ({len(prefix)} bytes)")
                raise CheckpointError(f"{path} is not a streamrnn checkpoint (too short, no "
                                      "magic bytes)")
            magic, version, reserved, hlen = _PREFIX.unpack(prefix)
            if magic != MAGIC:
                raise CheckpointError(f"{path} is not a streamrnn checkpoint (magic bytes "
                                      f"{magic!r})")
            if version > FORMAT_VERSION or version < 1:
                raise CheckpointError(f"{path} has checkpoint format version {version}; this "
                                      f"streamrnn reads version {FORMAT_VERSION} (upgrade "
                                      "streamrnn)")
            data_start = _PREFIX.size + hlen + (-(_PREFIX.size + hlen) % _ALIGN)
            if hlen > MAX_HEADER or data_start + _DIGEST > size:
                raise CheckpointError(f"{path} is truncated or corrupt (header of {hlen} bytes "
                                      f"does not fit in {size} bytes)")
            h = hashlib.sha256(prefix)
            hbytes = _read_exact(f, hlen, path)
            h.update(hbytes)
            pad = _read_exact(f, data_start - _PREFIX.size - hlen, path)
            h.update(pad)
            n = size - _DIGEST - data_start
            data = bytearray(n) if keep_data else None
            view = memoryview(data) if keep_data else None
            pos = 0
            while pos < n:
                k = min(_CHUNK, n - pos)
                if keep_data:
                    got = f.readinto(view[pos:pos + k])
                    if got != k:
                        raise CheckpointError(f"{path} is truncated (it changed while being "
                                              "read)")
                    h.update(view[pos:pos + k])
                else:
                    h.update(_read_exact(f, k, path))
                pos += k
            digest = f.read(_DIGEST + 1)
        except OSError as e:
            raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if len(digest) != _DIGEST or h.digest() != digest:
        raise CheckpointError(f"{path} is truncated or corrupt (SHA-256 mismatch)")
    if reserved != 0 or pad.strip(b"\0"):
        raise CheckpointError(f"{path}: reserved bytes are not zero")
    if _json_cost(hbytes) > 8 * size + (64 << 20):
        raise CheckpointError(f"{path}: the header's JSON has too many objects, lists or "
                              "values for its size")
    try:
        header = _DECODER.decode(hbytes.decode("utf-8"))
    except RecursionError:
        raise CheckpointError(f"{path} has an unreadable header: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path} has an unreadable header: {str(e)[:200]}") from None
    del hbytes
    if not isinstance(header, dict) or header.get("format") != "streamrnn-checkpoint":
        fmt = header.get("format") if isinstance(header, dict) else None
        raise CheckpointError(f"{path} is not a streamrnn checkpoint (header format "
                              f"{str(fmt)[:80]!r})")
    if header.get("version") != version or not _is_int(header.get("version")):
        raise CheckpointError(f"{path}: header version {str(header.get('version'))[:40]} "
                              f"differs from the file's {version}")
    _check_header(path, header, n)
    return path, header, data


def _fail(path, field, msg):
    raise CheckpointError(f"{path}: {field}: {msg}")


def _short(v, n=80):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def _check_depth(path, node, field, depth=0):
    if depth > MAX_DEPTH:
        _fail(path, field, f"nested more than {MAX_DEPTH} levels deep")
    if type(node) is dict:
        for k, v in node.items():
            if type(v) in (dict, list):
                _check_depth(path, v, field, depth + 1)
    elif type(node) is list:
        for v in node:
            if type(v) in (dict, list):
                _check_depth(path, v, field, depth + 1)


def _check_header(path, header, data_len):
    """Structure, counts and positions of a header; array descriptors against the data block
    of ``data_len`` bytes. Raises CheckpointError naming the field."""
    fields = set(header)
    if fields != _HEADER_FIELDS:
        missing, unknown = sorted(_HEADER_FIELDS - fields), sorted(fields - _HEADER_FIELDS)
        _fail(path, "header", f"missing fields {missing}, unknown fields "
                              f"{[_short(u, 40) for u in unknown]}")
    _check_depth(path, header, "header")
    for name in ("streamrnn", "created"):
        if not (isinstance(header[name], str) and len(header[name]) <= 64):
            _fail(path, name, f"must be a short string, got {_short(header[name])}")
    for name in ("source", "extra"):
        if not (header[name] is None or type(header[name]) is dict):
            _fail(path, name, f"must be an object or null, got {type(header[name]).__name__}")
    pos = header["position"]
    if pos is not None:
        if type(pos) is not dict or set(pos) != {"partition", "offset"}:
            _fail(path, "position", f"must be {{'partition', 'offset'}} or null, got "
                                    f"{_short(pos)}")
        off = pos["offset"]
        if not (_is_int(off) and 0 <= off < MAX_OFFSET):
            _fail(path, "position.offset", f"must be an int in [0, 2**63), got {_short(off)}")
        p = pos["partition"]
        if not ((_is_int(p) and 0 <= p < MAX_OFFSET) or
                (isinstance(p, str) and 0 < len(p) <= 256) or p is None):
            _fail(path, "position.partition", f"must be an int >= 0 or a short string, got "
                                              f"{_short(p)}")
    keys, states = header["keys"], header["states"]
    if type(keys) is not list or type(states) is not list or len(keys) != len(states):
        _fail(path, "keys/states", "'keys' and 'states' must be lists of the same length; "
                                   "they differ in length or type")
    if len(keys) > MAX_KEYS:
        _fail(path, "keys", f"{len(keys)} keys, over the limit of {MAX_KEYS}")
    for i, k in enumerate(keys):
        if not (isinstance(k, str) and len(k) <= MAX_KEY_LEN):
            _fail(path, f"keys[{i}]", f"must be a str of at most {MAX_KEY_LEN} characters, got "
                                      f"{type(k).__name__} {_short(k)}")
    if len(set(keys)) != len(keys):
        seen = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        _fail(path, "keys", f"key {_short(dup)} appears more than once")
    for i, st in enumerate(states):
        if type(st) is not dict:
            _fail(path, f"states[{i}]", f"must be an object, got {type(st).__name__}")
    descr = header["arrays"]
    if type(descr) is not list:
        _fail(path, "arrays", "must be a list of array descriptors")
    if _spec.is_global(header["spec"]):
        if keys != [GLOBAL_KEY]:
            _fail(path, "keys", f"a file of a GlobalForecaster holds one model under the key "
                                f"{GLOBAL_KEY!r}, got {_short(keys)}")
        if len(descr) > MAX_ARRAYS_GLOBAL:
            _fail(path, "arrays", f"{len(descr)} arrays, over the limit of {MAX_ARRAYS_GLOBAL} "
                                  "of a GlobalForecaster")
    elif len(descr) > MAX_ARRAYS_PER_KEY * len(keys):
        _fail(path, "arrays", f"{len(descr)} arrays for {len(keys)} keys, over the limit of "
                              f"{MAX_ARRAYS_PER_KEY} per key")
    end = 0
    for i, d in enumerate(descr):
        where = f"arrays[{i}]"
        if type(d) is not dict or set(d) != {"dtype", "shape", "offset", "nbytes"}:
            _fail(path, where, "must be {'dtype', 'shape', 'offset', 'nbytes'}")
        dtype, shape, off, nbytes = d["dtype"], d["shape"], d["offset"], d["nbytes"]
        if not (isinstance(dtype, str) and dtype in _DTYPES):
            _fail(path, f"{where}.dtype", f"dtype {_short(dtype)} is not allowed")
        if not (type(shape) is list and len(shape) <= MAX_NDIM and
                all(_is_int(s) and 0 <= s <= data_len for s in shape)):
            _fail(path, f"{where}.shape", f"bad shape {_short(shape)}")
        count = math.prod(shape)  # exact Python ints: no silent wrap-around
        if not (_is_int(nbytes) and nbytes == count * np.dtype(dtype).itemsize):
            _fail(path, f"{where}.nbytes", f"{_short(nbytes)} does not match dtype {dtype} and "
                                           f"shape {shape}")
        if not (_is_int(off) and off % _ALIGN == 0 and end <= off <= data_len - nbytes):
            _fail(path, f"{where}.offset", f"{_short(off)} / nbytes {nbytes} outside the data "
                                           "block, unaligned, or overlapping an earlier array")
        end = off + nbytes
    if -(-end // _ALIGN) * _ALIGN != data_len:
        _fail(path, "arrays", f"the data block has {data_len} bytes, its arrays end at {end}")


def read_header(path) -> dict:
    """The verified JSON header of a checkpoint, without building any model or holding the
    arrays in memory (raises :class:`CheckpointError`)."""
    return _read(path, keep_data=False)[1]


def _views(header, data):
    """One NumPy array per descriptor: views into ``data`` (no copies)."""
    out = []
    for d in header["arrays"]:
        dt = np.dtype(d["dtype"])
        a = np.frombuffer(data, dtype=dt, count=math.prod(d["shape"]), offset=d["offset"])
        out.append(a.reshape(d["shape"]))
    return out


def _decode_tree(node, arrays, used=None, path="", field="state", depth=0):
    """A stored tree with ``{"$array": i}`` replaced by array ``i`` itself (no copy: each array
    may be referenced once) and ``{"$float": ...}`` by the float."""
    if depth > MAX_DEPTH:
        _fail(path, field, f"nested more than {MAX_DEPTH} levels deep")
    t = type(node)
    if t is dict:
        if "$array" in node:
            i = node["$array"]
            if len(node) != 1 or not _is_int(i) or not 0 <= i < len(arrays):
                _fail(path, field, f"refers to array {_short(node)}, which the file lacks")
            if used is not None:
                if used[i]:
                    _fail(path, field, f"refers to array {i} a second time (each array is "
                                       "stored for one place in one state)")
                used[i] = 1
            return arrays[i]
        if "$float" in node:
            v = node["$float"]
            if len(node) != 1 or v not in ("nan", "inf", "-inf"):
                _fail(path, field, f"bad non-finite float {_short(node)}")
            return float(v)
        return {k: _decode_tree(v, arrays, used, path, f"{field}.{k}", depth + 1)
                for k, v in node.items()}
    if t is list:
        return [_decode_tree(e, arrays, used, path, f"{field}[{j}]", depth + 1)
                for j, e in enumerate(node)]
    return node


class _Expect:
    """What a spec implies for the state of each of its models."""

    def __init__(self, spec, template):
        from streamrnn import _registry
        p = spec["params"]
        self.cell_name = spec["cell"]
        self.cell = _registry.cell_code(spec["cell"], getattr(template, "activation", "tanh"))
        self.gates = _registry.CELLS[spec["cell"]].gates
        self.hidden_size, self.num_layers = p["hidden_size"], p["num_layers"]
        self.k1, self.k2 = p["update_every"], p["tbptt_steps"]
        self.max_features = p.get("max_features", _registry.LIMITS["max_features"])
        lentry = _registry.LOSSES[spec["loss"]["name"]]
        self.loss = lentry.code
        self.huber_eps = spec["loss"].get("epsilon")
        oentry = _registry.OPTIMIZERS[spec["optimizer"]["name"]]
        self.opt_kind = oentry.code
        self.adam = oentry.name == "Adam"
        self.opt = {"lr": float(spec["optimizer"]["lr"]),
                    **{k: float(spec["optimizer"][k]) for k in oentry.hyper},
                    "clip_value": float(p.get("clip_gradient") or 0.0),
                    "clip_norm": float(p.get("clip_norm") or 0.0)}

    def size(self, n_in, n_out):
        """``(parameters, bytes)`` of the kernel network (``_registry.network_size``)."""
        from streamrnn import _registry
        return _registry.network_size(self.cell_name, n_in, self.hidden_size, self.num_layers,
                                      n_out, self.k1, self.k2, n_out - 1)

    def n_params(self, n_in, n_out):
        return self.size(n_in, n_out)[0]


def _num(v):
    return type(v) in (int, float) and math.isfinite(v)


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return _short(a)


def _check_array(path, a, shapes, field):
    if not (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape in shapes):
        _fail(path, field, f"must be a float64 array of shape "
                           f"{' or '.join(map(str, shapes))}, got {_describe(a)}")
    if not np.isfinite(a).all():
        _fail(path, field, "has non-finite values")


def _check_optimizer(path, o, exp, n_params, field, legacy=False):
    if type(o) is not dict:
        _fail(path, field, f"must be an object, got {type(o).__name__}")
    if not (_is_int(o.get("kind")) and o["kind"] == exp.opt_kind):
        _fail(path, f"{field}.kind", f"{_short(o.get('kind'))} is not the spec's optimizer "
                                     f"(kind {exp.opt_kind})")
    for k, want in exp.opt.items():
        if not (_num(o.get(k)) and float(o[k]) == want):
            _fail(path, f"{field}.{k}", f"{_short(o.get(k))} differs from the spec's {want}")
    for k in ("beta_1", "beta_2", "eps", "rho"):
        if k in o and not _num(o[k]):
            _fail(path, f"{field}.{k}", f"must be a finite number, got {_short(o[k])}")
    t = o.get("t")
    if not (_is_int(t) and 0 <= t < MAX_COUNTER):
        _fail(path, f"{field}.t", f"must be an int in [0, 2**62), got {_short(t)}")
    _check_array(path, o.get("m"), ((n_params,),), f"{field}.m")
    v_shapes = ((n_params,),) if exp.adam else ((0,), (1,)) if legacy else ((0,),)
    _check_array(path, o.get("v"), v_shapes, f"{field}.v")


def _check_network(path, node, exp, field):
    """A network node ``{"config", "state"}`` against the spec, before any of it is built: its
    configuration, the exact shape of every array (so the network the kernel allocates is no
    larger than what the file holds), the counters and the optimizer's settings."""
    from streamrnn import _registry
    legacy = "__network__" in node  # streamrnn 0.1.0: {"__network__", "state", "optimizer"}
    fields = {"__network__", "state", "optimizer"} if legacy else {"config", "state"}
    if set(node) != fields:
        _fail(path, field, f"must have exactly the fields {sorted(fields)}, got "
                           f"{[_short(k, 40) for k in node]}")
    cname = "__network__" if legacy else "config"
    cfg = node[cname]
    if type(cfg) is not dict or set(cfg) != _NET_CONFIG:
        _fail(path, f"{field}.{cname}", f"must have exactly the fields {sorted(_NET_CONFIG)}")
    want = {"cell": exp.cell, "hidden_size": exp.hidden_size, "num_layers": exp.num_layers,
            "k1": exp.k1, "k2": exp.k2, "loss": exp.loss}
    for k, v in want.items():
        if not (_is_int(cfg[k]) and cfg[k] == v):
            _fail(path, f"{field}.{cname}.{k}", f"{_short(cfg[k])} does not fit the spec "
                                                f"({v})")
    n_in, n_out = cfg["n_in"], cfg["n_out"]
    limit = _registry.LIMITS["parameters"]
    for k, v in (("n_in", n_in), ("n_out", n_out)):
        if not (_is_int(v) and 1 <= v <= limit):
            _fail(path, f"{field}.{cname}.{k}", f"must be an int in [1, {limit}] (the "
                                                f"parameter limit), got {_short(v)}")
    eps = cfg["huber_eps"]
    if not (_num(eps) and eps > 0 and (exp.huber_eps is None or eps == exp.huber_eps)):
        _fail(path, f"{field}.{cname}.huber_eps", f"{_short(eps)} does not fit the spec")
    try:
        _registry.check_network_size(exp.cell_name, n_in, exp.hidden_size, exp.num_layers,
                                     n_out, exp.k1, exp.k2, n_out - 1)
    except ValueError as e:
        _fail(path, f"{field}.{cname}", str(e))
    P = exp.n_params(n_in, n_out)
    H, L, G = exp.hidden_size, exp.num_layers, exp.gates
    # the ring of a regression head holds the steps whose delayed targets may still arrive
    B, rec = max(exp.k1 + n_out - 1, exp.k2), 5 * H + G * H
    shapes = {"params": (P,), "h": (L, H), "c": (L, H), "ring_x": (B, n_in),
              "ring_r": (B, L, rec), "ring_g": (B, n_out), "out": (n_out,)}
    state = node["state"]
    if type(state) is not dict:
        _fail(path, f"{field}.state", "must be an object")
    for k, shape in shapes.items():
        _check_array(path, state.get(k), (shape,), f"{field}.state.{k}")
    t = state.get("t")
    if not (_is_int(t) and 0 <= t < MAX_COUNTER):
        _fail(path, f"{field}.state.t", f"must be an int in [0, 2**62), got {_short(t)}")
    if not _num(state.get("last_loss")):
        _fail(path, f"{field}.state.last_loss", f"must be a finite number, got "
                                                f"{_short(state.get('last_loss'))}")
    opt, ofield = (node["optimizer"], f"{field}.optimizer") if legacy else \
        (state.get("optimizer"), f"{field}.state.optimizer")
    if opt is None:
        _fail(path, ofield, "is missing")
    _check_optimizer(path, opt, exp, P, ofield, legacy)
    return n_in


def _is_network(node):
    if type(node) is not dict:
        return False
    if "__network__" in node:  # streamrnn 0.1.0
        return True
    return type(node.get("config")) is dict and "hidden_size" in node["config"]


def _columns(node):
    """A feature map as ``{"names", "n", "mean", "m2"}`` (None if ``node`` is none)."""
    if type(node) is not dict:
        return None
    if "__columns__" in node:  # streamrnn 0.1.0: [offset, scale, names, n, mean, m2]
        c = node["__columns__"]
        if type(c) is not list or len(c) != 6:
            return {"names": None, "n": None, "mean": None, "m2": None}
        return {"names": c[2], "n": c[3], "mean": c[4], "m2": c[5]}
    if "names" in node and {"n", "mean", "m2"} <= set(node):
        return node
    return None


def _check_nodes(path, node, exp, field, found):
    """Check every network node of a decoded state tree; ``found`` collects their input
    widths and the feature maps (checked against them afterwards)."""
    if type(node) is dict:
        if _is_network(node):
            found["n_in"].append(_check_network(path, node, exp, field))
            return
        cols = _columns(node)
        if cols is not None:
            found["columns"].append((field, cols))
        for k, v in node.items():
            _check_nodes(path, v, exp, f"{field}.{k}", found)
    elif type(node) is list:
        for j, v in enumerate(node):
            _check_nodes(path, v, exp, f"{field}[{j}]", found)


def _check_state(path, tree, exp, field):
    found = {"n_in": [], "columns": []}
    _check_nodes(path, tree, exp, field, found)
    width = max(found["n_in"], default=0)
    for where, cols in found["columns"]:
        # one name and one statistic (n, mean, m2) per feature column
        if type(cols["names"]) is not list:
            _fail(path, f"{where}.names", "must be a list")
        k = len(cols["names"])
        if k > width or k > exp.max_features:
            _fail(path, f"{where}.names", f"{k} feature columns but the network has {width} "
                                          f"inputs (max_features={exp.max_features})")
        for name in ("n", "mean", "m2"):
            a = cols[name]
            if not (isinstance(a, np.ndarray) and a.shape == (k,)):
                _fail(path, f"{where}.{name}", f"must be an array of shape ({k},), got "
                                               f"{_describe(a)}")


# parameters of the streamrnn 0.1 forecasters that 0.2 replaced (their files are refused)
_OLD_FORECASTER_PARAMS = ("differencing", "damping", "scale_target")


def load(path, spec: dict | None = None, *, partition=None) -> Checkpoint:
    """Read a checkpoint. With ``spec``, refuse one written for a different model spec; with
    ``partition``, one without a position or whose position is another partition's (compared
    as in file names: ``3`` and ``"3"`` are one partition).

    Every value is validated before it is trusted (see the module documentation); raises
    :class:`CheckpointError` naming the field. On error nothing is returned, so nothing is
    half-loaded.
    """
    path, header, data = _read(path, keep_data=True)
    hspec = header["spec"]
    if partition is not None:
        pos = header["position"]
        got = None if pos is None else pos["partition"]
        if got is None or _partition_name(got) != _partition_name(partition):
            _fail(path, "position.partition", f"{_short(got)} is not partition "
                                              f"{_short(partition)} (a file of another partition)")
    params = hspec.get("params") if type(hspec) is dict else None
    old = [k for k in _OLD_FORECASTER_PARAMS if type(params) is dict and k in params]
    if old:
        raise CheckpointError(
            f"{path} was written by streamrnn {str(header.get('streamrnn'))[:20]} for a "
            f"forecaster of the 0.1 series (its spec has {', '.join(old)}); streamrnn 0.2 "
            "forecasts with another model (a seasonal backbone, direct multi-step outputs, "
            "intervals) and cannot continue it: start with an empty checkpoint directory (the "
            "models learn again from the stream) or keep streamrnn 0.1 for this one")
    try:
        _spec.check_spec(hspec, CheckpointError)
        template = _spec.build_model(hspec)
        complete = _spec.spec_from_model(template)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (ValueError, TypeError, OverflowError) as e:
        raise CheckpointError(f"{path}: malformed model spec: {e}") from None
    # A parameter the file does not name (one added to the forecasters after it was written)
    # takes its default; anything else must already be the complete, canonical spec.
    filled = dict(hspec, params={**{k: v for k, v in complete["params"].items()
                                    if k not in hspec["params"]}, **hspec["params"]})
    if _spec.canonical(complete) != _spec.canonical(filled):
        raise CheckpointError(f"{path}: malformed model spec: it is not canonical:\n"
                              f"{_spec.spec_diff(hspec, complete, 'file', 'built')}")
    hspec = complete
    if spec is not None and _spec.canonical(hspec) != _spec.canonical(spec):
        raise CheckpointError(
            f"{path} was written for another model spec:\n{_spec.spec_diff(hspec, spec)}\n"
            "start with an empty checkpoint directory or the same model options")
    if _spec.is_global(hspec):
        return _load_global(path, header, data, hspec)
    exp = _Expect(hspec, template)
    arrays = _views(header, data)
    used = bytearray(len(arrays))
    trees = []
    for i, (key, state) in enumerate(zip(header["keys"], header["states"])):
        field = f"states[{i}] (key {_short(key, 40)})"
        tree = _decode_tree(state, arrays, used, path, field)
        _check_state(path, tree, exp, field)
        trees.append(tree)
    if not all(used):
        _fail(path, "arrays", f"array {used.index(0)} is not referenced by any state")
    del arrays, header["states"]
    models = {}
    for i, (key, tree) in enumerate(zip(header["keys"], trees)):
        model = _spec.build_model(hspec)
        try:
            model._import_state(tree)
        except CheckpointError:
            raise
        except Exception as e:  # a state that does not fit the model
            raise CheckpointError(f"{path}: states[{i}] (key {_short(key, 40)}) does not fit "
                                  f"the model spec: {type(e).__name__}: {str(e)[:300]}") from None
        trees[i] = None  # its arrays are the model's own now
        models[key] = model
    return Checkpoint(models, hspec, header["source"], header["position"],
                      header["extra"] or {}, header["created"], path)


def _load_global(path, header, data, hspec):
    """The one GlobalForecaster of a file (its key checked by ``_check_header``). Its state
    is checked by ``_import_state``, field by field (the core's parts by the core), before
    any of it is assigned; the slot arrays are allocated in proportion to the keys the file
    holds, only once their arrays are seen to have a row per key."""
    arrays = _views(header, data)
    used = bytearray(len(arrays))
    field = f"states[0] (key {GLOBAL_KEY!r})"
    tree = _decode_tree(header["states"][0], arrays, used, path, field)
    if not all(used):
        _fail(path, "arrays", f"array {used.index(0)} is not referenced by any state")
    del arrays, header["states"]
    model = _spec.build_model(hspec)
    try:
        model._import_state(tree)
    except MemoryError:
        raise CheckpointError(f"{path}: {field} needs more memory than this process may "
                              "take") from None
    except Exception as e:  # a state that does not fit the model
        raise CheckpointError(f"{path}: {field} does not fit the model spec: "
                              f"{type(e).__name__}: {str(e)[:300]}") from None
    return Checkpoint({GLOBAL_KEY: model}, hspec, header["source"], header["position"],
                      header["extra"] or {}, header["created"], path)


# ---------------------------------------------------------------------------- directories
def _partition_name(partition) -> str:
    """A partition as it appears in a file name (and as files of one partition are matched)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(partition))


_STALE = re.compile(r"\.(partition-.+\.srnn\..+\.tmp|probe-\d+-[0-9a-f]+\.tmp)")


class CheckpointStore:
    """A directory of per-partition checkpoints, ``partition-<p>.srnn``, owned by one process.

    On creation the directory is made if needed and checked to be writable (a probe file is
    created, fsync-ed and removed: this holds on read-only mounts and for root, whom mode bits
    do not stop). Then an exclusive lock is taken: ``fcntl.flock`` on ``DIR/.lock``, which
    records the holder's pid, host and start time; a second store on the directory, in this
    or another process, raises :class:`CheckpointError` naming that pid and host. The lock is
    released by :meth:`close` (or leaving a ``with`` block) and by the kernel when the process
    dies, so a killed run never leaves the directory locked. Holding the lock, the store removes
    temporary files that killed writers left behind.

    ``partition`` is the source's partition (an int for Kafka and files); a partition of
    another type is written with unsafe characters replaced.
    """

    LOCK = ".lock"

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        self._fd = None
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint directory {self.directory} is not a directory")
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:
            raise CheckpointError(f"cannot create checkpoint directory {self.directory}: "
                                  f"{e.strerror or e}") from None
        if not os.path.isdir(self.directory):
            raise CheckpointError(f"checkpoint directory {self.directory} is not a directory")
        self._probe()
        self._fd = self._lock()
        self._remove_stale()

    def _probe(self):
        import secrets
        name = os.path.join(self.directory, f".probe-{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(name)
        except OSError as e:
            raise CheckpointError(f"checkpoint directory {self.directory} is not writable: "
                                  f"{e.strerror or e}") from None

    def _lock(self):
        import fcntl
        import socket
        path = os.path.join(self.directory, self.LOCK)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CheckpointError(f"cannot open the lock file {path}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                info = {}
            os.close(fd)
            who = (f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (since "
                   f"{info.get('started', '?')})") if isinstance(info, dict) and info else \
                "another process (still starting)"
            raise CheckpointError(f"checkpoint directory {self.directory} is in use by {who}; "
                                  "stop that run or use another directory") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            raise CheckpointError(f"cannot write the lock file {path}: {e.strerror or e}") \
                from None
        return fd

    def _remove_stale(self):
        for name in os.listdir(self.directory):
            if _STALE.fullmatch(name):
                try:
                    os.unlink(os.path.join(self.directory, name))
                except OSError:
                    pass

    def _check_open(self):
        if self._fd is None:
            raise CheckpointError(f"the checkpoint store of {self.directory} is closed")

    def close(self):
        """Release the directory's lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            import fcntl
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def path(self, partition) -> str:
        return os.path.join(self.directory, f"partition-{_partition_name(partition)}.srnn")

    def partitions(self) -> list[str]:
        out = []
        for f in sorted(os.listdir(self.directory)):
            m = re.fullmatch(r"partition-(.+)\.srnn", f)
            if m:
                out.append(m.group(1))
        return out

    def save(self, partition, models, spec, source=None, offset=0, extra=None) -> int:
        self._check_open()
        return save(self.path(partition), models, spec, source=source,
                    position={"partition": partition, "offset": offset}, extra=extra)

    def load(self, partition, spec=None) -> Checkpoint | None:
        """The checkpoint of ``partition``, or None when there is none. A file whose position
        names another partition is refused."""
        self._check_open()
        p = self.path(partition)
        if not os.path.exists(p):
            return None
        return load(p, spec, partition=partition)
