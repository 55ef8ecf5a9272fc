"""The command as a new user meets it: mistakes reported at once and clearly, a terminal that
stays readable, records that hold the actual value, and summaries that score every step."""
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from _support import child_env
from streamrnn.streams import BadMessages, Decoder, Observation, open_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _per_key(args):
    """Today's per-key models (``--per-key-models``): these tests pin their behaviour."""
    args = list(args)
    if args and args[0] in ("forecast", "backtest"):
        return [args[0], "--per-key-models", *args[1:]]
    return args


def cmd(*args, stdin=None, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "streamrnn", *_per_key(args)],
                          env=env or child_env(), capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


# ------------------------------------------------------------------ mistakes, early and named
def test_csv_without_the_target_column_fails_at_once_naming_the_columns(tmp_path):
    (tmp_path / "sales.csv").write_text("date,sales\n" + "2024-01-01,3\n" * 3000)
    p = cmd("forecast", "--source", str(tmp_path / "sales.csv"))
    assert p.returncode == 2 and p.stdout == ""
    assert "no column 'y'" in p.stderr and "'date', 'sales'" in p.stderr and "--target" in p.stderr
    p = cmd("forecast", "--source", str(tmp_path / "sales.csv"), "--target", "sales",
            "--key", "shop")
    assert p.returncode == 2 and "no column 'shop' (the key, --key)" in p.stderr


def test_excel_csv_with_a_byte_order_mark_and_semicolons_keeps_its_first_column(tmp_path):
    rows = "".join(f"{i % 5};{i}\n" for i in range(30))
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + ("y;x\n" + rows).encode())
    p = cmd("forecast", "--source", str(tmp_path / "excel.csv"), "--quiet")
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(recs) == 30 and [r["y"] for r in recs[:6]] == [0, 1, 2, 3, 4, 0]


def test_bad_log_level_and_unknown_option_show_the_subcommand_usage():
    p = cmd("forecast", "--log-level", "verbose")
    assert p.returncode == 2 and "usage: streamrnn forecast" in p.stderr
    assert "'verbose' is not one of DEBUG, INFO, WARNING, ERROR" in p.stderr
    p = cmd("forecast", "--horizn", "3")
    assert p.returncode == 2 and "usage: streamrnn forecast" in p.stderr
    assert "unrecognized arguments: --horizn" in p.stderr
    p = cmd("backtest", "--nope")
    assert p.returncode == 2 and "usage: streamrnn backtest" in p.stderr
    assert cmd("forecast", "--log-level", "debug", "--limit", "5", "--sink",
               os.devnull).returncode == 0


def test_version_and_help_defaults():
    p = cmd("--version")
    assert p.returncode == 0 and p.stdout.startswith("streamrnn ")
    h = cmd("forecast", "--help").stdout
    assert "(default: 16)" in h and "--connect-timeout" in h and "--plot-keys" in h
    assert "130" in h  # the exit statuses


def test_plot_without_matplotlib_fails_before_reading(tmp_path):
    fake = tmp_path / "nompl" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "nompl"), env["PYTHONPATH"]])
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"y": i}) + "\n" for i in range(10)))
    p = cmd("forecast", "--source", str(src), "--plot", str(tmp_path / "p.png"),
            "--checkpoint", str(tmp_path / "ck"), env=env)
    assert p.returncode == 2 and p.stdout == "" and "--plot needs matplotlib" in p.stderr
    assert not os.listdir(tmp_path / "ck") if os.path.exists(tmp_path / "ck") else True


@pytest.mark.parametrize("role,option", [("source", "--source"), ("sink", "--sink"),
                                         ("dead-letter sink", "--dead-letter")])
def test_connection_errors_name_the_role_and_address_after_retrying(tmp_path, role, option):
    port = closed_port()
    addr = f"mqtt://127.0.0.1:{port}/t"
    args = ["forecast", option, addr, "--connect-timeout", "0.6"]
    if option != "--source":
        (tmp_path / "in.jsonl").write_text('{"y": 1}\n')
        args += ["--source", str(tmp_path / "in.jsonl")]
    t0 = time.monotonic()
    p = cmd(*args)
    assert p.returncode == 2, p.stderr
    assert f"cannot connect to the {role} {addr}" in p.stderr
    assert f"127.0.0.1:{port}" in p.stderr and "tries" in p.stderr
    assert time.monotonic() - t0 >= 0.6  # it retried for --connect-timeout


def test_mqtt_connect_retries_until_the_broker_is_there():
    from streamrnn.streams.mqtt import _connect

    class Flaky:
        calls = 0

        def connect(self, host, port, keepalive):
            Flaky.calls += 1
            if Flaky.calls < 3:
                raise ConnectionRefusedError(111, "Connection refused")

    _connect(Flaky(), "127.0.0.1:1", 30, 5.0)
    assert Flaky.calls == 3


def test_kafka_source_that_cannot_connect_names_the_brokers():
    pytest.importorskip("confluent_kafka")
    port = closed_port()
    p = cmd("forecast", "--source", f"kafka://127.0.0.1:{port}/t?group=g",
            "--connect-timeout", "1")
    assert p.returncode == 2
    assert f"cannot connect to the source kafka://127.0.0.1:{port}/t?group=g" in p.stderr
    assert f"Kafka brokers 127.0.0.1:{port} did not answer" in p.stderr


# ------------------------------------------------------------------ records and dead letters
def test_records_hold_y_and_csv_dead_letters_hold_the_raw_line(tmp_path):
    (tmp_path / "in.csv").write_text("y,note\n1,a\nNaN,b\n3,\"quoted, comma\"\nfive,c\n4,d\n")
    p = cmd("forecast", "--source", str(tmp_path / "in.csv"), "--quiet",
            "--dead-letter", str(tmp_path / "dead.jsonl"))
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["y"] for r in recs] == [1.0, 3.0, 4.0]
    dead = [json.loads(line) for line in open(tmp_path / "dead.jsonl")]
    assert [d["payload"] for d in dead] == ["NaN,b", "five,c"]  # the line, not re-serialised
    assert [d["offset"] for d in dead] == [1, 3]


def test_dead_letters_from_topics_carry_the_topic():
    out = []

    class Keep:
        def send(self, rec, key=None):
            out.append(rec)
    bad = BadMessages(Keep())
    obs = Decoder().decode(b"not json", 0, 7, topic="sensors/a/temp")
    obs.topic = "sensors/a/temp"  # as MqttSource and KafkaSource set it
    bad(obs)
    bad(Observation(None, None, None, error="target 'y' is missing", offset=8))
    assert out[0]["topic"] == "sensors/a/temp" and "topic" not in out[1]


def test_mqtt_dead_letter_records_name_the_topic(tmp_path):
    from brokers import Mosquitto
    try:
        b = Mosquitto(str(tmp_path))
    except FileNotFoundError:
        pytest.skip("mosquitto is not installed")
    try:
        import paho.mqtt.client as mqtt
        src = open_source(f"mqtt://{b.address}/sensors/#?client_id=dl-test",
                          Decoder(key="@topic:1"))
        # no pause: the source is open once the broker has acknowledged the subscription
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        c.connect("127.0.0.1", b.port)
        c.loop_start()
        c.publish("sensors/a", b"{broken", qos=1).wait_for_publish(5)
        c.publish("sensors/b", b'{"y": 1}', qos=1).wait_for_publish(5)
        got, deadline = [], time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            got += src.read(0.5)
        c.loop_stop()
        src.close()
    finally:
        b.close()
    badobs = [o for o in got if o.error is not None]
    assert len(badobs) == 1 and badobs[0].topic == "sensors/a"


# ------------------------------------------------------------------ the terminal
def _on_terminal(*args, timeout=60):
    """Run the command with stdout and stderr on one pseudo-terminal; return what it showed."""
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "streamrnn", *_per_key(args)], env=child_env(),
                         stdout=slave, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                b = os.read(master, 65536)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        elif p.poll() is not None:
            break
    p.wait(10)
    os.close(master)
    return p.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_demo_on_a_terminal_shows_the_summary_not_733_kb_of_json():
    rc, shown = _on_terminal("forecast")
    assert rc == 0
    assert '"prediction"' not in shown and len(shown) < 5000
    assert "writes no records to a terminal" in shown and "forecasts by step ahead" in shown


def test_records_on_a_terminal_get_no_progress_line_glued_to_them(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"y": i % 7}) + "\n" for i in range(300)))
    rc, shown = _on_terminal("forecast", "--source", str(src))
    assert rc == 0
    lines = [ln for ln in shown.replace("\r\n", "\n").split("\n") if ln.startswith("{")]
    assert len(lines) == 300 and "\r" not in "".join(lines) and "msgs" not in shown
    for ln in lines:
        json.loads(ln)


def test_sigint_exits_130_after_a_final_checkpoint_and_the_summary(tmp_path):
    out = tmp_path / "out.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "streamrnn", "forecast", "--per-key-models",
                          "--source", "-",
                          "--checkpoint", str(tmp_path / "ck"), "--sink", str(out)],
                         env=child_env(), stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    p.stdin.write("".join(json.dumps({"y": i}) + "\n" for i in range(20)))
    p.stdin.flush()
    # the loop runs (its signal handlers are in place) once the records come out
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and
                                               out.read_text().count("\n") >= 20):
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "stopped by a signal" in err and "20 messages" in err
    from streamrnn.checkpoint import CheckpointStore
    with CheckpointStore(tmp_path / "ck") as s:
        assert s.load(0).position["offset"] == 20


# ------------------------------------------------------------------ summaries
def test_resume_is_announced_and_counted_apart_and_every_step_is_scored(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"k": f"s{i % 2}", "y": i % 9}) + "\n"
                           for i in range(400)))
    common = ["forecast", "--source", str(src), "--key", "k", "--checkpoint",
              str(tmp_path / "ck"), "--sink", os.devnull, "--hidden-size", "4", "--horizon", "3"]
    p = cmd(*common, "--limit", "150")
    assert "resuming" not in p.stderr
    p = cmd(*common)
    assert p.returncode == 0, p.stderr
    assert "resuming partition 0" in p.stderr and "at offset 150 with 2 models" in p.stderr
    assert "250 messages in" in p.stderr and "400 messages in all" in p.stderr
    table = p.stderr[p.stderr.index("forecasts by step ahead"):]
    for step in ("1", "2", "3"):
        assert any(line.split()[:1] == [step] for line in table.splitlines())
    p = cmd(*common, "--hidden-size", "5")
    assert p.returncode == 2
    assert "params.hidden_size: 4 (checkpoint) != 5 (this run)" in p.stderr
    assert "options that set these fields: --hidden-size" in p.stderr


def test_plot_draws_keys_on_the_time_axis_and_names_those_left_out(tmp_path):
    pytest.importorskip("matplotlib")
    src = tmp_path / "in.jsonl"
    with open(src, "w") as f:
        for i in range(80):
            for k in range(8):
                f.write(json.dumps({"k": f"s{k}", "t": f"2024-01-01T{i % 24:02d}:00:00",
                                    "y": (i + k) % 5}) + "\n")
    p = cmd("forecast", "--source", str(src), "--key", "k", "--time", "t", "--horizon", "4",
            "--plot", str(tmp_path / "p.png"), "--plot-keys", "3", "--sink", os.devnull)
    assert p.returncode == 0, p.stderr
    assert "keys 's0', 's1', 's2'; 5 other keys not drawn" in p.stderr
    assert os.path.getsize(tmp_path / "p.png") > 20_000


def test_plot_axis_is_the_time_or_the_keys_own_steps_never_the_offset():
    import datetime as dt
    from streamrnn.streams.report import _axis, _ahead, parse_time
    assert parse_time("2024-01-01T00:00:00Z").tzinfo is not None
    assert parse_time(1_700_000_000) == parse_time(1_700_000_000_000)  # s and ms
    assert parse_time("1700000000") == parse_time(1_700_000_000)
    assert parse_time(17.5) == 17.5 and parse_time("soon") is None and parse_time(True) is None
    tr = [(j, f"2024-01-0{j + 1}", 1.0, None) for j in range(4)]
    kind, xs = _axis(tr)
    assert kind == "time" and xs[1] - xs[0] == dt.timedelta(days=1)
    assert _ahead(kind, xs, xs[-1], 2)[1] == xs[-1] + dt.timedelta(days=2)
    kind, xs = _axis([(j, None, 1.0, None) for j in range(4)])
    assert kind == "step" and xs == [0, 1, 2, 3] and _ahead(kind, xs, 3, 2) == [4, 5]
    kind, xs = _axis([(0, "2024-01-01", 1, None), (1, "garbled", 1, None)])
    assert kind == "step"


def test_runner_trace_counts_each_keys_own_steps_with_bounded_memory():
    from streamrnn import GRUForecaster
    from streamrnn.streams import NullSink, Runner

    class Src:
        bad = BadMessages()

        def __init__(self):
            self.done = False

        def read(self, timeout=1.0):
            if self.done:
                return None
            self.done = True
            return [Observation(f"k{i % 3}", {}, float(i % 4), None, 0, i) for i in range(300)]

        def describe(self, p):
            return {"kind": "test"}
    recs = []

    class Keep(NullSink):
        def send(self, rec, key=None):
            recs.append(rec)
    r = Runner(None, Src(), Keep(), horizon=2, plot_keys=2, trace_len=50,
               model_factory=lambda: GRUForecaster(hidden_size=2, seed=1))
    r.run()
    assert sorted(r.trace) == ["k0", "k1"]
    assert [e[0] for e in r.trace["k0"]] == list(range(50, 100))  # the key's steps
    assert r.last_forecast["k1"][0] == 99
    # each value's forecast made 2 steps before it, for the plot
    k0 = [rec for rec in recs if rec["key"] == "k0"]
    assert [e[4] for e in r.trace["k0"]] == [k0[s - 2]["forecast"][1] for s in range(50, 100)]


def test_a_plot_that_cannot_be_written_keeps_the_summary(tmp_path):
    pytest.importorskip("matplotlib")
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"y": i % 3}) + "\n" for i in range(40)))
    p = cmd("forecast", "--source", str(src), "--plot", str(tmp_path / "nodir" / "p.png"))
    assert p.returncode == 2 and p.stdout == "" and "no directory" in p.stderr
    (tmp_path / "adir.png").mkdir()  # a directory where the picture should go
    p = cmd("forecast", "--source", str(src), "--plot", str(tmp_path / "adir.png"),
            "--sink", os.devnull)
    assert p.returncode == 2
    assert "40 messages" in p.stderr and "streamrnn: error: --plot" in p.stderr
