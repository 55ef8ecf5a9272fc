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
    "loss": {"name", ...}}``, enough to rebuild an untrained model (see :func:`build_model`);
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
_MAX_HEADER = 1 << 34


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


def _decode_tree(node, arrays):
    t = type(node)
    if t is dict:
        if len(node) == 1 and "$array" in node:
            i = node["$array"]
            if type(i) is not int or not 0 <= i < len(arrays):
                raise CheckpointError(f"state refers to array {i!r}, which the file lacks")
            return arrays[i].copy()
        if len(node) == 1 and "$float" in node:
            v = node["$float"]
            if v not in ("nan", "inf", "-inf"):
                raise CheckpointError(f"bad non-finite float {v!r}")
            return float(v)
        return {k: _decode_tree(v, arrays) for k, v in node.items()}
    if t is list:
        return [_decode_tree(e, arrays) for e in node]
    return node


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
    arrays: list[np.ndarray] = []
    keys, states = [], []
    for key, model in models.items():
        if not isinstance(key, str):
            raise TypeError(f"checkpoint keys are series keys as str, got {type(key).__name__} "
                            f"{key!r}")
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


def _read_verified(path):
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if len(blob) < _PREFIX.size:
        if MAGIC.startswith(blob[:8]) and blob:
            raise CheckpointError(f"{path} is truncated ({len(blob)} bytes)")
        raise CheckpointError(f"{path} is not a streamrnn checkpoint (too short, no magic bytes)")
    magic, version, _reserved, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise CheckpointError(f"{path} is not a streamrnn checkpoint (magic bytes {magic!r})")
    if version > FORMAT_VERSION or version < 1:
        raise CheckpointError(f"{path} has checkpoint format version {version}; this streamrnn "
                              f"reads version {FORMAT_VERSION} (upgrade streamrnn)")
    if hlen > _MAX_HEADER or _PREFIX.size + hlen + _DIGEST > len(blob):
        raise CheckpointError(f"{path} is truncated or corrupt (header of {hlen} bytes does not "
                              f"fit in {len(blob)} bytes)")
    body, digest = blob[:-_DIGEST], blob[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise CheckpointError(f"{path} is truncated or corrupt (SHA-256 mismatch)")
    try:
        header = json.loads(body[_PREFIX.size:_PREFIX.size + hlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path} has an unreadable header: {e}") from None
    if not isinstance(header, dict) or header.get("format") != "streamrnn-checkpoint":
        raise CheckpointError(f"{path} is not a streamrnn checkpoint (header format "
                              f"{header.get('format') if isinstance(header, dict) else None!r})")
    if header.get("version") != version:
        raise CheckpointError(f"{path}: header version {header.get('version')!r} differs from "
                              f"the file's {version}")
    data_start = _PREFIX.size + hlen + (-(_PREFIX.size + hlen) % _ALIGN)
    return path, header, memoryview(body)[data_start:]


def read_header(path) -> dict:
    """The verified JSON header of a checkpoint (raises :class:`CheckpointError`)."""
    return _read_verified(path)[1]


def _arrays(path, header, data):
    out = []
    descr = header.get("arrays")
    if not isinstance(descr, list):
        raise CheckpointError(f"{path}: header field 'arrays' is missing")
    for i, d in enumerate(descr):
        try:
            dtype, shape, off, nbytes = d["dtype"], d["shape"], d["offset"], d["nbytes"]
            if dtype not in _DTYPES:
                raise ValueError(f"dtype {dtype!r} is not allowed")
            if not (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)):
                raise ValueError(f"bad shape {shape!r}")
            dt = np.dtype(dtype)
            count = math.prod(shape)  # exact Python ints: no silent wrap-around
            if type(off) is not int or type(nbytes) is not int or off < 0 or \
                    nbytes != count * dt.itemsize or off + nbytes > len(data):
                raise ValueError(f"offset {off!r} / nbytes {nbytes!r} outside the data block")
            out.append(np.frombuffer(data[off:off + nbytes], dtype=dt).reshape(shape).copy())
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: array descriptor {i} is invalid: {e}") from None
    return out


def load(path, spec: dict | None = None) -> Checkpoint:
    """Read a checkpoint. With ``spec``, refuse one written for a different model spec.

    Raises :class:`CheckpointError`; on error nothing is returned, so nothing is half-loaded.
    """
    path, header, data = _read_verified(path)
    if spec is not None and _spec.canonical(header.get("spec")) != _spec.canonical(spec):
        raise CheckpointError(
            f"{path} was written for another model spec:\n"
            f"{_spec.spec_diff(header.get('spec'), spec)}\nstart with an empty checkpoint "
            "directory or the same model options")
    arrays = _arrays(path, header, data)
    keys, states = header.get("keys"), header.get("states")
    if not isinstance(keys, list) or not isinstance(states, list) or len(keys) != len(states):
        raise CheckpointError(f"{path}: 'keys' and 'states' are missing or differ in length")
    try:
        _spec.build_model(header.get("spec"))
    except CheckpointError:
        raise
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: malformed model spec: {e}") from None
    models = {}
    for key, state in zip(keys, states):
        model = _spec.build_model(header["spec"])
        try:
            model._import_state(_decode_tree(state, arrays))
        except CheckpointError:
            raise
        except Exception as e:  # a state that does not fit the model
            raise CheckpointError(f"{path}: the state of key {key!r} does not fit the model "
                                  f"spec: {type(e).__name__}: {e}") from None
        models[key] = model
    return Checkpoint(models, header["spec"], header.get("source"), header.get("position"),
                      header.get("extra") or {}, header.get("created"), path)


# ---------------------------------------------------------------------------- directories
class CheckpointStore:
    """A directory of per-partition checkpoints: ``partition-<p>.srnn``.

    ``partition`` is the source's partition (an int for Kafka and files); a partition of
    another type is written with unsafe characters replaced.
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)

    def path(self, partition) -> str:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(partition))
        return os.path.join(self.directory, f"partition-{name}.srnn")

    def partitions(self) -> list[str]:
        out = []
        for f in sorted(os.listdir(self.directory)):
            m = re.fullmatch(r"partition-(.+)\.srnn", f)
            if m:
                out.append(m.group(1))
        return out

    def save(self, partition, models, spec, source=None, offset=0, extra=None) -> int:
        return save(self.path(partition), models, spec, source=source,
                    position={"partition": partition, "offset": int(offset)}, extra=extra)

    def load(self, partition, spec=None) -> Checkpoint | None:
        """The checkpoint of ``partition``, or None when there is none."""
        p = self.path(partition)
        if not os.path.exists(p):
            return None
        return load(p, spec)
