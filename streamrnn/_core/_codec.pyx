# cython: language_level=3, boundscheck=False, wraparound=False
"""Batch decoding of the common stream message straight into columns.

``decode_messages`` walks a whole fetched batch of Kafka messages in C: for each it reads the
payload, the key, the partition and the offset, and parses the common message (a flat JSON
object of numbers, booleans, null and plain ASCII strings) into the row of preallocated arrays
(the key, y as float64, the features as columns of a float64 matrix, NaN where a row has no
such feature). A message it does not handle *fully* is marked deferred and left to the full
decoder (``streamrnn.streams.Decoder.decode``), so the results are those of the full decoder,
message for message:

- anything but a bytes payload within ``max_bytes``;
- any byte outside printable ASCII inside a string, any backslash (escapes), any nesting
  (``[`` or ``{`` as a value), duplicate field names, more than ``MAX_FIELDS_FAST`` fields or
  ``max_fields``, anything after the object but whitespace;
- a number that is not strict JSON, an integer of more than 18 digits, a float the parser
  would not give as a finite double, a feature beyond ``value_limit`` in magnitude;
- a target missing or not a number; a key that is not a string within ``max_key`` characters
  (or a message key that is not ASCII within it); a time stamp string longer than
  ``max_time``; a new feature name when ``MAX_COLUMNS`` columns are taken.

Numbers are parsed as Python parses them (``PyOS_string_to_double``, correctly rounded; an
integer exactly). No Python object is made for a field but the key and the time stamp.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_FromLongLong
from cpython.float cimport PyFloat_FromDouble
from libc.string cimport memcmp, memcpy
from libc.math cimport isfinite, fabs, NAN

import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef extern from "Python.h":
    ctypedef struct PyObject
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception) except? -1.0
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)

#: fields of one message the batch decoder takes (more: the full decoder)
MAX_FIELDS_FAST = 64
#: distinct feature names in one batch (more: the full decoder for the rows that bring them)
MAX_COLUMNS = 64

DEF NFIELDS = 64
DEF NCOLS = 64

# field kinds
DEF K_INT = 1
DEF K_FLOAT = 2
DEF K_TRUE = 3
DEF K_FALSE = 4
DEF K_NULL = 5
DEF K_STR = 6

# row status
DEF FAST = 0
DEF DEFER = 1
DEF SKIP = 2


cdef struct Field:
    const char *name
    Py_ssize_t name_len
    int kind
    double value
    long long ival
    const char *str
    Py_ssize_t str_len


cdef inline bint _ws(unsigned char c) nogil:
    return c == 32 or c == 9 or c == 10 or c == 13


cdef inline Py_ssize_t _skip_ws(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) nogil:
    while i < n and _ws(s[i]):
        i += 1
    return i


cdef Py_ssize_t _string(const unsigned char *s, Py_ssize_t i, Py_ssize_t n) nogil:
    """End (just after the closing quote) of the plain string whose opening quote is at
    ``i``; -1 when it holds an escape, a control character or a byte beyond ASCII."""
    cdef unsigned char c
    i += 1
    while i < n:
        c = s[i]
        if c == 34:
            return i + 1
        if c == 92 or c < 32 or c >= 127:
            return -1
        i += 1
    return -1


cdef double[23] _POW10
for _e in range(23):
    _POW10[_e] = float(10 ** _e)


cdef Py_ssize_t _number(const unsigned char *s, Py_ssize_t i, Py_ssize_t n, Field *f):
    """Parse the strict JSON number at ``i`` into ``f``; its end, or -1 (deferred).

    An integer of at most 18 digits is exact; a float whose digits make an integer below
    10^15 and whose decimal exponent is within 22 is one correctly rounded product or
    quotient of two exact doubles (Clinger's fast path); any other float is read by
    ``PyOS_string_to_double`` (correctly rounded), so every float is Python's ``float(text)``.
    """
    cdef Py_ssize_t start = i, digits = 0, frac = 0
    cdef bint is_int = True, eneg = False
    cdef long long v = 0
    cdef long long ex = 0
    cdef bint neg = False
    cdef char buf[72]
    cdef char *end
    cdef double d
    if s[i] == 45:  # '-'
        neg = True
        i += 1
    if i >= n:
        return -1
    if s[i] == 48:  # '0': no leading zeros
        i += 1
        digits = 1
    elif 49 <= s[i] <= 57:
        while i < n and 48 <= s[i] <= 57:
            if digits < 18:
                v = v * 10 + (s[i] - 48)
            digits += 1
            i += 1
    else:
        return -1
    if i < n and s[i] == 46:  # '.'
        is_int = False
        i += 1
        if i >= n or not (48 <= s[i] <= 57):
            return -1
        while i < n and 48 <= s[i] <= 57:
            if digits < 18:
                v = v * 10 + (s[i] - 48)
            digits += 1
            frac += 1
            i += 1
    if i < n and (s[i] == 101 or s[i] == 69):  # e E
        is_int = False
        i += 1
        if i < n and (s[i] == 43 or s[i] == 45):
            eneg = s[i] == 45
            i += 1
        if i >= n or not (48 <= s[i] <= 57):
            return -1
        while i < n and 48 <= s[i] <= 57:
            if ex < 100000:
                ex = ex * 10 + (s[i] - 48)
            i += 1
    if is_int:
        if digits > 18:
            return -1
        f.kind = K_INT
        f.ival = -v if neg else v
        f.value = <double>f.ival
        return i
    f.kind = K_FLOAT
    if digits <= 15:  # v < 10^15 < 2^53: exact
        ex = (-ex if eneg else ex) - frac
        if -22 <= ex <= 22:
            d = <double>v
            d = d * _POW10[ex] if ex >= 0 else d / _POW10[-ex]
            f.value = -d if neg else d
            return i
    if i - start > 64:
        return -1
    memcpy(buf, s + start, i - start)
    buf[i - start] = 0
    end = NULL
    f.value = PyOS_string_to_double(buf, &end, NULL)
    if end != buf + (i - start) or not isfinite(f.value):
        return -1
    return i


cdef int _parse(const unsigned char *s, Py_ssize_t n, Field *fields):
    """The fields of the flat JSON object ``s``; their count, or -1 (deferred)."""
    cdef Py_ssize_t i = _skip_ws(s, 0, n), j
    cdef int nf = 0
    cdef Field *f
    cdef unsigned char c
    if i >= n or s[i] != 123:  # '{'
        return -1
    i = _skip_ws(s, i + 1, n)
    if i < n and s[i] == 125:  # '}'
        i = _skip_ws(s, i + 1, n)
        return 0 if i == n else -1
    while True:
        if i >= n or s[i] != 34 or nf >= NFIELDS:
            return -1
        j = _string(s, i, n)
        if j < 0:
            return -1
        f = &fields[nf]
        f.name = <const char *>s + i + 1
        f.name_len = j - i - 2
        i = _skip_ws(s, j, n)
        if i >= n or s[i] != 58:  # ':'
            return -1
        i = _skip_ws(s, i + 1, n)
        if i >= n:
            return -1
        c = s[i]
        if c == 34:
            j = _string(s, i, n)
            if j < 0:
                return -1
            f.kind = K_STR
            f.str = <const char *>s + i + 1
            f.str_len = j - i - 2
            i = j
        elif c == 45 or 48 <= c <= 57:
            i = _number(s, i, n, f)
            if i < 0:
                return -1
        elif c == 116 and i + 4 <= n and memcmp(s + i, b"true", 4) == 0:
            f.kind = K_TRUE
            f.value = 1.0
            i += 4
        elif c == 102 and i + 5 <= n and memcmp(s + i, b"false", 5) == 0:
            f.kind = K_FALSE
            f.value = 0.0
            i += 5
        elif c == 110 and i + 4 <= n and memcmp(s + i, b"null", 4) == 0:
            f.kind = K_NULL
            i += 4
        else:
            return -1
        nf += 1
        i = _skip_ws(s, i, n)
        if i >= n:
            return -1
        if s[i] == 44:  # ','
            i = _skip_ws(s, i + 1, n)
            continue
        if s[i] == 125:  # '}'
            i = _skip_ws(s, i + 1, n)
            return nf if i == n else -1
        return -1


cdef bint _has_duplicates(const Field *fields, int nf):
    cdef int a, b
    for a in range(1, nf):
        for b in range(a):
            if fields[a].name_len == fields[b].name_len and \
                    memcmp(fields[a].name, fields[b].name, fields[a].name_len) == 0:
                return True
    return False


cdef inline bint _is(const Field *f, const char *name, Py_ssize_t n):
    return n >= 0 and f.name_len == n and memcmp(f.name, name, n) == 0


def decode_messages(msgs, int key_kind, bytes target, bytes key_field, bytes time_field,
                    Py_ssize_t max_bytes, int max_fields, Py_ssize_t max_key,
                    Py_ssize_t max_time, double value_limit, default_key):
    """Decode the Kafka messages ``msgs`` (a list) into columns.

    ``key_kind``: 0 no key (every row ``default_key``), 1 a payload field ``key_field``,
    2 the message key (``default_key`` without one). ``time_field``: b"" for none.

    Returns ``(status, partition, offset, y, keys, times, X, names)``: ``status[i]`` 0 for a
    row decoded here, 1 for a message left to the full decoder, 2 for a message carrying a
    Kafka error (no row); the other columns are filled for status-0 rows (``keys[i]`` and
    ``times[i]`` None elsewhere); ``X`` has a column per name of ``names`` (feature names in
    the order first seen), NaN where a row has no such feature.
    """
    cdef Py_ssize_t n = len(msgs), i, plen, klen, tlen = len(time_field)
    cdef Py_ssize_t tglen = len(target), kflen = len(key_field) if key_kind == 1 else -1
    cdef const char *tg = PyBytes_AS_STRING(target)
    cdef const char *kf = PyBytes_AS_STRING(key_field)
    cdef const char *tf = PyBytes_AS_STRING(time_field)
    cdef Field fields[NFIELDS]
    cdef const char *cols[NCOLS]
    cdef Py_ssize_t col_len[NCOLS]
    cdef int ncols = 0, nf, a, c, yfield, kfield, tfield
    cdef int fcol[NFIELDS]
    cdef int pcol[NFIELDS]           # the last schema's column of each field (-1: none yet)
    cdef const char *pname[NFIELDS]  # the last schema's field names
    cdef Py_ssize_t pname_len[NFIELDS]
    cdef int pnf = -1, py = -1, pk = -1, pt = -1
    cdef bint same
    prev_value = None
    cdef int newcol
    cdef bint ok
    cdef const unsigned char *p
    cdef const unsigned char *kp
    cdef Field *f
    cdef double yv
    status_a = np.full(n, DEFER, dtype=np.uint8)
    part_a = np.zeros(n, dtype=np.int64)
    off_a = np.zeros(n, dtype=np.int64)
    y_a = np.full(n, NAN)
    X_a = np.full((n, NCOLS), NAN)
    cdef unsigned char[::1] status = status_a
    cdef long long[::1] part = part_a
    cdef long long[::1] off = off_a
    cdef double[::1] y = y_a
    cdef double[:, ::1] X = X_a
    keys = [None] * n
    times = [None] * n
    names = []
    kept = []  # the names' bytes, which the column pointers point into
    for i in range(n):
        m = msgs[i]
        if m.error() is not None:
            status[i] = SKIP
            continue
        value = m.value()
        if type(value) is not bytes:
            continue
        plen = PyBytes_GET_SIZE(value)
        if plen > max_bytes:
            continue
        p = <const unsigned char *>PyBytes_AS_STRING(value)
        nf = _parse(p, plen, fields)
        if nf < 0 or nf > max_fields:
            continue
        # the field names as the last row's (the common case: one schema), whose roles and
        # columns are known, or new ones
        same = nf == pnf
        if same:
            for a in range(nf):
                if fields[a].name_len != pname_len[a] or \
                        memcmp(fields[a].name, pname[a], pname_len[a]) != 0:
                    same = False
                    break
        if not same:
            if _has_duplicates(fields, nf):  # duplicate names: the full decoder
                continue
            yfield = kfield = tfield = -1
            for a in range(nf):
                f = &fields[a]
                pname[a], pname_len[a], pcol[a] = f.name, f.name_len, -1
                if _is(f, tg, tglen):
                    yfield = a
                if _is(f, kf, kflen):
                    kfield = a
                if tlen and _is(f, tf, tlen):
                    tfield = a
            pnf, py, pk, pt = nf, yfield, kfield, tfield
            prev_value = value  # the names point into it
        else:
            yfield, kfield, tfield = py, pk, pt
        if yfield < 0 or not (fields[yfield].kind == K_INT or fields[yfield].kind == K_FLOAT):
            continue
        yv = fields[yfield].value
        # the key
        if key_kind == 1:
            if kfield < 0 or fields[kfield].kind != K_STR or fields[kfield].str_len > max_key:
                continue
            key = PyUnicode_DecodeASCII(fields[kfield].str, fields[kfield].str_len, NULL)
        elif key_kind == 2:
            mk = m.key()
            if mk is None:
                key = default_key
            elif type(mk) is bytes:
                klen = PyBytes_GET_SIZE(mk)
                if klen > max_key:
                    continue
                kp = <const unsigned char *>PyBytes_AS_STRING(mk)
                ok = True
                for a in range(klen):
                    if kp[a] >= 128:
                        ok = False
                        break
                if not ok:
                    continue
                key = PyUnicode_DecodeASCII(<const char *>kp, klen, NULL)
            else:
                continue
        else:
            key = default_key
        # the time stamp
        t = None
        if tfield >= 0:
            f = &fields[tfield]
            if f.kind == K_STR:
                if f.str_len > max_time:
                    continue
                t = PyUnicode_DecodeASCII(f.str, f.str_len, NULL)
            elif f.kind == K_INT:
                t = PyLong_FromLongLong(f.ival)
            elif f.kind == K_FLOAT:
                t = PyFloat_FromDouble(f.value)
            elif f.kind == K_TRUE:
                t = True
            elif f.kind == K_FALSE:
                t = False
        # the features: every other number or bool
        ok = True
        newcol = ncols
        for a in range(nf):
            fcol[a] = -1
            f = &fields[a]
            if a == yfield or a == kfield or a == tfield or f.kind == K_NULL or \
                    f.kind == K_STR:
                continue
            if not fabs(f.value) <= value_limit:
                ok = False
                break
            c = pcol[a]
            if c < 0:
                for c in range(newcol):
                    if col_len[c] == f.name_len and memcmp(cols[c], f.name, f.name_len) == 0:
                        break
                else:
                    if newcol >= NCOLS:
                        ok = False
                        break
                    cols[newcol] = f.name
                    col_len[newcol] = f.name_len
                    c = newcol
                    newcol += 1
                pcol[a] = c
            fcol[a] = c
        if not ok:
            for a in range(nf):  # columns this row would have added are not taken
                if pcol[a] >= ncols:
                    pcol[a] = -1
            continue
        # the row is decoded: commit it
        for c in range(ncols, newcol):
            name = PyUnicode_DecodeASCII(cols[c], col_len[c], NULL)
            names.append(name)
            # the column's name must outlive this payload: point into the str's ASCII buffer
            b = name.encode("ascii")
            kept.append(b)
            cols[c] = PyBytes_AS_STRING(b)
        ncols = newcol
        for a in range(nf):
            if fcol[a] >= 0:
                X[i, fcol[a]] = fields[a].value
        y[i] = yv
        part[i] = m.partition()
        off[i] = m.offset()
        keys[i] = key
        times[i] = t
        status[i] = FAST
    return (status_a, part_a, off_a, y_a, keys, times, np.ascontiguousarray(X_a[:, :ncols]),
            names)


# ---------------------------------------------------------------------------- records
cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL

from libc.stdlib cimport malloc, realloc, free
from libc.stdio cimport snprintf


cdef struct Buf:
    char *p
    Py_ssize_t n
    Py_ssize_t cap


cdef int _put(Buf *b, const char *s, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap
    cdef char *q
    if b.n + n > b.cap:
        cap = max(2 * b.cap, b.n + n + 256)
        q = <char *>realloc(b.p, cap)
        if q == NULL:
            raise MemoryError()
        b.p, b.cap = q, cap
    memcpy(b.p + b.n, s, n)
    b.n += n
    return 0


cdef int _put_obj(Buf *b, object v, object dumps) except -1:
    """``v`` as JSON the way ``dumps`` (orjson) writes it: in C for plain strings, small
    ints, bools and None; through ``dumps`` otherwise."""
    cdef const char *s
    cdef Py_ssize_t n, i
    cdef char num[32]
    cdef long long iv
    t = type(v)
    if v is None:
        return _put(b, b"null", 4)
    if t is str:
        if PyUnicode_IS_ASCII(v):
            s = PyUnicode_AsUTF8AndSize(v, &n)
            for i in range(n):
                if s[i] < 32 or s[i] == 34 or s[i] == 92:
                    break
            else:
                _put(b, b'"', 1)
                _put(b, s, n)
                return _put(b, b'"', 1)
    elif t is bool:
        return _put(b, b"true", 4) if v else _put(b, b"false", 5)
    elif t is int and -(1 << 62) < v < (1 << 62):
        iv = v
        n = snprintf(num, 32, "%lld", iv)
        return _put(b, num, n)
    enc = dumps(v)
    if type(enc) is not bytes:
        raise TypeError("dumps must return bytes")
    return _put(b, PyBytes_AS_STRING(enc), PyBytes_GET_SIZE(enc))


cdef int _put_span(Buf *b, const char *blob, const Py_ssize_t *start, Py_ssize_t j) except -1:
    """Element ``j`` of the JSON array ``blob`` (``start[j]``: where it begins; it ends one
    byte before element j + 1 begins)."""
    return _put(b, blob + start[j], start[j + 1] - 1 - start[j])


cdef int _put_spans(Buf *b, const char *blob, const Py_ssize_t *start, Py_ssize_t j,
                    Py_ssize_t h) except -1:
    _put(b, b"[", 1)
    if h:
        _put(b, blob + start[j], start[j + h] - 1 - start[j])  # h elements with their commas
    return _put(b, b"]", 1)


def encode_records(list keys, list times, partition, const long long[::1] offsets,
                   ys, pred, anom, fc, lo, hi, Py_ssize_t h, dumps, dumps_floats=None):
    """The records ``{key, time, partition, offset, y, prediction, anomaly, forecast, low,
    high}`` of rows, each as the JSON bytes ``dumps`` (orjson.dumps) writes for its dict (NaN
    and infinities as null; ``forecast``, ``low``, ``high`` the first ``h`` columns), and the
    keys as message keys (UTF-8, ``str(key)`` for a key that is not a str). Returns
    ``(values, message_keys)``.

    Every float is written by ``dumps`` itself: all the batch's floats go through one call
    (a list; or ``dumps_floats(array)``, e.g. orjson's numpy serialisation, which writes the
    same text without a float object per value), whose output is cut at its commas (a
    float's JSON holds none) and copied into the records; plain strings, ints, bools and
    None are written here, any other value by ``dumps``."""
    cdef Py_ssize_t n = len(keys), i, j, m, nb
    cdef Buf b
    cdef Buf head
    cdef Py_ssize_t *start = NULL
    cdef const char *blob
    cdef char num[32]
    if h < 0:
        raise ValueError(f"h must be >= 0, got {h}")
    if not (len(times) == offsets.shape[0] == len(ys) == len(pred) == len(anom) == n):
        raise ValueError("the columns of the records must have one row per key")
    fl = [np.asarray(ys, dtype=np.float64), np.asarray(pred, dtype=np.float64),
          np.asarray(anom, dtype=np.float64)]
    if h:
        for a in (fc, lo, hi):
            a = np.asarray(a, dtype=np.float64)
            if a.ndim != 2 or a.shape[0] != n or a.shape[1] < h:
                raise ValueError("the forecast columns must have a row per key and h columns")
            fl.append(a[:, :h].ravel())
    if dumps_floats is not None:
        text = dumps_floats(np.concatenate(fl))
    else:
        text = dumps(np.concatenate(fl).tolist())
    if type(text) is not bytes:
        raise TypeError("dumps must return bytes")
    m = (3 + 3 * h) * n
    blob = PyBytes_AS_STRING(text)
    nb = PyBytes_GET_SIZE(text)
    values = [None] * n
    mkeys = [None] * n
    start = <Py_ssize_t *>malloc((m + 1) * sizeof(Py_ssize_t))
    if start == NULL:
        raise MemoryError()
    b.p, b.n, b.cap = NULL, 0, 0
    head.p, head.n, head.cap = NULL, 0, 0
    try:
        # where each element of "[e0,e1,...]" begins; start[m]: one past the closing bracket
        j = 0
        if nb < 2 or blob[0] != 91 or blob[nb - 1] != 93:
            raise ValueError("dumps did not write a JSON array")
        if m:
            start[0] = 1
            j = 1
            for i in range(1, nb - 1):
                if blob[i] == 44:
                    if j >= m:
                        raise ValueError("dumps wrote more elements than floats")
                    start[j] = i + 1
                    j += 1
            if j != m:
                raise ValueError("dumps wrote fewer elements than floats")
            start[m] = nb
        _put(&head, b',"partition":', 13)
        _put_obj(&head, partition, dumps)
        _put(&head, b',"offset":', 10)
        for i in range(n):
            b.n = 0
            k = keys[i]
            _put(&b, b'{"key":', 7)
            _put_obj(&b, k, dumps)
            _put(&b, b',"time":', 8)
            _put_obj(&b, times[i], dumps)
            _put(&b, head.p, head.n)
            _put(&b, num, snprintf(num, 32, "%lld", offsets[i]))
            _put(&b, b',"y":', 5)
            _put_span(&b, blob, start, i)
            _put(&b, b',"prediction":', 14)
            _put_span(&b, blob, start, n + i)
            _put(&b, b',"anomaly":', 11)
            _put_span(&b, blob, start, 2 * n + i)
            if h:
                _put(&b, b',"forecast":', 12)
                _put_spans(&b, blob, start, 3 * n + i * h, h)
                _put(&b, b',"low":', 7)
                _put_spans(&b, blob, start, 3 * n + n * h + i * h, h)
                _put(&b, b',"high":', 8)
                _put_spans(&b, blob, start, 3 * n + 2 * n * h + i * h, h)
                _put(&b, b"}", 1)
            else:
                _put(&b, b',"forecast":[],"low":[],"high":[]}', 34)
            values[i] = PyBytes_FromStringAndSize(b.p, b.n)
            if k is None:
                mkeys[i] = None
            elif type(k) is str:
                mkeys[i] = k.encode("utf-8", "replace")
            else:
                mkeys[i] = str(k).encode("utf-8", "replace")
    finally:
        free(b.p)
        free(head.p)
        free(start)
    return values, mkeys
