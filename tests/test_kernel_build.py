"""The build: a source checkout without compiled modules fails with an error that says what to
do; building from a checkout leaves the modules in the source tree too; the default build is
portable (vector instructions only in the run-time-dispatched copies of the C helpers)."""
import os
import platform
import re
import shutil
import subprocess
import sys

import pytest

# the checkout these tests belong to (the package under test may be an installed copy)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "streamrnn")
SO = re.compile(r".*\.(so|pyd)$")


def _copy_sources(dest, with_setup=True):
    """The streamrnn package of this checkout without any compiled module, in ``dest``."""
    shutil.copytree(SOURCE, os.path.join(dest, "streamrnn"),
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"))
    if with_setup:
        shutil.copy(os.path.join(ROOT, "setup.py"), dest)


def _python(cwd, code):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STREAMRNN_ISA")}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "setup.py")),
                    reason="needs the source checkout")
@pytest.mark.parametrize("code", ["import streamrnn", "import streamrnn._core",
                                  "from streamrnn import LSTMForecaster"])
def test_a_source_folder_without_kernels_says_how_to_build_them(tmp_path, code):
    _copy_sources(tmp_path)
    run = _python(tmp_path, code)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: streamrnn was imported from its source folder "
                           f"{tmp_path}"), run.stderr
    assert "python setup.py build_ext --inplace" in last
    assert "run Python from another folder" in last
    assert "ModuleNotFoundError" not in run.stderr


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "setup.py")),
                    reason="needs the source checkout")
def test_an_installed_package_without_kernels_says_reinstall(tmp_path):
    _copy_sources(tmp_path, with_setup=False)
    run = _python(tmp_path, "import streamrnn._core")
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: streamrnn's compiled kernels are missing"), run.stderr
    assert "pip install --force-reinstall streamrnn" in last


def _wide_and_fused(path):
    """Functions of a shared object whose code touches ymm/zmm registers, and those with FMAs."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                         text=True, check=True).stdout
    wide, fused, fn = set(), set(), None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            fn = m.group(1)
        if re.search(r"%[yz]mm", line):
            wide.add(fn)
        if re.search(r"\svfn?m(add|sub)", line):
            fused.add(fn)
    return wide, fused


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "setup.py")),
                    reason="needs the source checkout")
def test_build_ext_leaves_the_modules_in_the_source_tree_and_is_portable(tmp_path):
    # one small module (setup.py builds the .pyx files it finds), built out of tree as pip does
    core = tmp_path / "streamrnn" / "_core"
    core.mkdir(parents=True)
    for name in ("__init__.py", "_optim.pyx", "_optim.pxd", "_kernels.h", "_kernels_impl.h"):
        shutil.copy(os.path.join(SOURCE, "_core", name), core)
    shutil.copy(os.path.join(ROOT, "setup.py"), tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("STREAMRNN_NATIVE", "CFLAGS")}
    run = subprocess.run([sys.executable, "setup.py", "-q", "build_ext",
                          "--build-lib", str(tmp_path / "build" / "lib"),
                          "--build-temp", str(tmp_path / "build" / "temp")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    built = [n for n in os.listdir(core) if SO.match(n)]
    assert len(built) == 1 and built[0].startswith("_optim."), os.listdir(core)
    if platform.machine().lower() not in ("x86_64", "amd64") or not shutil.which("objdump"):
        return
    wide, fused = _wide_and_fused(str(core / built[0]))
    # AVX only inside the avx2/avx512 copies, which run only where the CPU has them
    assert wide and all(re.search(r"_avx(2|512)$", fn) for fn in wide), sorted(wide)
    assert not fused, sorted(fused)  # -ffp-contract=off: no copy rounds differently
