"""Messages per second through the command's processing loop, from Kafka (librdkafka's mock
cluster on 127.0.0.1) to Kafka, with a GRU of hidden size 16; and where the time goes.

    PYTHONPATH=. python benchmarks/bench_stream.py [--messages 100000] [--keys 1000]

Phases timed separately on the same messages:
  consume+decode  Kafka fetch and JSON decoding/validation (KafkaSource.read)
  learn           learn_one; its forward pass is the one-step prediction made before learning
                  the value (``last_prediction``), so the loop needs no separate forecast(1)
  forecast(h)     with --horizon h: the forecast of the next h steps and its 90 % interval
                  (forecast + forecast_interval), as each record carries them
  produce         encoding and producing the forecast record (KafkaSink.send + flush)
and the whole loop (Runner.run) end to end, with and without a checkpoint at the end.
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from brokers import MockKafka, produce  # noqa: E402

from streamrnn import checkpoint as ck  # noqa: E402
from streamrnn import spec as spec_mod  # noqa: E402
from streamrnn.streams import Runner  # noqa: E402
from streamrnn.streams import BadMessages, Decoder  # noqa: E402
from streamrnn.streams.kafka import KafkaSink, KafkaSource  # noqa: E402


def items(n, keys):
    for i in range(n):
        k = i % keys
        yield (f"sensor-{k}".encode(),
               {"y": round(10 * math.sin(i / 97 + k), 3), "temp": round(20 + (i % 13) * 0.1, 2)})


def consume_all(bootstrap, topic, group, n):
    src = KafkaSource(bootstrap, topic, group, Decoder(key="@key"), BadMessages())
    out = []
    while not out:
        out.extend(src.read(1.0))
    t0 = time.perf_counter()
    while len(out) < n:
        out.extend(src.read(1.0))
    dt = time.perf_counter() - t0
    src.close()
    return out, dt * n / max(1, n - 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--update-every", type=int, default=8)
    ap.add_argument("--horizon", type=int, default=0)
    a = ap.parse_args()
    n = a.messages
    spec = spec_mod.model_spec("gru", hidden_size=16, update_every=a.update_every, seed=1,
                               horizon=a.horizon or 1)  # as the command: --horizon 0 -> a one-step head
    kafka = MockKafka(1)
    kafka.create_topic("in", 4)
    produce(kafka.bootstrap, "in", items(n, a.keys))
    rows = []

    obs, t_consume = consume_all(kafka.bootstrap, "in", "b1", n)
    rows.append(("consume+decode", t_consume))

    models = {}
    t_learn = t_horizon = 0.0
    perf = time.perf_counter
    preds = []
    for o in obs:
        m = models.get(o.key)
        if m is None:
            m = models[o.key] = spec_mod.build_model(spec)
        t0 = perf()
        m.learn_one(o.y, o.x)
        p = m.last_prediction
        t1 = perf()
        if a.horizon:
            m.forecast(a.horizon)
            m.forecast_interval(a.horizon, 0.1)
        t_learn += t1 - t0
        t_horizon += perf() - t1
        preds.append(p)
    rows.append(("learn_one + prediction", t_learn))
    if a.horizon:
        rows.append((f"forecast({a.horizon})+interval", t_horizon))

    sink = KafkaSink(kafka.bootstrap, "out")
    t0 = perf()
    for o, p in zip(obs, preds):
        sink.send({"key": o.key, "time": o.time, "partition": o.partition, "offset": o.offset,
                   "prediction": p, "forecast": []}, o.key)
    sink.flush()
    rows.append(("produce", perf() - t0))

    # the whole loop, as the command runs it
    src = KafkaSource(kafka.bootstrap, "in", "b2", Decoder(key="@key"), BadMessages())
    sink2 = KafkaSink(kafka.bootstrap, "out2")
    runner = Runner(spec, src, sink2, horizon=a.horizon)
    while not (batch := src.read(1.0)):
        pass
    t0 = perf()
    for o in batch:
        runner.process(o)
    done = len(batch)
    while done < n:
        for o in src.read(1.0):
            runner.process(o)
            done += 1
        sink2.tick()
    sink2.flush()
    loop = (perf() - t0) * n / max(1, n - len(batch))
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        runner.store = ck.CheckpointStore(d)
        t0 = perf()
        runner.checkpoint(force=True)
        t_ck = perf() - t0
        runner.store.close()
        ck_bytes = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                       if f.endswith(".srnn"))
    src.close()
    kafka.close()

    total = sum(t for _, t in rows)
    print(f"\nstreamrnn stream benchmark: {n:,d} messages, {a.keys:,d} keys, GRU hidden 16, "
          f"update_every={a.update_every}, horizon={a.horizon}, 4 partitions, mock Kafka\n")
    print(f"{'phase':<24}{'µs/msg':>10}{'share':>9}")
    for name, t in rows:
        print(f"{name:<24}{t / n * 1e6:>10.2f}{t / total:>9.1%}")
    print(f"{'sum of phases':<24}{total / n * 1e6:>10.2f}{'':>9}  -> {n / total:,.0f} msgs/s")
    print(f"{'whole loop (Runner)':<24}{loop / n * 1e6:>10.2f}{'':>9}  -> {n / loop:,.0f} msgs/s")
    print(f"\ncheckpoint of {len(runner.models):,d} models: {t_ck:.2f} s, {ck_bytes:,d} bytes "
          f"({ck_bytes / len(runner.models):,.0f} bytes per model; state per model "
          f"{ck.state_nbytes(next(iter(runner.models.values()))):,d} bytes)")


if __name__ == "__main__":
    main()
