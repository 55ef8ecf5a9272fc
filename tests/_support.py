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
