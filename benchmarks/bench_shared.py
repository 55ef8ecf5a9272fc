"""Issue 12's kernel figures: per-key state, the RSS of a million keys, batched throughput
against one ``Network`` per key, and what float32 slot storage does to the results.

    python benchmarks/bench_shared.py                 # everything (a few minutes)
    python benchmarks/bench_shared.py --only memory   # memory|rss|speed|every|delayed|float32|threads

Memory: bytes of committed state per slot (``SharedNetwork.slot_bytes``, plus the 8-byte
per-slot scratch stamp) against ``sys.getsizeof`` of one single-series ``Network``
(parameters, gradient, optimizer moments, ring, scratch) for LSTM hidden 32, k2 = 16.

RSS: a child process per storage type builds a SharedNetwork with 1,000,000 slots (the slot
arrays are written at construction, so they are resident), then steps every key once in
batches of 256, and reports VmRSS and VmHWM from /proc/self/status before and after.

Speed: GRU hidden 16, k2 = 16, 10,000 keys, inputs of 8 values; after a warm-up that fills
every window (16 observations per key), the CPU time (time.process_time) of N observations
for the shared kernel at batch sizes 1, 64 and 256 and for 10,000 ``Network`` objects
(k1 = 1, k2 = 16, one ``learn`` per observation), in the same run; then again with k2 = 4.
Each timing runs ROUNDS (3) times, the peers interleaved, and the median is reported.

Every k-th: GRU hidden 16, k2 = 16, 10,000 keys; each key learns (step) on every k-th own
observation, k = 1, 4, 16, and advances (forward, no learning) on the others, the two calls
made on the rows of each batch of 256; against 10,000 ``Network`` objects with k1 = k (one
TBPTT(k, 16) update every k steps), in the same run.

Threads (``--only threads``): the stream benchmark's network (GRU hidden 16, n_in 6, k2 16
and 8, float32 slots, 2,500 keys a partition, steps of 256 distinct keys, Adam), the CPU
time (time.process_time: every thread) and the wall time per row of ``step`` with
``threads`` 1 and 2, interleaved, ROUNDS rounds, each printed; and how many chunks the
pool's worker took (``pool_stats``). A build without ``SharedNetwork.threads`` (a peer
checkout on PYTHONPATH) runs the one-thread rows only.

float32: the same learning task (noisy sines, 200 keys, GRU-16) with float64 and float32
slots: the prequential MAE of the forecasts and the largest parameter difference.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.dirname(HERE))  # after PYTHONPATH: a peer checkout there wins

from streamrnn._core import ADAM, GRU, LSTM, SQUARED, Network, Optimizer, initialize  # noqa: E402
from streamrnn._core._shared import SharedNetwork  # noqa: E402


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def memory():
    print("## Per-key state, LSTM hidden 32, k2 = 16 (goal <= 4 KB per key)")
    print()
    print("| n_in | float64 slot | float32 slot | one Network (sys.getsizeof) |")
    print("|---:|---:|---:|---:|")
    for n_in in (1, 8, 16, 32):
        row = []
        for dt in ("float64", "float32"):
            net = SharedNetwork(LSTM, n_in, 32, 1, 1, 16, SQUARED, capacity=1, max_batch=1,
                                slot_dtype=dt)
            row.append(net.slot_bytes + 8)  # + the per-slot stamp (scratch)
        one = Network(LSTM, n_in, 32, 1, 1, 1, 16, SQUARED)
        one.set_optimizer(Optimizer(ADAM, 0.01))
        print(f"| {n_in} | {row[0]:,} B | {row[1]:,} B | {sys.getsizeof(one):,} B |")
    print()
    print("slot = h, c, h0, c0 (4 x 32 values), k2-1 = 15 past inputs of n_in values, n "
          "(8 B), + 8 B stamp")
    print()


def rss_child(dtype, keys, batch):
    before = status_kb("VmRSS")
    t0 = time.process_time()
    net = SharedNetwork(LSTM, 8, 32, 1, 1, 16, SQUARED, capacity=keys, max_batch=batch,
                        slot_dtype=dtype)
    initialize(net, np.random.default_rng(0))
    net.set_optimizer(Optimizer(ADAM, 0.001))
    built = status_kb("VmRSS")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((batch, 8))
    Y = rng.standard_normal(batch)
    out = np.zeros((batch, 1))
    order = rng.permutation(keys).astype(np.int64)
    for i in range(0, keys, batch):
        s = order[i:i + batch]
        b = s.size
        assert net.step(s, X[:b], Y[:b], out[:b]) == 1
    secs = time.process_time() - t0
    after = status_kb("VmRSS")
    print(f"{dtype} {keys} {before} {built} {after} {status_kb('VmHWM')} {secs:.1f} "
          f"{net.slot_bytes}")


def rss(keys):
    print(f"## RSS with {keys:,} keys, LSTM hidden 32, k2 = 16, n_in = 8 (goal < 8 GB)")
    print()
    print("| slots | VmRSS at start | after building | after stepping every key once "
          "| VmHWM | slot bytes | CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for dtype in ("float64", "float32"):
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-child", dtype,
                            "--keys", str(keys)], capture_output=True, text=True, check=True)
        d, k, before, built, after, hwm, secs, sb = r.stdout.split()
        mb = lambda kb: f"{int(kb) / 1024:,.0f} MB"  # noqa: E731
        print(f"| {d} | {mb(before)} | {mb(built)} | {mb(after)} | {mb(hwm)} | {sb} | {secs} |")
    print()


ROUNDS = 3  # each timing is repeated, peers interleaved, and the median reported: the
            # machine is shared, and one-off timings drift with the load


def median_rates(runs):
    """``runs``: {name: callable returning the observations it processed}; called in turn
    ROUNDS times (interleaved, so the peers see the same load); the median rate of each."""
    rates = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, fn in runs.items():
            t0 = time.process_time()
            n = fn()
            rates[name].append(n / (time.process_time() - t0))
    return {name: float(np.median(r)) for name, r in rates.items()}


def per_key_networks(keys, n_in, H, k1, k2, X0):
    nets = []
    for k in range(keys):
        n = Network(GRU, n_in, H, 1, 1, k1, k2, SQUARED)
        initialize(n, np.random.default_rng(k))
        n.set_optimizer(Optimizer(ADAM, 0.001))
        nets.append(n)
    for _ in range(k2):
        for n in nets:
            n.learn(X0, 0.0)
    return nets


def shared_network(keys, n_in, H, k2, batch, Xall, Yall):
    net = SharedNetwork(GRU, n_in, H, 1, 1, k2, SQUARED, capacity=keys, max_batch=batch)
    initialize(net, np.random.default_rng(0))
    net.set_optimizer(Optimizer(ADAM, 0.001))
    out = np.zeros((batch, 1))
    warm = np.arange(keys, dtype=np.int64)
    for _ in range(k2):
        for i in range(0, keys, batch):
            s = warm[i:i + batch]
            net.step(s, Xall[:s.size], Yall[:s.size], out[:s.size])
    return net


def batches(rng, keys, batch, Xall, Yall):
    """Batches of distinct keys drawn from the key stream, with their inputs and targets."""
    n = Xall.shape[0] // batch
    slots = [rng.choice(keys, batch, replace=False).astype(np.int64) for _ in range(n)]
    X = [np.ascontiguousarray(Xall[i * batch:(i + 1) * batch]) for i in range(n)]
    Y = [np.ascontiguousarray(Yall[i * batch:(i + 1) * batch]) for i in range(n)]
    return slots, X, Y


def speed(n_obs, k2=16):
    keys, n_in, H = 10_000, 8, 16
    rng = np.random.default_rng(0)
    print(f"## Throughput: GRU hidden {H}, k2 = {k2}, {keys:,} keys, n_in = {n_in}, "
          f"{n_obs:,} observations after a warm-up of {k2} per key (CPU time, median of "
          f"{ROUNDS} interleaved rounds)")
    print()
    print("| model | batch | observations/s | vs per-key Network |")
    print("|---|---:|---:|---:|")
    Xall = rng.standard_normal((n_obs, n_in))
    Yall = rng.standard_normal(n_obs)
    nets = per_key_networks(keys, n_in, H, 1, k2, Xall[0])
    seq = rng.integers(0, keys, n_obs)

    def per_key():
        for i in range(n_obs):
            nets[seq[i]].learn(Xall[i], Yall[i])
        return n_obs

    runs = {"per-key": per_key}
    for batch in (1, 64, 256):
        def shared(net=shared_network(keys, n_in, H, k2, batch, Xall, Yall),
                   data=batches(rng, keys, batch, Xall, Yall), out=np.zeros((batch, 1))):
            slots, X, Y = data
            for i in range(len(slots)):
                net.step(slots[i], X[i], Y[i], out)
            return len(slots) * out.shape[0]
        runs[batch] = shared
    rates = median_rates(runs)
    base = rates.pop("per-key")
    print(f"| Network per key | 1 | {base:,.0f} | 1.00 |")
    for batch, rate in rates.items():
        print(f"| SharedNetwork | {batch} | {rate:,.0f} | {rate / base:.2f} |")
    print()


def learn_every(n_obs, k2=16, batch=256):
    """Each key learns every k-th own observation and advances (forward, no learning) on
    the others: SharedNetwork step + advance on the same batch's rows, against one Network
    per key with k1 = k (TBPTT(k, k2): one update every k steps), in the same run."""
    keys, n_in, H = 10_000, 8, 16
    rng = np.random.default_rng(0)
    print(f"## Learning every k-th observation: GRU hidden {H}, k2 = {k2}, {keys:,} keys, "
          f"n_in = {n_in}, {n_obs:,} observations after a warm-up of {k2} per key "
          f"(CPU time, median of {ROUNDS} interleaved rounds)")
    print()
    print(f"| k | Network per key (k1 = k) | SharedNetwork batch {batch} (step + advance) "
          f"| vs per-key Network |")
    print("|---:|---:|---:|---:|")
    Xall = rng.standard_normal((n_obs, n_in))
    Yall = rng.standard_normal(n_obs)
    for every in (1, 4, 16):
        nets = per_key_networks(keys, n_in, H, every, k2, Xall[0])
        seq = rng.integers(0, keys, n_obs)

        def per_key():
            for i in range(n_obs):
                nets[seq[i]].learn(Xall[i], Yall[i])
            return n_obs

        net = shared_network(keys, n_in, H, k2, batch, Xall, Yall)
        count = rng.integers(0, every, keys)  # each key's own observation count, staggered
        slots, X, Y = batches(rng, keys, batch, Xall, Yall)
        out = np.zeros((batch, 1))

        def shared():
            for i in range(len(slots)):
                s = slots[i]
                learn = count[s] % every == every - 1
                count[s] += 1
                if learn.all():
                    net.step(s, X[i], Y[i], out)
                    continue
                ls, adv = s[learn], s[~learn]
                if ls.size:
                    net.step(ls, X[i][learn], Y[i][learn], out[:ls.size])
                net.advance(adv, X[i][~learn], out[:adv.size])
            return len(slots) * batch

        rates = median_rates({"per-key": per_key, "shared": shared})
        base, rate = rates["per-key"], rates["shared"]
        print(f"| {every} | {base:,.0f} | {rate:,.0f} | {rate / base:.2f} |")
        del nets
    print()


def delayed(n_obs, horizon=12, k2=16, batch=64):
    keys, n_in, H = 10_000, 8, 16
    rng = np.random.default_rng(0)
    print(f"## Delayed targets: GRU hidden {H}, n_out = {horizon}, k2 = {k2}, {keys:,} keys, "
          f"batch {batch}, CPU time")
    print()
    print("| call | observations/s |")
    print("|---|---:|")
    for multi in (False, True):
        net = SharedNetwork(GRU, n_in, H, 1, horizon, k2, SQUARED, capacity=keys,
                            max_batch=batch)
        initialize(net, np.random.default_rng(0))
        net.set_optimizer(Optimizer(ADAM, 0.001))
        out = np.zeros((batch, horizon))
        X = rng.standard_normal((batch, n_in))
        Y = rng.standard_normal((batch, horizon))
        call = net.step_multi if multi else net.step
        for _ in range(k2):
            for i in range(0, keys, batch):
                s = np.arange(i, min(i + batch, keys), dtype=np.int64)
                call(s, X[:s.size], Y[:s.size], out[:s.size])
        slots = [rng.choice(keys, batch, replace=False).astype(np.int64)
                 for _ in range(n_obs // batch)]
        t0 = time.process_time()
        for s in slots:
            call(s, X, Y, out)
        rate = len(slots) * batch / (time.process_time() - t0)
        name = "step_multi (12 delayed targets)" if multi else "step (12 targets, this step)"
        print(f"| {name} | {rate:,.0f} |")
    print()


def float32_effect():
    keys, n_in, steps = 200, 8, 300
    rng = np.random.default_rng(0)
    freq = rng.uniform(0.05, 0.3, keys)
    phase = rng.uniform(0, 2 * np.pi, keys)
    t = np.arange(steps + n_in + 1)
    series = np.sin(freq[:, None] * t[None, :] + phase[:, None]) + 0.1 * rng.standard_normal(
        (keys, t.size))
    print(f"## float32 slots: {keys} noisy sines, GRU-16, k2 = 16, lag window {n_in}, "
          f"{steps} steps per key, batches of 50")
    print()
    print("| slots | MAE, all | MAE, last third | max |param diff| vs float64 |")
    print("|---|---:|---:|---:|")
    res = {}
    for dt in ("float64", "float32"):
        net = SharedNetwork(GRU, n_in, 16, 1, 1, 16, SQUARED, capacity=keys, max_batch=50,
                            slot_dtype=dt)
        initialize(net, np.random.default_rng(1))
        net.set_optimizer(Optimizer(ADAM, 0.01))
        err = np.zeros((steps, keys))
        out = np.zeros((50, 1))
        for s in range(steps):
            for g in range(0, keys, 50):
                k = np.arange(g, g + 50, dtype=np.int64)
                X = np.ascontiguousarray(series[g:g + 50, s:s + n_in])
                Y = np.ascontiguousarray(series[g:g + 50, s + n_in])
                assert net.step(k, X, Y, out) == 1
                err[s, g:g + 50] = np.abs(out[:, 0] - Y)
        res[dt] = (err.mean(), err[2 * steps // 3:].mean(), net.params.copy())
    for dt in ("float64", "float32"):
        a, b, p = res[dt]
        print(f"| {dt} | {a:.5f} | {b:.5f} | {np.abs(p - res['float64'][2]).max():.2e} |")
    print()


def threads_rows(n_obs, k2):
    from streamrnn._core import _shared
    keys, n_in, H, B = 2500, 6, 16, 256
    has = hasattr(SharedNetwork, "threads")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((B, n_in))
    Y = rng.standard_normal(B)
    out = np.zeros((B, 1))
    sets = [np.sort(rng.permutation(keys)[:B]).astype(np.int64) for _ in range(64)]

    def build(threads):
        net = SharedNetwork(GRU, n_in, H, 1, 1, k2, SQUARED, capacity=keys, max_batch=B,
                            slot_dtype="float32")
        if has:
            net.threads = threads
        net.params[:] = np.random.default_rng(1).standard_normal(net.size) * 0.2
        net.set_optimizer(Optimizer(ADAM, 1e-3))
        for i in range(keys * k2 // B + 64):  # every window full
            assert net.step(sets[i % 64], X, Y, out) == 1
        return net

    nets = {t: build(t) for t in ((1, 2) if has else (1,))}
    print(f"## The network step with threads: GRU hidden {H}, n_in {n_in}, k2 = {k2}, "
          f"{keys:,} keys, steps of {B} rows, {n_obs:,} rows per timing (µs per row; "
          f"{ROUNDS} interleaved rounds)")
    print()
    print("| threads | CPU, each round | wall, each round | median wall | pool's share |")
    print("|---:|---|---|---:|---:|")
    res = {t: ([], []) for t in nets}
    shares = {t: [] for t in nets}
    n = n_obs // B
    for _ in range(ROUNDS):
        for t, net in nets.items():
            before = _shared.pool_stats() if has else (0, 0, 0)
            c0, w0 = time.process_time(), time.perf_counter()
            for i in range(n):
                net.step(sets[i % 64], X, Y, out)
            c1, w1 = time.process_time(), time.perf_counter()
            after = _shared.pool_stats() if has else (0, 0, 0)
            res[t][0].append((c1 - c0) / (n * B) * 1e6)
            res[t][1].append((w1 - w0) / (n * B) * 1e6)
            ch = after[1] - before[1]
            shares[t].append((after[2] - before[2]) / ch if ch else 0.0)
    for t, (cpu, wall) in res.items():
        print(f"| {t} | {', '.join(f'{v:.2f}' for v in cpu)} | "
              f"{', '.join(f'{v:.2f}' for v in wall)} | {sorted(wall)[len(wall) // 2]:.2f} | "
              f"{sum(shares[t]) / len(shares[t]):.0%} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("memory", "rss", "speed", "every", "delayed",
                                       "float32", "threads"))
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--observations", type=int, default=51_200)
    ap.add_argument("--rss-child")
    a = ap.parse_args()
    if a.rss_child:
        rss_child(a.rss_child, a.keys, 256)
        return
    from streamrnn._core._cells import BUILD
    print(f"bench_shared, kernels {BUILD}, python {sys.version.split()[0]}, "
          f"numpy {np.__version__}")
    print()
    if a.only in (None, "memory"):
        memory()
    if a.only in (None, "rss"):
        rss(a.keys)
    if a.only in (None, "threads"):
        threads_rows(max(a.observations, 102_400), 16)
        threads_rows(max(a.observations, 102_400), 8)
    if a.only in (None, "speed"):
        speed(a.observations)
        speed(a.observations, k2=4)
    if a.only in (None, "every"):
        learn_every(a.observations)
    if a.only in (None, "delayed"):
        delayed(a.observations)
    if a.only in (None, "float32"):
        float32_effect()


if __name__ == "__main__":
    main()
