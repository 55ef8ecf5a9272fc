"""Build the compiled kernels: one explicit Extension per .pyx, Cython directives set once here.

Flags. By default the build is portable: the compiler's baseline for the target (x86-64:
SSE2, `-march=x86-64 -mtune=generic`), so a wheel or an image built here runs on any machine
of the architecture. The vector paths are chosen at run time instead: `_kernels.h` compiles
its C helpers once per instruction set (default, avx2, avx512) and picks the best this CPU
runs at import (`STREAMRNN_ISA=default|avx2|avx512` forces one). `STREAMRNN_NATIVE=1` builds
with `-march=native` for the building machine only (a module that may die with an illegal
instruction elsewhere; the same results bit for bit). Every build passes
`-ffp-contract=off`: no a*b + c is fused into an FMA, so every build and every path computes
the same bits.

Building from a source checkout (`pip install .`, `python setup.py build_ext`) also copies
the built modules into the source tree, next to their .pyx files, so Python started in the
project folder (where `streamrnn/` shadows the installed package) finds them too.
"""
import os
import platform
import shutil
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE = os.environ.get("STREAMRNN_NATIVE", "0") == "1"


def compile_args(compiler_type):
    """Flags for the C compiler of this build (see the module docstring)."""
    if compiler_type == "msvc":
        return ["/O2", "/fp:precise"]
    args = ["-O3", "-fno-math-errno", "-ffp-contract=off"]
    if NATIVE:
        args.append("-march=native")
    elif platform.machine().lower() in ("x86_64", "amd64"):
        # override any -march the interpreter's own CFLAGS might carry
        args += ["-march=x86-64", "-mtune=generic"]
    return args


# every compiled module of streamrnn._core, in build order (each a streamrnn/_core/NAME.pyx);
# a module that is not written yet is skipped, so this list can name it ahead of time
EXTENSIONS = [n for n in ("_cells", "_optim", "_network", "_scaling", "_backbone", "_combine",
                            "_forecast", "_shared", "_global", "_codec", "_keymap")
              if os.path.exists(os.path.join(HERE, "streamrnn", "_core", n + ".pyx"))]


def extension(name):
    return Extension(
        f"streamrnn._core.{name}",
        [f"streamrnn/_core/{name}.pyx"],
        include_dirs=[numpy.get_include(), os.path.join("streamrnn", "_core")],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=["streamrnn/_core/_kernels.h", "streamrnn/_core/_kernels_impl.h"],
    )


class BuildExt(build_ext):
    """build_ext with this project's flags per compiler, which also leaves a copy of every
    built module in the source tree (as `--inplace` does) when it builds elsewhere."""

    def build_extensions(self):
        args = compile_args(self.compiler.compiler_type)
        for ext in self.extensions:
            ext.extra_compile_args = list(args)
        super().build_extensions()

    def run(self):
        super().run()
        if not self.inplace:
            self.copy_to_source_tree()

    def copy_to_source_tree(self):
        for ext in self.extensions:
            built = self.get_ext_fullpath(ext.name)
            name = os.path.basename(self.get_ext_filename(ext.name))
            target = os.path.join(HERE, *ext.name.split(".")[:-1], name)
            if not os.path.exists(built) or os.path.abspath(built) == os.path.abspath(target):
                continue
            try:  # a new file renamed over the old one: a process that loaded it keeps its copy
                shutil.copyfile(built, target + ".tmp")
                os.replace(target + ".tmp", target)
            except OSError as err:  # a read-only checkout: the installed package still works
                sys.stderr.write(f"streamrnn: could not copy {name} into the source tree "
                                 f"({err}); build in place with "
                                 f"`python setup.py build_ext --inplace` to run from here\n")
            else:
                sys.stderr.write(f"streamrnn: copied {name} into {os.path.dirname(target)}\n")


setup(
    ext_modules=cythonize(
        [extension(name) for name in EXTENSIONS],
        compiler_directives=DIRECTIVES,
    ),
    cmdclass={"build_ext": BuildExt},
)
