"""Cost of online learning per observation, through the river API, against PyTorch.

One observation = ``model.forecast(1)`` then ``model.learn_one(y)``, the loop of a live
forecaster. Each figure is the best of ``--repeats`` runs of ``--steps`` observations of a noisy
two-tone sine, after a warm-up, in microseconds per observation.

- streamrnn: ``LSTMForecaster(hidden_size=32, tbptt_steps=16, update_every=1)`` (the headline),
  then every cell at hidden 8/32/64 with update_every (k1) 1 and 16, tbptt_steps (k2) 16.
- the kernel alone, for the headline at k1 = 1 and 16: ``Network.predict(u, out)`` then
  ``Network.learn_multi(u, targets)`` replaying the inputs and delayed targets the forecaster
  gave its network (checked: the replay ends with the forecaster's parameters bit for bit),
  timed in alternation with the river-API loop (so both see the same machine load); the
  difference is the cost of everything around the network (backbone, combination,
  intervals, Python).
- PyTorch, written the way a user would write TBPTT(1, 16): ``torch.nn.LSTMCell`` (hidden 32)
  and a ``Linear`` head, the state carried between observations, the last 16 inputs kept; at
  every observation the last 16 steps are re-run from the detached state 16 steps back, the
  squared error of the newest step is back-propagated, the gradient norm clipped to 1 (as
  streamrnn's default) and Adam (lr 0.002) steps. ``forecast(1)`` is one no-grad step from the
  carried state. The ratio PyTorch / streamrnn is printed.
- other streamrnn versions ("peers", each in a subprocess, timed in alternation with this
  one so that both see the same machine load): the release installed in site-packages when
  its version differs from this tree's, and every ``--peer-src DIR`` (a source tree of another
  version built in place, e.g. ``git archive <commit> | tar -x -C DIR`` then ``python
  setup.py build_ext --inplace`` there): the headline loop, and the ratio this / peer.
- deep-river (when ``benchmarks/.venv-peers`` exists): its RNN/LSTM/GRU forecasters with default
  settings but the given hidden size, same loop, in a subprocess.
- Memory: river's ``model._raw_memory_usage`` (``sys.getsizeof`` over the object graph) and
  ``model.network.__sizeof__()`` (flat parameters, gradients, optimizer moments, TBPTT buffer),
  after the run, for hidden 8/32/64.

Writes docs/img/speed_scaling.png: cost against hidden size and against k2, log-log.

    PYTHONPATH=. python benchmarks/bench_speed.py [--steps 10000] [--repeats 5] [--quick] [--cpu-time]
                                                  [--peer-src DIR ...] [--no-installed]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import streamrnn
from streamrnn import GRUForecaster, LSTMForecaster, RNNForecaster

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
CELLS = {"RNN": RNNForecaster, "LSTM": LSTMForecaster, "GRU": GRUForecaster}
HIDDEN = (8, 32, 64)
K1S = (1, 16)
K2 = 16
SWEEP_HIDDEN = (8, 16, 32, 64, 128)
SWEEP_K2 = (4, 8, 16, 32, 64)
CLOCK = time.perf_counter  # --cpu-time: time.thread_time


def series(n):
    rng = __import__("random").Random(0)
    return [math.sin(0.3 * i) + 0.3 * math.sin(0.05 * i) + 0.05 * rng.gauss(0, 1)
            for i in range(n)]


def time_loop(make, ys, repeats, warmup=64):
    """Best µs per observation of forecast(1) + learn_one(y) over ``repeats`` fresh models."""
    best, model = float("inf"), None
    for r in range(repeats):
        model = make(r)
        for y in ys[:warmup]:
            model.forecast(1)
            model.learn_one(y)
        t0 = CLOCK()
        for y in ys:
            model.forecast(1)
            model.learn_one(y)
        best = min(best, CLOCK() - t0)
    return 1e6 * best / len(ys), model


def network_trace(hidden, k1, k2, ys, seed=0, warmup=64):
    """The headline forecaster's network as it was after the warm-up (a copy), and the inputs
    and delayed targets the forecaster then gave it for every value of ``ys``: (net, [(u,
    targets), ...], the forecaster after the run). The targets are computed here as
    ``ForecastCore._step`` does (the same operations in the same order, so the same bits;
    ``time_kernel`` checks it by the parameters it ends with)."""
    import copy

    import numpy as np

    model = LSTMForecaster(hidden_size=hidden, tbptt_steps=k2, update_every=k1, seed=seed)
    for y in ys[:warmup]:
        model.forecast(1)
        model.learn_one(y)
    core, net = model._core, copy.deepcopy(model._net)
    H, clip = core.horizon, core.clip
    state = core.get_state()
    pend, pscale = list(state["pend"]), list(state["pscale"])
    rt = np.sqrt(np.arange(1.0, H + 1.0))

    def clipv(v):
        return clip if v > clip else (-clip if v < -clip else v)

    trace = []
    for y in ys:
        t, last, scale = core.t, core.last, core.scale
        tg = np.full(H, np.nan)
        tg[0] = clipv((y - last) / scale)
        for j in range(1, H):
            if t - j >= 1:
                r = (t - j) % H
                tg[j] = clipv((y - pend[r]) / (pscale[r] * rt[j]))
        trace.append((core.lead_input, tg))
        model.forecast(1)
        model.learn_one(y)
        pend[t % H], pscale[t % H] = last, scale
    return net, trace, model


def time_kernel(hidden, k1, k2, ys, seed=0, warmup=64):
    """µs per observation of the headline's network driven directly, in a tight loop:
    ``predict(u, out)`` then ``learn_multi(u, targets)`` with the very inputs and delayed
    targets the forecaster gave it on ``ys`` (``network_trace``), no estimator, backbone or
    combination in between: the network's share of the forecaster's cost. Raises if the
    network does not end with the forecaster's parameters bit for bit (then the two did not
    do the same work)."""
    import numpy as np

    net, trace, model = network_trace(hidden, k1, k2, ys, seed, warmup)
    out = np.zeros(net.n_out)
    predict, learn = net.predict, net.learn_multi
    t0 = CLOCK()
    for u, tg in trace:
        predict(u, out)
        learn(u, tg)
    us = 1e6 * (CLOCK() - t0) / len(trace)
    if not np.array_equal(np.asarray(net.params), np.asarray(model._net.params)):
        raise RuntimeError("the replayed network diverged from the forecaster's")
    return us


def time_layer(hidden, k1, k2, ys, repeats):
    """Best µs of the river-API loop and of the kernel alone, timed in alternation (A, B, A,
    B, ...) so that both see the same machine load."""
    api = kernel = float("inf")
    for r in range(repeats):
        api = min(api, time_loop(lambda _: LSTMForecaster(hidden_size=hidden, tbptt_steps=k2,
                                                          update_every=k1, seed=r), ys, 1)[0])
        kernel = min(kernel, time_kernel(hidden, k1, k2, ys, seed=r))
    return api, kernel


# ------------------------------------------------------------------------------ other versions
# the headline loop in a child interpreter that imports another streamrnn (its sys.path
# starts with the given tree, or holds only the installed package): one run, one JSON line
_PEER_CODE = r"""
import json, math, random, sys, time
src, steps, cpu = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
sys.path = [p for p in sys.path if p not in ("", ".")]
if src:
    sys.path.insert(0, src)
import os
import streamrnn
if src and not os.path.abspath(streamrnn.__file__).startswith(os.path.join(src, "")):
    sys.exit(f"{src} holds no streamrnn (imported {streamrnn.__file__} instead)")
from streamrnn import LSTMForecaster
clock = time.thread_time if cpu else time.perf_counter
rng = random.Random(0)
ys = [math.sin(0.3 * i) + 0.3 * math.sin(0.05 * i) + 0.05 * rng.gauss(0, 1)
      for i in range(steps + 64)]
model = LSTMForecaster(hidden_size=32, tbptt_steps=16, update_every=1, seed=int(sys.argv[4]))
for y in ys[:64]:
    model.forecast(1)
    model.learn_one(y)
t0 = clock()
for y in ys[64:]:
    model.forecast(1)
    model.learn_one(y)
us = 1e6 * (clock() - t0) / steps
print(json.dumps({"version": streamrnn.__version__, "file": streamrnn.__file__, "us": us}))
"""


def peer_sources(args):
    """(label, source dir or "" for the installed package) of every peer to time."""
    out = []
    if not args.no_installed:
        try:
            res = subprocess.run([sys.executable, "-c", "import sys; sys.path = [p for p in "
                                  "sys.path if p not in ('', '.')]; import streamrnn; "
                                  "print(streamrnn.__version__)"], capture_output=True,
                                 text=True, cwd="/", env=_peer_env(), timeout=120)
            v = res.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            v = ""
        if v and v != streamrnn.__version__:
            out.append((f"streamrnn {v} (installed)", ""))
    for d in args.peer_src or ():
        out.append((f"at {d}", os.path.abspath(d)))
    return out


def peer_name(label, info):
    """"streamrnn 0.2.0 (installed)" or "streamrnn 0.1.0 at DIR" once it ran."""
    if label in info and label.startswith("at "):
        return f"streamrnn {info[label]['version']} {label}"
    return label


def _peer_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def time_peer(src, steps, seed):
    """µs per observation of one run of the headline loop with the peer's streamrnn (None and
    the reason when it does not run)."""
    try:
        res = subprocess.run([sys.executable, "-c", _PEER_CODE, src, str(steps),
                              "1" if CLOCK is time.thread_time else "0", str(seed)],
                             capture_output=True, text=True, cwd="/", env=_peer_env(),
                             timeout=3600)
    except (OSError, subprocess.SubprocessError) as e:
        return None, str(e)
    if res.returncode != 0:
        return None, (res.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(res.stdout.strip().splitlines()[-1]), None


def time_peers(peers_, ys, repeats):
    """Best µs of this tree's headline loop and of every peer's, run in alternation."""
    mine, best, info, why = float("inf"), {}, {}, {}
    for r in range(repeats):
        mine = min(mine, time_loop(lambda _: LSTMForecaster(hidden_size=32, tbptt_steps=16,
                                                            update_every=1, seed=r), ys, 1)[0])
        for label, src in peers_:
            if label in why:
                continue
            res, err = time_peer(src, len(ys), r)
            if res is None:
                why[label] = err
                continue
            best[label] = min(best.get(label, float("inf")), res["us"])
            info[label] = res
    return mine, best, info, why


# ------------------------------------------------------------------------------ PyTorch
def torch_lstm_forecaster(hidden=32, k2=16, lr=0.002, seed=0):
    """TBPTT(1, k2) with torch, as a user writes it; returns an object with forecast/learn_one."""
    import torch

    class TorchTBPTT:
        def __init__(self):
            torch.manual_seed(seed)
            self.cell = torch.nn.LSTMCell(1, hidden)
            self.head = torch.nn.Linear(hidden, 1)
            self.params = list(self.cell.parameters()) + list(self.head.parameters())
            self.opt = torch.optim.Adam(self.params, lr=lr)
            zero = (torch.zeros(1, hidden), torch.zeros(1, hidden))
            self.states = deque([zero], maxlen=k2)  # detached states; [-1] is the current one
            self.inputs = deque(maxlen=k2)               # the last k2 inputs
            self.last = 0.0                              # the previous value: the next input

        def forecast(self, horizon):
            with torch.no_grad():
                h, c = self.states[-1]
                x = torch.tensor([[self.last]])
                out = []
                for _ in range(horizon):
                    h, c = self.cell(x, (h, c))
                    y = self.head(h)
                    out.append(float(y))
                    x = y
                return out

        def learn_one(self, y):
            self.inputs.append(torch.tensor([[self.last]]))
            h, c = self.states[-len(self.inputs)]  # the state before the oldest kept input
            for x in self.inputs:  # re-run the kept steps from the detached state k2 back
                h, c = self.cell(x, (h, c))
            loss = (self.head(h) - y).pow(2).sum()
            self.opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, 1.0)
            self.opt.step()
            self.states.append((h.detach(), c.detach()))
            self.last = y

        def nbytes(self):
            tensors = [p for p in self.params] + [p.grad for p in self.params if p.grad is not None]
            for st in self.opt.state.values():
                tensors += [v for v in st.values() if torch.is_tensor(v)]
            for h, c in self.states:
                tensors += [h, c]
            tensors += list(self.inputs)
            return sum(t.numel() * t.element_size() for t in tensors)

    return TorchTBPTT()


def torch_status():
    try:
        import torch
    except ImportError as e:
        return None, f"PyTorch peer skipped: torch is not installed ({e}); pip install torch==2.13.0"
    return torch, None


# ------------------------------------------------------------------------------ output
def table(headers, rows, text_columns=1):
    align = ["---" if i < text_columns else "---:" for i in range(len(headers))]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def plot_scaling(by_hidden, by_k2, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, data, xlabel, title in (
            (axes[0], by_hidden, "hidden size", f"cost vs hidden size (k1=1, k2={K2})"),
            (axes[1], by_k2, "k2 (tbptt_steps)", "cost vs k2 (hidden 32, k1=1)")):
        for name, pts in data.items():
            if not pts:
                continue
            xs, ys = zip(*sorted(pts.items()))
            style = "--" if "PyTorch" in name or "deep-river" in name else "-"
            ax.loglog(xs, ys, style, marker="o", ms=4, label=name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("µs per observation (forecast(1) + learn_one)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        xs_all = sorted({x for pts in data.values() for x in pts})
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(xs_all)
        ax.set_xticklabels([str(x) for x in xs_all])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10000, help="observations per timed run")
    ap.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    ap.add_argument("--torch-steps", type=int, default=1000, help="observations per PyTorch run")
    ap.add_argument("--quick", action="store_true", help="few steps, one repeat, no sweeps")
    ap.add_argument("--no-peers", action="store_true", help="skip deep-river")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG")
    ap.add_argument("--peer-src", action="append", metavar="DIR",
                    help="a source tree of another streamrnn version, built in place, to time "
                         "as a peer (repeatable)")
    ap.add_argument("--no-installed", action="store_true",
                    help="do not time the streamrnn installed in site-packages as a peer")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with the thread's CPU time (time.thread_time) instead of the wall "
                         "clock: steadier on a machine other processes load")
    args = ap.parse_args(argv)
    global CLOCK
    if args.cpu_time:
        CLOCK = time.thread_time
    if args.quick:
        args.steps, args.repeats, args.torch_steps = 300, 1, 100
    ys = series(args.steps + 64)
    torch_ys = series(args.torch_steps + 64)

    # headline, measured before PyTorch is imported into this process ------------------
    layer = {k1: time_layer(32, k1, 16, ys, args.repeats) for k1 in K1S}
    head_us = layer[1][0]
    peers_ = peer_sources(args)
    if peers_:
        peer_mine, peer_us, peer_info, peer_why = time_peers(peers_, ys, args.repeats)
    torch, torch_why = torch_status()
    if torch is not None:
        torch.set_num_threads(1)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), platform.processor()) if os.path.exists(
        "/proc/cpuinfo") else platform.processor()
    print(f"## Speed (streamrnn {streamrnn.__version__}, Python {platform.python_version()}, "
          f"{cpu}, {os.cpu_count()} cores"
          + (f", torch {torch.__version__} with 1 thread" if torch else "") + ")")
    print(f"\nµs per observation of `forecast(1)` then `learn_one(y)`, best of {args.repeats} "
          f"runs of {args.steps} observations (PyTorch: {args.torch_steps}), "
          + ("CPU time of the thread" if args.cpu_time else "wall clock") + ".\n")

    rows = [["streamrnn LSTMForecaster(hidden_size=32, tbptt_steps=16, update_every=1)",
             f"{head_us:.1f}", "1.0"]]
    # the same forecaster with one direct step (horizon=1): the price of the 24 direct outputs
    h1_us = time_loop(lambda r: LSTMForecaster(hidden_size=32, tbptt_steps=16, update_every=1,
                                               horizon=1, seed=r), ys, args.repeats)[0]
    rows.append(["streamrnn LSTMForecaster(hidden_size=32, tbptt_steps=16, update_every=1, "
                 "horizon=1)", f"{h1_us:.1f}", f"{h1_us / head_us:.2f}"])
    if peers_:
        for label, _ in peers_:
            if label in peer_us:
                rows.append([f"{peer_name(label, peer_info)}: LSTMForecaster(hidden_size=32, "
                             "tbptt_steps=16, update_every=1)", f"{peer_us[label]:.1f}",
                             f"{peer_us[label] / head_us:.2f}"])
    torch_us = None
    if torch is not None:
        torch_us, tmodel = time_loop(lambda r: torch_lstm_forecaster(32, 16, seed=r), torch_ys,
                                     args.repeats)
        rows.append(["PyTorch LSTMCell(32) + Linear, TBPTT(1, 16) by hand, Adam",
                     f"{torch_us:.1f}", f"{torch_us / head_us:.1f}"])
    print(table(["model", "µs / obs", "× streamrnn"], rows))
    if peers_:
        print("\nAgainst other versions, the headline loop timed in alternation with theirs "
              f"(this tree {peer_mine:.1f} µs in those runs):")
        for label, _ in peers_:
            if label in peer_us:
                print(f"- this / {peer_name(label, peer_info)}: {peer_mine / peer_us[label]:.2f}x "
                      f"({peer_mine:.1f} / {peer_us[label]:.1f} µs)")
            else:
                print(f"- {label}: not timed ({peer_why[label]})")
    if torch is None:
        print(f"\n{torch_why}")
    else:
        print(f"\nPyTorch / streamrnn = {torch_us / head_us:.1f}x")

    print("\n### Around the network: the forecaster (backbone, combination, intervals, Python) "
          "against the kernel alone (hidden 32, k2 = 16)\n")
    rows = [["LSTMForecaster: `forecast(1)` + `learn_one(y)`"]
            + [f"{layer[k1][0]:.2f}" for k1 in K1S],
            ["kernel alone: `Network.predict` + `Network.learn_multi`, tight loop"]
            + [f"{layer[k1][1]:.2f}" for k1 in K1S],
            ["forecaster / kernel alone"] + [f"{layer[k1][0] / layer[k1][1]:.2f}x" for k1 in K1S]]
    print(table(["µs / obs"] + [f"update_every={k1}" for k1 in K1S], rows))

    # grid -------------------------------------------------------------------------
    print(f"\n### Every cell, k2 = {K2}\n")
    grid, mem = {}, {}
    for cell, cls in CELLS.items():
        for hidden in HIDDEN:
            for k1 in K1S:
                us, model = time_loop(lambda r: cls(hidden_size=hidden, tbptt_steps=K2,
                                                    update_every=k1, seed=r), ys, args.repeats)
                grid[cell, hidden, k1] = us
                if k1 == 1:
                    mem[cell, hidden] = (model._raw_memory_usage, model.network.__sizeof__())
    rows = [[f"{cell}Forecaster"] + [f"{grid[cell, h, k1]:.1f}" for h in HIDDEN for k1 in K1S]
            for cell in CELLS]
    print(table(["streamrnn"] + [f"h={h}, k1={k1}" for h in HIDDEN for k1 in K1S], rows))

    # deep-river -------------------------------------------------------------------
    dr = None
    if args.no_peers:
        print("\ndeep-river skipped: --no-peers")
    else:
        dr, why = peers.run("speed", models=list(peers.DEEP_RIVER_FORECASTERS),
                            hidden=list(HIDDEN), steps=max(100, args.torch_steps),
                            repeats=args.repeats)
        if dr is None:
            print(f"\n{why}")
        else:
            print(f"\n### deep-river {dr['deep_river']} (torch {dr['torch']}, 1 thread), "
                  "default settings (window_size=10) but the hidden size\n")
            rows = []
            for name in peers.DEEP_RIVER_FORECASTERS:
                us = [dr["us_per_obs"][f"{name}/{h}"] for h in HIDDEN]
                cell = name.replace("Forecaster", "")
                ratio = [u / grid[cell, h, 1] for u, h in zip(us, HIDDEN)]
                rows.append([f"deep-river {name}"] + [f"{u:.0f} ({q:.0f}x)" for u, q in zip(us, ratio)])
            print(table(["model"] + [f"h={h}: µs / obs (× streamrnn k1=1)" for h in HIDDEN], rows))

    # memory -----------------------------------------------------------------------
    print("\n### Memory per model (bytes, after the run, k1=1, k2=16)\n")
    rows = []
    for cell in CELLS:
        rows.append([f"{cell}Forecaster"]
                    + [f"{mem[cell, h][0]:,} / {mem[cell, h][1]:,}" for h in HIDDEN])
    if torch is not None:
        rows.append(["PyTorch LSTM TBPTT (tensor bytes only)"]
                    + [f"- / {torch_lstm_nbytes(torch_ys, h):,}" for h in HIDDEN])
    print(table(["model"] + [f"h={h}: _raw_memory_usage / network.__sizeof__()" for h in HIDDEN],
                rows))

    # sweeps + plot ----------------------------------------------------------------
    if args.quick or args.no_plots:
        return
    by_hidden = {f"streamrnn {c}": {} for c in CELLS}
    for cell, cls in CELLS.items():
        for h in SWEEP_HIDDEN:
            by_hidden[f"streamrnn {cell}"][h] = grid.get((cell, h, 1)) or time_loop(
                lambda r: cls(hidden_size=h, tbptt_steps=K2, update_every=1, seed=r), ys,
                args.repeats)[0]
    by_k2 = {"streamrnn LSTM": {}}
    for k2 in SWEEP_K2:
        by_k2["streamrnn LSTM"][k2] = time_loop(
            lambda r: LSTMForecaster(hidden_size=32, tbptt_steps=k2, update_every=1, seed=r), ys,
            args.repeats)[0]
    if torch is not None:
        by_hidden["PyTorch LSTM"] = {h: time_loop(lambda r: torch_lstm_forecaster(h, K2, seed=r),
                                                  torch_ys, args.repeats)[0] for h in SWEEP_HIDDEN}
        by_k2["PyTorch LSTM"] = {k2: time_loop(lambda r: torch_lstm_forecaster(32, k2, seed=r),
                                               torch_ys, args.repeats)[0] for k2 in SWEEP_K2}
    if dr is not None:
        by_hidden["deep-river LSTM (window 10)"] = {
            h: dr["us_per_obs"][f"LSTMForecaster/{h}"] for h in HIDDEN}
    print("\n### Scaling (k1=1; µs / obs)\n")
    rows = [[name] + [f"{pts[h]:.0f}" if h in pts else "-" for h in SWEEP_HIDDEN]
            for name, pts in by_hidden.items()]
    print(table(["hidden size (k2=16)"] + [str(h) for h in SWEEP_HIDDEN], rows))
    print()
    rows = [[name] + [f"{pts[k]:.0f}" for k in SWEEP_K2] for name, pts in by_k2.items()]
    print(table(["k2 (hidden 32)"] + [str(k) for k in SWEEP_K2], rows))
    IMG.mkdir(parents=True, exist_ok=True)
    plot_scaling(by_hidden, by_k2, IMG / "speed_scaling.png")
    print(f"\nwrote {(IMG / 'speed_scaling.png').relative_to(ROOT)}")


def torch_lstm_nbytes(ys, hidden):
    model = torch_lstm_forecaster(hidden, K2)
    for y in ys[:64]:
        model.forecast(1)
        model.learn_one(y)
    return model.nbytes()


if __name__ == "__main__":
    main()
