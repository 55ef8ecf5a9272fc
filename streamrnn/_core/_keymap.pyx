"""A key -> slot map in least-recently-seen order: what ``GlobalForecaster`` keeps of its keys.

``KeyMap`` behaves as the ``OrderedDict`` it replaces, for the operations the model uses:
``len``, ``in``, ``get``, ``[]``, ``pop``, ``popitem``, iteration (keys, least recently seen
first), ``keys()``, ``values()``, ``items()``, and ``m[key] = slot`` for a new key (it enters
at the end). The order is a doubly linked list over the slots themselves (two C arrays
indexed by slot), so a batch of keys is looked up with one dict probe each (``lookup``) and
moved to the end in row order without any (``touch``): the order after ``touch(keys,
slots)`` is the order after ``od.update(zip(keys, slots))`` followed by
``od.move_to_end(k)`` for each key in turn. ``pop_oldest(n)`` removes the ``n`` least
recently seen keys (``od.popitem(last=False)`` n times). A slot holds at most one key, a key
keeps its slot until it is removed.

The map is not part of any saved state: the model saves its keys in this order and
rebuilds the map from them.
"""
from libc.stdlib cimport free, realloc

__all__ = ["KeyMap"]


cdef class KeyMap:
    """A key -> slot (int >= 0) map in least-recently-seen order (see the module)."""

    cdef dict _d            # key -> slot
    cdef list _key          # slot -> its key (None: free)
    cdef Py_ssize_t *_prev  # slot -> the slot before it in the order (-1: none)
    cdef Py_ssize_t *_next  # slot -> the slot after it (-1: none)
    cdef Py_ssize_t _cap    # slots the arrays cover
    cdef Py_ssize_t _head   # least recently seen (-1: empty)
    cdef Py_ssize_t _tail   # most recently seen

    def __cinit__(self):
        self._d = {}
        self._key = []
        self._prev = NULL
        self._next = NULL
        self._cap = 0
        self._head = -1
        self._tail = -1

    def __init__(self, items=()):
        for k, s in items:
            self[k] = s

    def __dealloc__(self):
        free(self._prev)
        free(self._next)

    # ------------------------------------------------------------------ the order
    cdef int _reserve(self, Py_ssize_t slot) except -1:
        cdef Py_ssize_t new
        cdef Py_ssize_t *p
        if slot < self._cap:
            return 0
        new = max(slot + 1, 2 * self._cap, 16)
        p = <Py_ssize_t *>realloc(self._prev, new * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError()
        self._prev = p
        p = <Py_ssize_t *>realloc(self._next, new * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError()
        self._next = p
        self._key.extend([None] * (new - self._cap))
        self._cap = new
        return 0

    cdef inline void _unlink(self, Py_ssize_t s):
        cdef Py_ssize_t p = self._prev[s], n = self._next[s]
        if p >= 0:
            self._next[p] = n
        else:
            self._head = n
        if n >= 0:
            self._prev[n] = p
        else:
            self._tail = p

    cdef inline void _append(self, Py_ssize_t s):
        self._prev[s] = self._tail
        self._next[s] = -1
        if self._tail >= 0:
            self._next[self._tail] = s
        else:
            self._head = s
        self._tail = s

    cdef int _insert(self, k, Py_ssize_t s) except -1:
        """A new key ``k`` at slot ``s``, at the end."""
        if s < 0:
            raise ValueError(f"a slot is an int >= 0, got {s}")
        self._reserve(s)
        if self._key[s] is not None:
            raise ValueError(f"slot {s} already holds the key {self._key[s]!r}")
        self._d[k] = s
        self._key[s] = k
        self._append(s)
        return 0

    cdef object _remove(self, Py_ssize_t s):
        """Remove the key of slot ``s``; returns it."""
        k = self._key[s]
        del self._d[k]
        self._key[s] = None
        self._unlink(s)
        return k

    # ------------------------------------------------------------------ batches
    def lookup(self, list keys, long long[::1] out):
        """``out[j]`` = the slot of ``keys[j]``, -1 for a key not in the map; returns how many
        are not. Changes nothing."""
        cdef Py_ssize_t n = len(keys), j, missing = 0
        cdef dict d = self._d
        if out.shape[0] != n:
            raise ValueError(f"{n} keys but an output of {out.shape[0]} slots")
        for j in range(n):
            s = d.get(keys[j])
            if s is None:
                out[j] = -1
                missing += 1
            else:
                out[j] = <long long>s
        return missing

    def touch(self, list keys, const long long[::1] slots):
        """Each of ``keys`` (distinct) to the end, in order: a key of the map must be given
        its own slot; a new key enters with its slot (which must be free). Checked for every
        key before anything changes (ValueError)."""
        cdef Py_ssize_t n = len(keys), j, s
        if slots.shape[0] != n:
            raise ValueError(f"{n} keys but {slots.shape[0]} slots")
        for j in range(n):  # check first: all or nothing
            s = slots[j]
            k = keys[j]
            if s < 0:
                raise ValueError(f"a slot is an int >= 0, got {s}")
            if s < self._cap and self._key[s] is not None:
                held = self._key[s]
                if held is not k and held != k:
                    raise ValueError(f"slot {s} holds the key {held!r}, not {k!r}")
            elif k in self._d:
                raise ValueError(f"the key {k!r} has slot {self._d[k]}, not {s}")
        for j in range(n):
            s = slots[j]
            if s < self._cap and self._key[s] is not None:
                self._unlink(s)
                self._append(s)
            else:
                self._insert(keys[j], s)

    def pop_oldest(self, Py_ssize_t n):
        """Remove the ``n`` least recently seen keys; returns their slots, oldest first."""
        if n < 0 or n > len(self._d):
            raise ValueError(f"cannot remove {n} of {len(self._d)} keys")
        out = []
        for _ in range(n):
            s = self._head
            self._remove(s)
            out.append(s)
        return out

    # ------------------------------------------------------------------ the mapping
    def __len__(self):
        return len(self._d)

    def __contains__(self, k):
        return k in self._d

    def __getitem__(self, k):
        return self._d[k]

    def get(self, k, default=None):
        return self._d.get(k, default)

    def __setitem__(self, k, slot):
        """A new key, at the end (a key of the map keeps its slot: ValueError)."""
        if k in self._d:
            raise ValueError(f"the key {k!r} is in the map already (slot {self._d[k]})")
        if type(slot) is not int:
            raise TypeError(f"a slot is an int, got {type(slot).__name__}")
        self._insert(k, slot)

    def pop(self, k):
        """Remove ``k``; returns its slot (KeyError if unknown)."""
        s = self._d[k]
        self._remove(s)
        return s

    def popitem(self, last=True):
        """Remove the most (``last``) or least recently seen key; returns ``(key, slot)``."""
        if not self._d:
            raise KeyError("popitem(): the map is empty")
        s = self._tail if last else self._head
        return self._remove(s), s

    def keys(self):
        """The keys, least recently seen first."""
        cdef Py_ssize_t s = self._head
        cdef list key = self._key
        out = []
        while s >= 0:
            out.append(key[s])
            s = self._next[s]
        return out

    def values(self):
        """The slots, in the order of the keys."""
        cdef Py_ssize_t s = self._head
        out = []
        while s >= 0:
            out.append(s)
            s = self._next[s]
        return out

    def items(self):
        return list(zip(self.keys(), self.values()))

    def __iter__(self):
        return iter(self.keys())

    def __reduce__(self):
        return (KeyMap, (self.items(),))

    def __repr__(self):
        return f"KeyMap({self.items()!r})"
