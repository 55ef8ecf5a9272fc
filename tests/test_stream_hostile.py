"""Hostile input cannot hurt: every failure of a message is a bad message, every limit holds,
and what a sender controls never grows memory, counters or records without bound.

Attacks that could crash the interpreter run in a child process (the command)."""
import json
import os
import stat
import subprocess
import sys
import threading

import pytest

from streamrnn.streams import (REASON_KINDS, BadMessages, Decoder, JsonLinesSink,
                               JsonLinesSource, StdinSource)
from streamrnn.streams import messages
from streamrnn.streams.files import LineSplitter, TooLong
from _support import child_env

DEEP = b"[" * 100_000


def command(*args, stdin=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
                           *args],
                          env=child_env(), capture_output=True, timeout=timeout, input=stdin)


def backends():
    out = [("json", None)]
    try:
        import orjson
        out.append(("orjson", orjson.loads))
    except ImportError:
        pass
    return out


def _std_loads(b):
    return json.loads(b.decode("utf-8") if isinstance(b, bytes) else b)


# ---------------------------------------------------------------------------- the decoder
@pytest.mark.parametrize("loads", [_std_loads] + [f for _, f in backends()[1:]],
                         ids=[n for n, _ in backends()])
def test_every_failure_is_a_bad_message_whichever_parser(loads):
    d = Decoder(key="k", time="t", loads=loads)
    attacks = {
        DEEP: "too deep",
        b"{" * 50_000: "too deep",
        b'{"y": 1, "k": "a", "n": ' + b"[" * 40 + b"]" * 40 + b"}": "too deep",
        b"x" * (2 << 20): "too large",
        json.dumps({"y": 1, "k": "a", **{f"f{i}": i for i in range(1001)}}).encode():
            "too many fields",
        json.dumps({"y": 1, "k": "a" * 300}).encode(): "bad key",
        json.dumps({"y": 1, "k": "a", "t": "9" * 1_000}).encode(): "bad time",
        json.dumps({"y": 1, "k": "a", "t": {"nested": 1}}).encode(): "bad time",
        b'{"y": 1, "k": "\\ud800"}': None,  # a lone surrogate: not JSON (orjson) or bad key
        b'{"y": 1, "k": "a", "z": 1' + b"0" * 5000 + b"}": None,  # an int over 4,300 digits
        b"\xff\xfe": "not JSON",
        b"[1]": "not an object",
    }
    for payload, kind in attacks.items():
        o = d.decode(payload, 3, 7)
        assert o.error is not None and (o.partition, o.offset) == (3, 7), payload[:40]
        assert o.kind in REASON_KINDS and (kind is None or o.kind == kind), (payload[:40], o.kind)
    # strings may hold brackets: only real nesting counts
    ok = d.decode(json.dumps({"y": 2, "k": "a", "note": "[" * 5000}).encode())
    assert ok.error is None and ok.y == 2.0


def test_the_depth_limit_holds_before_any_parser_runs():
    calls = []
    d = Decoder(loads=lambda b: calls.append(b) or {"y": 1})
    assert d.decode(DEEP).kind == "too deep" and d.decode(b"[" * 33 + b"]" * 33).kind == "too deep"
    assert not calls
    assert d.decode(b"[" * 32 + b"]" * 32).error is None and len(calls) == 1


def test_a_parser_that_raises_anything_gives_a_bad_message():
    def boom(b):
        raise RecursionError("deep down")
    assert "deep down" in Decoder(loads=boom).decode(b'{"y": 1}').error
    assert Decoder(loads=lambda b: 1 / 0).decode(b'{"y": 1}').kind == "not JSON"


def test_limits_are_parameters():
    d = Decoder(max_bytes=10, max_depth=2, max_fields=2, max_key_chars=3, max_time_chars=4,
                key="k", time="t")
    assert d.decode(b'{"y": 1, "k": "abc"}').kind == "too large"
    d = Decoder(max_depth=2, max_fields=3, max_key_chars=3, max_time_chars=4, key="k", time="t")
    assert d.decode(b'{"y": 1, "k": "abc", "a": [[1]]}').kind == "too deep"
    assert d.decode(b'{"y": 1, "k": "abc", "a": [1], "b": 2}').kind == "too many fields"
    assert d.decode(b'{"y": 1, "k": "abcd"}').kind == "bad key"
    assert d.decode(b'{"y": 1, "k": "abc", "t": "12345"}').kind == "bad time"
    assert d.decode(b'{"y": 1, "k": "abc", "t": "1234"}').time == "1234"
    with pytest.raises(ValueError):
        Decoder(max_depth=0)


def test_bad_message_kinds_are_a_fixed_set(caplog):
    bad = BadMessages()
    d = Decoder()
    for i in range(20_000):
        bad(d.from_dict({"y": 1, f"feature-{i}-" + "x" * 50: float("nan")}))
    assert bad.count == 20_000 and bad.by_reason == {"feature not finite": 20_000}
    bad(d.decode(b"{}"), "some sender text: " + "z" * 10_000)  # free text: classified
    assert set(bad.by_reason) <= set(REASON_KINDS) and len(bad.by_reason) == 2
    assert max(len(r.message) for r in caplog.records) < 1000


def test_dead_letter_records_are_bounded(tmp_path):
    sink = JsonLinesSink(tmp_path / "dead.jsonl")
    bad = BadMessages(sink, max_payload_bytes=1000)
    big = b'{"y": "' + "é".encode() * 600_000 + b'"}'
    bad(Decoder().decode(big, 0, 1))
    bad(Decoder().decode(b"oops", 0, 2))
    sink.close()
    rows = [json.loads(line) for line in open(tmp_path / "dead.jsonl", encoding="utf-8")]
    assert rows[0]["truncated"] is True and rows[0]["payload_bytes"] == len(big)
    assert len(rows[0]["payload"].encode()) <= 1000 and "\ufffd" not in rows[0]["payload"]
    assert rows[0]["kind"] == "too large" and rows[1]["kind"] == "not JSON"
    assert (rows[1]["payload"], rows[1]["payload_bytes"], rows[1]["truncated"]) == ("oops", 4,
                                                                                    False)
    assert messages.DEAD_LETTER_BYTES == 64 * 1024 and BadMessages().max_payload_bytes == 65536


# ---------------------------------------------------------------------------- lines
def test_line_splitter_is_linear_and_never_holds_a_long_line_whole():
    s = LineSplitter(1000)
    out = []
    peak = 0
    out += s.feed(b'{"y": 1}\n' + b"x" * 700)
    for _ in range(2000):  # a 20 MB line in 10 kB chunks
        out += s.feed(b"x" * 10_000)
        peak = max(peak, s._len + sum(len(p) for p in s._parts))
    out += s.feed(b'\n{"y": 2}\n{"y"')
    out += s.feed(b": 3}")
    out += s.finish()
    assert peak <= 1000
    assert out[0] == b'{"y": 1}' and type(out[1]) is TooLong
    assert out[1].nbytes == 700 + 20_000_000 and len(out[1].head) <= 1024
    assert out[2:] == [b'{"y": 2}', b'{"y": 3}']


def test_a_giant_line_in_a_file_is_one_bad_message(tmp_path):
    path = tmp_path / "in.jsonl"
    with open(path, "wb") as f:
        f.write(b'{"y": 1}\n')
        f.write(b"[" * (3 << 20) + b"\n")  # over the 1 MiB default line limit
        f.write(b'{"y": 2}\n')
        f.write(DEEP + b"\n")
        f.write(b'{"y": 3}')
    src = JsonLinesSource(path)
    obs = []
    while (b := src.read(0.1)) is not None:
        obs.extend(b)
    assert [o.offset for o in obs] == [0, 1, 2, 3, 4]
    assert [o.kind for o in obs] == [None, "line too long", None, "too deep", None]
    assert [o.y for o in obs if o.error is None] == [1.0, 2.0, 3.0]
    src = JsonLinesSource(path)
    src.seek({0: 2})
    assert [o.y for o in src] == [2.0, 3.0]


def test_a_giant_line_on_stdin_is_skipped_as_it_streams():
    r, w = os.pipe()
    src = StdinSource(Decoder(), fd=r, max_line_bytes=1 << 16)

    def feed():
        os.write(w, b'{"y": 1}\n')
        for _ in range(100):
            os.write(w, b"z" * (1 << 16))
        os.write(w, b'\n{"y": 2}\n')
        os.close(w)

    t = threading.Thread(target=feed)
    t.start()
    obs = []
    while (b := src.read(0.5)) is not None:
        obs.extend(b)
        assert src._split._len <= 1 << 16
    t.join()
    os.close(r)
    assert [(o.offset, o.kind) for o in obs] == [(0, None), (1, "line too long"), (2, None)]


# ---------------------------------------------------------------------------- the command
def _good(n, key="k"):
    return b"".join(json.dumps({"y": float(i % 5), key: f"s{i % 2}"}).encode() + b"\n"
                    for i in range(n))


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_a_deeply_nested_line_does_not_stop_the_command(tmp_path, where):
    data = _good(20) + DEEP + b"\n" + b"{" * 300_000 + b"\n" + _good(20)
    ck_dir = str(tmp_path / "ck")
    if where == "file":
        (tmp_path / "in.jsonl").write_bytes(data)
        args, stdin = ["--source", str(tmp_path / "in.jsonl")], None
    else:
        args, stdin = ["--source", "-"], data
    p = command(*args, "--key", "k", "--checkpoint", ck_dir, "--dead-letter",
                str(tmp_path / "dead.jsonl"), stdin=stdin)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["offset"] for r in rows] == list(range(20)) + list(range(22, 42))
    assert "2 bad (too deep: 2)" in p.stderr.decode()
    dead = [json.loads(line) for line in open(tmp_path / "dead.jsonl")]
    assert [(d["offset"], d["kind"]) for d in dead] == [(20, "too deep"), (21, "too deep")]
    # a restart goes on from the checkpoint, past the bad lines, without dying there
    p = command(*args, "--key", "k", "--checkpoint", ck_dir, stdin=stdin)
    assert p.returncode == 0, p.stderr.decode()[-2000:]


def test_the_command_takes_the_limits_as_options(tmp_path):
    lines = [json.dumps({"y": 1, "k": "a"}), json.dumps({"y": 1, "k": "a" * 11}),
             json.dumps({"y": 1, "k": "a", "pad": "p" * 200}), "[" * 6 + "]" * 6,
             json.dumps({"y": 1, "k": "a", "b": 1, "c": 2})]
    p = command("--source", "-", "--key", "k", "--max-key-chars", "10", "--max-line-bytes",
                "150", "--max-depth", "5", "--max-fields", "3",
                stdin=("\n".join(lines) + "\n").encode())
    assert p.returncode == 0, p.stderr.decode()
    assert len(p.stdout.splitlines()) == 1
    err = p.stderr.decode()
    assert "4 bad" in err and "bad key: 1" in err and "line too long: 1" in err
    assert "too deep: 1" in err and "too many fields: 1" in err
    h = command("--help").stdout.decode()
    for opt in ("--max-keys", "--max-message-bytes", "--max-line-bytes", "--max-depth",
                "--max-fields", "--max-key-chars", "--max-time-chars", "--dead-letter-bytes"):
        assert opt in h
    assert "(default: 10000)" in h and "(default: 65536)" in h


def test_many_distinct_bad_reasons_keep_the_summary_short(tmp_path):
    data = b"".join(json.dumps({"y": 1.0, f"f{i}" + "x" * 40: 1e999 if i else 1}).encode()
                    + b"\n" for i in range(20_000))
    data = data.replace(b"Infinity", b"1e999")
    p = command("--source", "-", stdin=data)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    summary = [ln for ln in p.stderr.decode().splitlines() if ln.startswith("streamrnn forecast")]
    assert len(summary) == 1 and len(summary[0]) < 300, summary


# ---------------------------------------------------------------------------- sinks
def test_a_torn_last_line_is_removed_before_appending(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"offset":0}\n{"offset":1}\n{"offs')  # disk full mid-line
    sink = JsonLinesSink(path)
    sink.send({"offset": 2})
    assert sink.flush() is True
    sink.close()
    assert [json.loads(line)["offset"] for line in open(path)] == [0, 1, 2]
    path.write_bytes(b'{"offs')  # a torn first line
    s = JsonLinesSink(path)
    s.send({"offset": 0})
    s.close()
    assert path.read_text() == '{"offset":0}\n'


def test_dev_null_and_a_fifo_are_sinks(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(_good(50))
    p = command("--source", str(tmp_path / "in.jsonl"), "--sink", os.devnull, "--quiet",
                "--checkpoint", str(tmp_path / "ck"))
    assert p.returncode == 0, p.stderr.decode()
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.extend(open(fifo, "rb").read().splitlines()))
    reader.start()
    p = command("--source", str(tmp_path / "in.jsonl"), "--sink", str(fifo), "--quiet")
    reader.join(30)
    assert p.returncode == 0, p.stderr.decode()
    assert len(got) == 50 and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_broken_pipe_stops_the_run_with_the_last_checkpoint_intact(tmp_path):
    from streamrnn import checkpoint as ck
    n = 20_000
    (tmp_path / "in.jsonl").write_bytes(_good(n))
    cmd = [sys.executable, "-m", "streamrnn", "forecast", "--per-key-models", "--source",
           str(tmp_path / "in.jsonl"),
           "--key", "k", "--checkpoint", str(tmp_path / "ck"), "--checkpoint-every", "100",
           "--hidden-size", "4"]
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # read one line, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(120)
    assert json.loads(first)["offset"] == 0
    assert proc.returncode == 2 and "closed" in err, err
    c = ck.CheckpointStore(tmp_path / "ck").load(0)
    assert c is None or c.position["offset"] < n  # never a final checkpoint past lost output


def test_no_parser_sees_nesting_it_could_crash_on():
    # orjson 3.8 has no recursion limit of its own and crashes the interpreter on a few
    # million nested brackets; the decoder's depth scan comes first, whatever the size limit
    code = ("from streamrnn.streams import Decoder, messages\n"
            "d = Decoder(max_bytes=1 << 23)\n"
            "for p in (b'[' * 3_000_000, b'{\"a\":' * 1_000_000,\n"
            "          b'[' * 2_000_000 + b']' * 2_000_000):\n"
            "    assert d.decode(p).kind == 'too deep', p[:10]\n"
            "print(messages.json_backend)\n")
    p = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def _reference_depth(data):
    """The nesting depth as a JSON parser sees it, one character at a time."""
    depth = best = 0
    inside = escaped = False
    for c in data.decode("latin-1"):
        if inside:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                inside = False
        elif c == '"':
            inside = True
        elif c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth -= 1
    return best


def test_the_depth_scan_agrees_with_a_parser_on_strings_and_escapes():
    import random
    rng = random.Random(0)
    tricky = [1, 'a\\"[{', "\\\\", "[[[", 'x"]', None, '\\\\\\"{', "é[", ""]

    def gen(d):
        r = rng.random()
        if d > 40 or r < 0.3:
            return rng.choice(tricky)
        if r < 0.65:
            return [gen(d + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["k", "[", '\\"{', "\\\\"]) + str(i): gen(d + 1)
                for i in range(rng.randint(0, 3))}

    samples = [json.dumps(gen(0), ensure_ascii=False).encode() for _ in range(1500)]
    samples += [b"[" * 40 + b'"\\' * 2000,  # an unterminated run of escaped quotes
                b'{"a": "x\\\\"' + b"[" * 40 + b"}", b'"' * 1000 + b"[" * 100]
    for data in samples:
        for limit in (1, 5, 20):
            assert (messages.nesting_depth(data, limit) > limit) == \
                (_reference_depth(data) > limit), data[:80]


def test_csv_rows_that_cannot_be_read_are_bad_records(tmp_path):
    from streamrnn.streams import CsvSource
    path = tmp_path / "in.csv"
    with open(path, "wb") as f:
        f.write(b"y,note\n1,a\n")
        f.write(b"2," + b"n" * (3 << 20) + b"\n")  # a 3 MB line
        f.write(b"3," + b"m" * 200_000 + b"\n")  # a cell over csv's own 128 KiB limit
        f.write(b"4,\xff\xfe\n")  # not UTF-8
        f.write(b"5,b\n")
    src = CsvSource(path)
    obs = []
    while (b := src.read()) is not None:
        obs.extend(b)
    assert [o.offset for o in obs] == [0, 1, 2, 3, 4]
    assert [o.y for o in obs] == [1.0, None, None, 4.0, 5.0]
    assert obs[1].kind == "line too long" and "3,145,730" in obs[1].error
    assert obs[2].error is not None
    src = CsvSource(path)
    src.seek({0: 3})
    assert [o.y for o in src] == [4.0, 5.0]
