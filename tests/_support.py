"""Shared by tests that start a child Python (the command, the examples)."""
import os

import streamrnn


def child_env(**extra):
    """Environment for a child Python that imports the very streamrnn this test process imports
    (installed, or built in place during development), never the uncompiled source folder:
    its parent folder goes first on PYTHONPATH and PYTHONSAFEPATH keeps the working directory
    off sys.path."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(streamrnn.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    env["PYTHONSAFEPATH"] = "1"
    env.update(extra)
    return env


def digest_per_isa(code, timeout=300):
    """Run ``code`` (which prints ``json.dumps([_cells.ISA, digest])`` as its last line) in one
    child Python per instruction-set copy this CPU runs; return ``{isa: digest}`` after checking
    that each child ran and used the copy it was given."""
    import json
    import subprocess
    import sys

    from streamrnn._core import _cells
    got = {}
    for isa in _cells.ISAS:
        run = subprocess.run([sys.executable, "-c", code], env=child_env(STREAMRNN_ISA=isa),
                             capture_output=True, text=True, timeout=timeout)
        assert run.returncode == 0, run.stderr[-2000:]
        used, digest = json.loads(run.stdout.strip().splitlines()[-1])
        assert used == isa
        got[isa] = digest
    return got


def random_targets(rng, loss, B, n_out):
    """(B, n_out) targets a loss accepts: class indices for softmax cross-entropy, 0/1 for
    binary cross-entropy, standard normal values for the regression losses."""
    from streamrnn._core import BINARY_CE, SOFTMAX_CE
    if loss == SOFTMAX_CE:
        return rng.integers(0, n_out, B).astype(float)
    if loss == BINARY_CE:
        return rng.integers(0, 2, B).astype(float)
    return rng.standard_normal((B, n_out))
