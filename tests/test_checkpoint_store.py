"""CheckpointStore: a writable directory, one owner at a time, stale temporaries cleaned up."""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from _support import child_env
from streamrnn import checkpoint as ck
from streamrnn import spec as sp

HOLD = r"""
import sys, time
from streamrnn import checkpoint as ck
try:
    store = ck.CheckpointStore(sys.argv[1])
except ck.CheckpointError as e:
    print("REFUSED", e, flush=True)
    raise SystemExit(3)
print("LOCKED", flush=True)
if sys.argv[2] == "close":
    store.close()
    print("CLOSED", flush=True)
sys.stdin.readline()  # hold until told (or killed)
"""


def _start(directory, mode="hold"):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), mode],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env=child_env())
    first = p.stdout.readline().strip()
    return p, first


def _stop(p):
    if p.poll() is None:
        p.stdin.close()
        p.wait(timeout=60)


def test_a_second_store_in_another_process_is_refused_naming_the_holder(tmp_path):
    d = tmp_path / "ckpt"
    with ck.CheckpointStore(d) as store:
        info = json.loads((d / ".lock").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        p, first = _start(d)
        try:
            assert first.startswith("REFUSED"), first
            assert f"pid {os.getpid()}" in first and socket.gethostname() in first
            assert str(d) in first
        finally:
            _stop(p)
        assert p.returncode == 3
        with pytest.raises(ck.CheckpointError, match=f"pid {os.getpid()}"):
            ck.CheckpointStore(d)  # in this process, too
        assert store.partitions() == []
    p, first = _start(d)  # released by close()
    try:
        assert first == "LOCKED"
        with pytest.raises(ck.CheckpointError, match=f"pid {p.pid} on host"):
            ck.CheckpointStore(d)
    finally:
        _stop(p)


def test_the_lock_is_released_when_its_holder_is_killed_or_closes(tmp_path):
    d = tmp_path / "ckpt"
    p, first = _start(d)
    assert first == "LOCKED"
    with pytest.raises(ck.CheckpointError, match=f"pid {p.pid}"):
        ck.CheckpointStore(d)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    ck.CheckpointStore(d).close()  # the kernel dropped the dead holder's lock
    p, first = _start(d, "close")
    try:
        assert first == "LOCKED" and p.stdout.readline().strip() == "CLOSED"
        with ck.CheckpointStore(d):  # while that process still lives
            pass
    finally:
        _stop(p)


def test_a_closed_store_refuses_to_save_or_load(tmp_path):
    spec = sp.model_spec("gru", hidden_size=3)
    store = ck.CheckpointStore(tmp_path)
    store.save(0, {"k": sp.build_model(spec)}, spec, offset=1)
    store.close()
    store.close()
    with pytest.raises(ck.CheckpointError, match="closed"):
        store.save(0, {}, spec)
    with pytest.raises(ck.CheckpointError, match="closed"):
        store.load(0)
    with ck.CheckpointStore(tmp_path) as again:
        assert again.load(0, spec).position == {"partition": 0, "offset": 1}


def test_stale_temporaries_are_removed_only_by_the_lock_holder(tmp_path):
    spec = sp.model_spec("gru", hidden_size=3)
    d = tmp_path / "ckpt"
    with ck.CheckpointStore(d) as store:
        store.save(2, {"k": sp.build_model(spec)}, spec, offset=5)
    stale = [".partition-2.srnn.abc123.tmp", ".partition-x_y.srnn.q.tmp", ".probe-99-00ff.tmp"]
    keep = ["notes.txt", "partition-2.srnn", ".partition-2.srnn", ".lock"]
    for name in stale:
        (d / name).write_bytes(b"half a checkpoint")
    (d / "notes.txt").write_text("mine")
    p, first = _start(d)
    try:
        assert first == "LOCKED"
        assert sorted(os.listdir(d)) == sorted(set(keep) - {".partition-2.srnn"})
        for name in stale:
            (d / name).write_bytes(b"again")
        with pytest.raises(ck.CheckpointError, match="in use"):
            ck.CheckpointStore(d)
        assert all((d / name).exists() for name in stale)  # not the refused store's to remove
    finally:
        _stop(p)
    with ck.CheckpointStore(d) as store:
        assert not any((d / name).exists() for name in stale)
        assert store.load(2, spec).position["offset"] == 5


def test_a_directory_that_cannot_be_written_is_refused_naming_it(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ck.CheckpointError, match=str(f / "sub")):
        ck.CheckpointStore(f / "sub")  # a path under a file: refused for every user
    with pytest.raises(ck.CheckpointError, match="not a directory"):
        ck.CheckpointStore(f)
    # An existing directory where no file can be created. Root ignores mode bits, so for root
    # use procfs, which refuses new files to everyone; others get a read-only directory.
    if os.geteuid() == 0 and os.path.isdir("/proc/self/fdinfo"):
        ro = "/proc/self/fdinfo"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
    try:
        with pytest.raises(ck.CheckpointError, match=f"{ro} is not writable"):
            ck.CheckpointStore(ro)
    finally:
        if not isinstance(ro, str):
            ro.chmod(0o700)
