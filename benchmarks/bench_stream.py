"""Messages per second through the command's loop, from Kafka (librdkafka's mock cluster on
127.0.0.1) to Kafka, GRU hidden 16: one global model per partition (the default) against one
model per key (``--per-key-models``), in the same run, with where the time goes.

    PYTHONPATH=. python benchmarks/bench_stream.py [--messages 200000] [--keys 10000]
        [--horizons 0,12] [--update-every 1] [--tbptt-steps 16] [--batch 1024]
        [--modes global,global-obs,per-key] [--repeat 1] [--profile]

Modes (whole loops, interleaved with --repeat): global (GlobalRunner.run as the command runs
it: columns in, records encoded from the columns), and its peers global-thread (with the
learning thread, learn_thread=True), global-5ms (global-thread with the interpreter's switch
interval left at its default), global-obs (observations in,
record dicts out: the loop before the batch decoder), per-key (one model per key). Each
whole loop also prints its CPU time per message, in all of the process's threads and in the
loop's own thread (the machine is shared: CPU time moves less with the load than wall time).

The topic has 4 partitions; keys are spread over them by the Kafka key (as the command reads
them, ``--key @key``); every message carries ``y`` and one feature. Phases, each timed
separately on the same messages (wall clock, time.perf_counter):

  consume+decode   fetch, JSON decoding and validation: global, KafkaSource.read_columns (the
                   batch decoder, straight into columns); per key, KafkaSource.read
  learn            global: learn_columns per partition batch of --batch messages (its forward
                   pass gives the prediction, the anomaly, the forecast and its interval);
                   per key: learn_one (+ last_prediction), then forecast(h) + its interval
  records          the records {key, time, partition, offset, y, prediction, anomaly,
                   forecast, low, high} from the model's results: global, their JSON bytes
                   encoded from the columns in one pass per batch (_codec.encode_records, as
                   GlobalRunner.run does); per key, the record dicts
  produce          producing them (global: KafkaSink.send_encoded; per key: Sink.send, which
                   encodes), then flush
  scores           the summary's per-step scores (only with horizon >= 1): global,
                   BatchScore.observe_many per batch; per key, HorizonScore.observe

and the whole loop (GlobalRunner / Runner, as ``streamrnn forecast`` runs it) end to end on
a fresh consumer group. consume+decode also gives librdkafka's own share (the same reads
without decoding), and the transport's ceiling: consume alone, and consume + produce the same
messages again with no decoding and no model, with one produce call per message (as
KafkaSink does) and with one produce_batch call per read (measured slower on the mock
cluster: KafkaSink does not use it) (what is reachable at all on this machine, where
the in-process mock broker and librdkafka's threads share the cores with the loop). The garbage collector is tuned as the command tunes it (tune_gc) unless
--no-gc-tuning; --profile prints cProfile's top functions of the global whole loop. At horizon 0 the models have a one-step head (the records carry only
the prediction), as the command does.
"""
import argparse
import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from brokers import MockKafka, produce  # noqa: E402

from streamrnn import spec as spec_mod  # noqa: E402
from streamrnn._core import _shared  # noqa: E402
from streamrnn.streams import BadMessages, Decoder, Runner  # noqa: E402
from streamrnn.streams.batched import GlobalRunner, tune_gc  # noqa: E402
from streamrnn.streams.kafka import KafkaSink, KafkaSource  # noqa: E402
from streamrnn.streams.scoring import BatchScore, HorizonScore  # noqa: E402

PARTITIONS = 4
SLACK = 8192
perf = time.perf_counter


def items(n, keys):
    for i in range(n):
        k = i % keys
        yield (f"sensor-{k}".encode(),
               {"y": round(10 * math.sin(i / 97 + k) + k % 7, 3),
                "temp": round(20 + (i % 13) * 0.1, 2)})


def consume_all(bootstrap, topic, group, n):
    src = KafkaSource(bootstrap, topic, group, Decoder(key="@key"), BadMessages())
    out = []
    while not out:
        out.extend(src.read(1.0))
    first = len(out)
    t0 = perf()
    while len(out) < n:
        out.extend(src.read(1.0))
    dt = perf() - t0
    src.close()
    return out[:n], dt * n / max(1, len(out) - first)


def _consumer(bootstrap, group):
    from confluent_kafka import Consumer
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "enable.partition.eof": False})


def _timed_reads(bootstrap, topic, group, n, handle, finish=None):
    """Read ``n`` messages in batches, ``handle(batch)`` each; seconds for ``n`` messages
    after the first read (the group's join), ``finish()`` included."""
    c = _consumer(bootstrap, group)
    c.subscribe([topic])
    got = first = 0
    t0 = None
    while got < n:
        ms = c.consume(1000, 1.0)
        if ms and t0 is None:
            t0, first = perf(), len(ms)
        handle(ms)
        got += len(ms)
    if finish is not None:
        finish()
    dt = perf() - t0
    c.close()
    return dt * n / max(1, got - first)


def fetch_only(bootstrap, topic, group, n):
    """librdkafka's share of consume+decode: the same reads without decoding."""
    def handle(ms):
        for m in ms:
            m.error(), m.value(), m.partition(), m.offset(), m.key(), m.topic()
    return _timed_reads(bootstrap, topic, group, n, handle)


def transport(bootstrap, topic, group, n, batch=False):
    """The transport's ceiling: the same messages consumed and produced again (value and key
    unchanged, one poll per batch, flushed at the end) with no decoding and no model; seconds
    for ``n`` messages after the first read (the group's join). ``batch``: produced with one
    ``produce_batch`` call per read instead of one ``produce`` per message."""
    from confluent_kafka import Producer
    pr = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True,
                   "log_level": 0})
    produce_ = pr.produce
    out = f"out-{group}"

    def handle(ms):
        if batch:
            msgs = [{"value": m.value(), "key": m.key()} for m in ms if m.error() is None]
            while msgs:
                if len(pr) + len(msgs) > 100_000:  # the queue's room
                    pr.poll(0.1)
                    continue
                pr.produce_batch(out, msgs)
                msgs = [{"value": m["value"], "key": m["key"]} for m in msgs if "_error" in m]
            pr.poll(0)
            return
        for m in ms:
            if m.error() is None:
                while True:
                    try:
                        produce_(out, m.value(), m.key())
                        break
                    except BufferError:
                        pr.poll(0.1)
        pr.poll(0)
    return _timed_reads(bootstrap, topic, group, n, handle, pr.flush)


def produce_calls(bootstrap, n, rounds=3):
    """µs of the calling thread per ``produce()`` of a ~100-byte record (1,024 a batch, one
    poll per batch, as KafkaSink.send_encoded): the delivery callback passed to every call
    (``on_delivery=``, KafkaSink before thru3) against set once as the producer's callback
    (KafkaSink now); thread CPU time, best of ``rounds`` interleaved."""
    from confluent_kafka import Producer
    vals = [b'{"key":"sensor-%d","time":null,"partition":0,"offset":%d,"y":1.5,'
            b'"prediction":1.25,"anomaly":0.5}' % (i % 10000, i) for i in range(n)]
    keys = [b"sensor-%d" % (i % 10000) for i in range(n)]

    def report(err, msg):
        pass
    best = {"per call": math.inf, "producer's": math.inf}
    for r in range(rounds):
        for way in best:
            conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 0,
                    "enable.idempotence": True, "delivery.report.only.error": True,
                    "queue.buffering.max.messages": max(100_000, n)}
            if way != "per call":
                conf["on_delivery"] = report
            pr = Producer(conf)
            produce, topic = pr.produce, f"pc-{r}"
            t0 = time.thread_time()
            for i in range(0, n, 1024):
                if way == "per call":
                    for j in range(i, min(i + 1024, n)):
                        produce(topic, vals[j], keys[j], on_delivery=report)
                else:
                    for j in range(i, min(i + 1024, n)):
                        produce(topic, vals[j], keys[j])
                pr.poll(0)
            best[way] = min(best[way], (time.thread_time() - t0) / n * 1e6)
            pr.flush(30)
    return best


def key_maps(n, keys, sub=256):
    """µs per row of the key -> slot map's work in a step of ``sub`` distinct keys, on the
    benchmark's key sequence (fresh str objects, as the decoder makes them): the OrderedDict
    GlobalForecaster used (contains, get, update, move_to_end) against KeyMap (lookup,
    touch), same keys, same slots, the same order at the end (asserted)."""
    from collections import OrderedDict, deque

    import numpy as np

    from streamrnn._core._keymap import KeyMap
    seq = [[f"sensor-{(s + j) % keys}" for j in range(sub)] for s in range(0, n, sub)]
    od, km = OrderedDict(), KeyMap()
    slot_of = {}

    def old(ks):
        new = len(ks) - sum(map(od.__contains__, ks))
        have = list(map(od.get, ks))
        if new:
            have = [slot_of.setdefault(k, len(slot_of)) if s is None else s
                    for k, s in zip(ks, have)]
        od.update(zip(ks, have))
        deque(map(od.move_to_end, ks), maxlen=0)

    def now(ks):
        out = np.empty(len(ks), dtype=np.int64)
        if km.lookup(ks, out):
            for j in np.flatnonzero(out < 0).tolist():
                out[j] = slot_of.setdefault(ks[j], len(slot_of))
        km.touch(ks, out)
    times = {}
    for name, f in (("OrderedDict", old), ("KeyMap", now)):
        for ks in seq:  # the first pass: every key new
            f([k.encode().decode() for k in ks])
        batches = [[k.encode().decode() for k in ks] for ks in seq]
        t0 = perf()
        for ks in batches:
            f(ks)
        times[name] = (perf() - t0) / n * 1e6
    assert list(od.items()) == km.items()
    return times


GLOBAL_VARIANT = re.compile(r"global((?:-t\d+|-le\d+|-k\d+)+)$")


def variant(mode, a):
    """``global-t2`` / ``global-k8`` / ``global-le8-k4`` ...: the command's loop (mode
    global) with the network step shared by N threads (-tN, ``--threads``), learn_every N
    (-leN, ``--update-every``) or tbptt_steps N (-kN, ``--tbptt-steps``) instead of this
    run's; None for the other modes. Returns (threads, learn_every, tbptt_steps)."""
    m = GLOBAL_VARIANT.match(mode)
    if m is None:
        return None
    got = dict(re.findall(r"-(t|le|k)(\d+)", m.group(1)))
    return (int(got.get("t", 1)), int(got.get("le", a.update_every)),
            int(got.get("k", a.tbptt_steps)))


def specs(a, h, learn_every=None, tbptt_steps=None):
    g = spec_mod.model_spec("gru", model="global", hidden_size=16, seed=1, horizon=max(1, h),
                            learn_every=learn_every or a.update_every,
                            max_keys=max(a.keys, 1),
                            tbptt_steps=tbptt_steps or a.tbptt_steps)
    p = spec_mod.model_spec("gru", hidden_size=16, seed=1, horizon=max(1, h),
                            update_every=a.update_every, tbptt_steps=a.tbptt_steps)
    return g, p


def consume_columns(bootstrap, topic, group, n):
    """The global loop's consume+decode: KafkaSource.read_columns (the batch decoder)."""
    src = KafkaSource(bootstrap, topic, group, Decoder(key="@key"), BadMessages())
    out = []
    while not out:
        out.append(src.read_columns(1.0))
        if not out[0]:
            out = []
    first = got = sum(map(len, out[0].values()))
    t0 = perf()
    while got < n:
        b = src.read_columns(1.0)
        got += sum(map(len, b.values()))
        out.append(b)
    dt = perf() - t0
    src.close()
    return out, dt * n / max(1, got - first)


def phases_global(spec, reads, a, h, bootstrap):
    from streamrnn.streams.columns import Columns
    rows = []
    parts = {}
    for b in reads:
        for p, c in b.items():
            parts.setdefault(p, []).append(c)
    models = {p: spec_mod.build_model(spec) for p in parts}
    results = []
    t_learn = 0.0
    for p, lst in parts.items():
        m = models[p]
        rest = Columns.concat(lst)
        while rest is not None:
            chunk, rest = rest.cut(a.batch)
            t0 = perf()
            r = m.learn_columns(chunk.key, chunk.y, chunk.X, chunk.names, alpha=0.1)
            t_learn += perf() - t0
            results.append((p, chunk, r))
    rows.append(("learn_columns", t_learn))
    # the runner's own code for the rest, phase by phase: the records' JSON encoded from the
    # columns (as GlobalRunner.run does), then produced
    from streamrnn._core._codec import encode_records
    from streamrnn.streams.messages import dumps_bytes, dumps_floats
    sink = KafkaSink(bootstrap, "out-g")
    runner = GlobalRunner(spec, None, sink, horizon=h, batch=a.batch,
                          scorer=BatchScore(h, 0, alpha=0.1) if h else None)
    t0 = perf()
    batches = [encode_records(c.key, c.time, p, c.offset, c.y, r.prediction, r.anomaly,
                              r.forecast, r.low, r.high, h, dumps_bytes, dumps_floats)
               for p, c, r in results]
    rows.append(("records (encoded)", perf() - t0))
    t0 = perf()
    for values, keys in batches:
        sink.send_encoded(values, keys)
    sink.flush()
    rows.append(("produce", perf() - t0))
    if h:
        t0 = perf()
        for _, c, r in results:
            runner._score(p, None, c.key, c.y, r.forecast, r.low, r.high)
        rows.append(("scores", perf() - t0))
    state = next(iter(models.values())).slot_bytes
    return rows, state


def phases_per_key(spec, obs, h, bootstrap):
    rows = []
    models = {}
    t_learn = t_fc = 0.0
    recs = []
    for o in obs:
        m = models.get(o.key)
        if m is None:
            m = models[o.key] = spec_mod.build_model(spec)
        t0 = perf()
        m.learn_one(o.y, o.x)
        p = m.last_prediction
        an = m.last_anomaly
        t1 = perf()
        if h:
            fc = m.forecast(h)
            iv = m.forecast_interval(h, 0.1)
            lo, hi = [b[0] for b in iv], [b[1] for b in iv]
        else:
            fc = lo = hi = []
        t_learn += t1 - t0
        t_fc += perf() - t1
        recs.append((o, p, an, fc, lo, hi))
    rows.append(("learn_one", t_learn))
    if h:
        rows.append((f"forecast({h})+interval", t_fc))
    t0 = perf()
    records = [{"key": o.key, "time": o.time, "partition": o.partition, "offset": o.offset,
                "y": o.y, "prediction": p, "anomaly": an, "forecast": fc, "low": lo,
                "high": hi} for o, p, an, fc, lo, hi in recs]
    rows.append(("records", perf() - t0))
    sink = KafkaSink(bootstrap, "out-p")
    t0 = perf()
    for r in records:
        sink.send(r, r["key"])
    sink.flush()
    rows.append(("produce", perf() - t0))
    if h:
        sc = HorizonScore(h, 0, alpha=0.1)
        t0 = perf()
        for r in records:
            sc.observe(r["key"], r["y"], r["forecast"], r["low"], r["high"], part=0)
        rows.append(("scores", perf() - t0))
    from streamrnn import checkpoint as ck
    return rows, ck.state_nbytes(next(iter(models.values())))


CPU = {}  # group -> (process CPU seconds, main thread CPU seconds) of its whole loop


def _cpu():
    """CPU seconds of this process so far, all its threads (librdkafka's and the mock
    broker's included)."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def whole_loop(make, bootstrap, group, n, h, profile=False, columns=True):
    """Messages/s of the runner end to end (fetch to produced and flushed), after its first
    read (the group's join). ``columns=False`` (mode global-obs): the global runner fed with
    observations (KafkaSource.read, Decoder.fast_path) and producing record dicts
    (Sink.send_many, orjson per record), the loop before the batch decoder and encoder."""
    src = KafkaSource(bootstrap, "in", group, Decoder(key="@key"), BadMessages())
    sink = KafkaSink(bootstrap, f"out-{group}")
    runner = make(src, sink)
    lean = columns
    feed = runner.feed if isinstance(runner, GlobalRunner) else None
    columns = columns and feed is not None
    if columns:  # GlobalRunner.run itself, as the command runs it
        return _run_loop(runner, src, sink, group, n, profile)
    read = src.read_columns if columns else src.read
    size = (lambda b: sum(map(len, b.values()))) if columns else len
    while not (batch := read(1.0)):
        pass
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    t0 = perf()
    c0, m0 = _cpu(), time.thread_time()
    done = first = size(batch)
    if feed:
        feed(batch, records=not lean)
    else:
        for o in batch:
            runner.process(o)
    while done < n:
        batch = read(1.0)
        done += size(batch)
        if feed:
            feed(batch, records=not lean)
        else:
            for o in batch:
                runner.process(o)
        sink.tick()
    if feed:
        runner.flush(records=not lean)
    sink.flush()
    dt = (perf() - t0) * n / max(1, done - first)
    scale = n / max(1, done - first)
    CPU[group] = ((_cpu() - c0) * scale, (time.thread_time() - m0) * scale)
    if prof is not None:
        prof.disable()
    src.close()
    return dt, prof


def _run_loop(runner, src, sink, group, n, profile):
    """whole_loop through GlobalRunner.run (columns in, encoded records out, the learning
    thread unless the runner's learn_thread is False): timed from the end of the first
    read that brought messages; stopped once ``n`` messages were read (run then learns the
    part-filled batches and flushes the sink)."""
    read = src.read_columns
    state = {"done": 0, "first": 0, "t0": None, "c0": None, "prof": None}

    def counting(timeout):
        b = read(timeout)
        got = sum(map(len, b.values()))
        if got and state["t0"] is None:
            state["first"] = got
            if profile:
                import cProfile
                state["prof"] = cProfile.Profile()
                state["prof"].enable()
            state["t0"], state["c0"] = perf(), (_cpu(), time.thread_time())
        state["done"] += got
        if state["done"] >= n:
            runner.stop = True
        return b
    src.read_columns = counting
    runner.run()
    sink.flush()
    scale = n / max(1, state["done"] - state["first"])
    dt = (perf() - state["t0"]) * scale
    c0, m0 = state["c0"]
    CPU[group] = ((_cpu() - c0) * scale, (time.thread_time() - m0) * scale)
    prof = state["prof"]
    if prof is not None:
        prof.disable()
    src.close()
    return dt, prof


def table(title, rows, loop, n):
    peers = [(name, t) for name, t in rows if name.startswith("(peer)")]
    rows = [(name, t) for name, t in rows if not name.startswith("(peer)")]
    total = sum(t for _, t in rows)
    if not rows:
        print(f"  {title}")
        print(f"    {'whole loop':<24}{loop / n * 1e6:>9.2f}{'':>8}  -> {n / loop:>9,.0f} msgs/s")
        return
    print(f"  {title}")
    print(f"    {'phase':<24}{'µs/msg':>9}{'share':>8}")
    for name, t in rows:
        print(f"    {name:<24}{t / n * 1e6:>9.2f}{t / total:>8.1%}")
    print(f"    {'sum of phases':<24}{total / n * 1e6:>9.2f}{'':>8}  -> {n / total:>9,.0f} msgs/s")
    for name, t in peers:
        print(f"    {name:<24}{t / n * 1e6:>9.2f}  (not in the sum)")
    print(f"    {'whole loop':<24}{loop / n * 1e6:>9.2f}{'':>8}  -> {n / loop:>9,.0f} msgs/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--horizons", default="0,12")
    ap.add_argument("--update-every", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--tbptt-steps", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each timing this many times (the modes' whole loops "
                         "interleaved) and report the best")
    ap.add_argument("--modes", default="global,global-obs,per-key",
                    help="global (the command's loop: columns in, encoded records out), "
                         "global-thread (the same with the learning thread), "
                         "global-5ms (global-thread, the switch interval left as it is), "
                         "global-obs (the same runner fed observations, producing record "
                         "dicts: the loop before the batch decoder), per-key; and variants "
                         "of global: global-t2 (the network step shared by 2 threads, "
                         "--threads 2), global-k8 (--tbptt-steps 8), global-le8-k4 "
                         "(--update-every 8 --tbptt-steps 4), any combination")
    ap.add_argument("--no-gc-tuning", action="store_true",
                    help="leave the garbage collector as it is (the command tunes it: tune_gc)")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the first mode's whole loop (its own thread); print the "
                         "top functions")
    a = ap.parse_args()
    n = a.messages
    modes = a.modes.split(",")
    kafka = MockKafka(1)
    kafka.create_topic("in", PARTITIONS)
    # SLACK messages more than are timed: every timed read stops at the first read that
    # reaches n, which then finds a full batch waiting, as in a stream that goes on (with
    # exactly n, the last read of a partial batch waits out its timeout: a 0.5-1 s stall
    # that is the end of the input, not the loop's cost); each timing is per message read
    produce(kafka.bootstrap, "in", items(n + SLACK, a.keys))
    if not a.no_gc_tuning:
        tune_gc()
    # each timing is the best of --repeat runs, interleaved (the machine is shared)
    t_consume = t_columns = t_fetch = t_relay = t_relay_b = math.inf
    for r in range(a.repeat):
        obs, t = consume_all(kafka.bootstrap, "in", f"c0-{r}", n)
        t_consume = min(t_consume, t)
        reads, t = consume_columns(kafka.bootstrap, "in", f"c1-{r}", n)
        t_columns = min(t_columns, t)
        t_fetch = min(t_fetch, fetch_only(kafka.bootstrap, "in", f"f0-{r}", n))
        t_relay = min(t_relay, transport(kafka.bootstrap, "in", f"t0-{r}", n))
        t_relay_b = min(t_relay_b, transport(kafka.bootstrap, "in", f"t1-{r}", n, batch=True))
    print(f"\nstreamrnn stream benchmark: {n:,d} messages, {a.keys:,d} keys, GRU hidden 16, "
          f"update_every/learn_every={a.update_every}, tbptt_steps={a.tbptt_steps}, {PARTITIONS} partitions, librdkafka "
          f"mock cluster; batch {a.batch} (global); garbage collector "
          f"{'untouched' if a.no_gc_tuning else 'tuned as the command does (tune_gc)'}")
    print(f"  consume+decode: {t_columns / n * 1e6:.2f} µs/msg to columns (the global loop: "
          f"KafkaSource.read_columns), {t_consume / n * 1e6:.2f} to observations (per key: "
          f"KafkaSource.read), of which "
          f"librdkafka's fetch (the same reads without decoding) {t_fetch / n * 1e6:.2f}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    per_call, once = produce_calls(kafka.bootstrap, n).values()
    print(f"  produce() per record, the calling thread's CPU (best of 3 interleaved): "
          f"delivery callback passed to each call {per_call:.3f} µs, set once as the "
          f"producer's (KafkaSink) {once:.3f} µs")
    km = key_maps(n, a.keys)
    print(f"  the key map's work per row in a step of 256 keys (same keys, same run): "
          f"OrderedDict {km['OrderedDict']:.3f} µs, KeyMap {km['KeyMap']:.3f} µs "
          f"({km['OrderedDict'] / km['KeyMap']:.1f}x)")
    print(f"  the transport's ceiling (no decoding, no model): consume alone "
          f"{n / t_fetch:,.0f} msgs/s; consume + produce the same messages "
          f"{n / t_relay:,.0f} msgs/s ({t_relay / n * 1e6:.2f} µs/msg), with produce_batch "
          f"{n / t_relay_b:,.0f} msgs/s ({t_relay_b / n * 1e6:.2f} µs/msg)\n")
    summary = []
    for h in map(int, a.horizons.split(",")):
        g_spec, p_spec = specs(a, h)
        makers, phases, threads = {}, {}, {}
        for mode in modes:
            v = variant(mode, a)
            threads[mode] = 1
            if v is not None:
                threads[mode] = v[0]
                phases[mode] = [], None

                def make(src, sink, h=h, v_spec=specs(a, h, v[1], v[2])[0]):
                    return GlobalRunner(v_spec, src, sink, horizon=h, batch=a.batch,
                                        max_keys=max(a.keys, 1), max_wait=1e9)
            elif mode in ("global", "global-obs", "global-thread", "global-5ms"):
                phases[mode] = [], None
                if mode == "global":
                    phases[mode] = phases_global(g_spec, reads, a, h, kafka.bootstrap)

                def make(src, sink, h=h, g_spec=g_spec, mode=mode):
                    g = GlobalRunner(g_spec, src, sink, horizon=h, batch=a.batch,
                                     max_keys=max(a.keys, 1), max_wait=1e9,
                                     learn_thread=mode in ("global-thread", "global-5ms"))
                    if mode == "global-5ms":
                        g.switch_interval = None  # the interpreter's (default 5 ms)
                    return g
            else:
                phases[mode] = phases_per_key(p_spec, obs, h, kafka.bootstrap)

                def make(src, sink, h=h, p_spec=p_spec):
                    return Runner(p_spec, src, sink, horizon=h, max_keys=max(a.keys, 1))
            makers[mode] = make
        loops = {m: [] for m in modes}
        cpus = {m: [] for m in modes}
        profs = {}
        for r in range(a.repeat):  # the modes' whole loops interleaved
            for mode in modes:
                # the networks built in the loop take this many threads (a build without
                # SharedNetwork.threads, as a peer checkout: the one-thread modes only)
                setter = getattr(_shared, "set_threads", None)
                old = setter(threads[mode]) if setter else None
                try:
                    loop, prof = whole_loop(makers[mode], kafka.bootstrap, f"{mode}-{h}-{r}",
                                            n, h, profile=a.profile and mode == modes[0] and
                                            r == 0, columns=mode != "global-obs")
                finally:
                    if setter:
                        setter(old)
                loops[mode].append(loop)
                cpus[mode].append(CPU[f"{mode}-{h}-{r}"])
                if prof is not None:
                    profs[mode] = prof
        for mode in modes:
            rows, state = phases[mode]
            loop = min(loops[mode])
            if rows:
                rows = [("consume+decode", t_columns if mode == "global" else t_consume)] + rows
            v = variant(mode, a)
            what = {"global-obs": " (observations and record dicts)",
                    "global-thread": " (the learning thread)",
                    "global-5ms": " (switch interval untouched)"}.get(mode, "")
            if v is not None:
                what = (f" (threads {v[0]}, update_every {v[1]}, tbptt_steps {v[2]}; "
                        f"phases not timed)")
            table(f"{mode}, horizon {h}" + (f" (state per key {state:,d} bytes)" if state else
                                            what), rows, loop, n)
            if a.repeat > 1:
                print(f"    whole loop, each run: " +
                      ", ".join(f"{n / t:,.0f}" for t in loops[mode]) + " msgs/s")
            best = loops[mode].index(loop)
            pc, mc = cpus[mode][best]
            print(f"    CPU of the best run: {pc / n * 1e6:.2f} µs/msg in all the process's "
                  f"threads (librdkafka's and the mock broker's included), {mc / n * 1e6:.2f} "
                  f"in the loop's own thread; wall {loop / n * 1e6:.2f}")
            summary.append((mode, h, n / loop, state))
            if mode in profs:
                import pstats
                print()
                pstats.Stats(profs[mode], stream=sys.stdout).sort_stats("tottime").print_stats(22)
            print()
    kafka.close()
    print("  whole loop, messages/s")
    peers = [m for m in modes if m != "global"] if "global" in modes else []
    print(f"    {'horizon':>8}" + "".join(f"{m:>14}" for m in modes) +
          "".join(f"{'global / ' + m:>22}" for m in peers))
    for h in map(int, a.horizons.split(",")):
        r = {m: v for m, hh, v, _ in summary if hh == h}
        line = f"    {h:>8}" + "".join(f"{r[m]:>14,.0f}" for m in modes)
        line += "".join(f"{r['global'] / r[m]:>21.2f}x" for m in peers)
        print(line)
    print(f"  load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
