"""Build the compiled kernels: one explicit Extension per .pyx, Cython directives set once here.

Set STREAMRNN_PORTABLE=1 to build without -march=native (e.g. for a wheel that moves to
another machine); by default the kernels are tuned for the machine that builds them.
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}

compile_args = ["-O3", "-fno-math-errno"]
if sys.platform != "win32" and os.environ.get("STREAMRNN_PORTABLE", "0") != "1":
    compile_args.append("-march=native")


# every compiled module of streamrnn._core, in build order (each a streamrnn/_core/NAME.pyx);
# a module that is not written yet is skipped, so this list can name it ahead of time
EXTENSIONS = [n for n in ("_cells", "_optim", "_network", "_scaling")
              if os.path.exists(os.path.join("streamrnn", "_core", n + ".pyx"))]


def extension(name):
    return Extension(
        f"streamrnn._core.{name}",
        [f"streamrnn/_core/{name}.pyx"],
        include_dirs=[numpy.get_include(), os.path.join("streamrnn", "_core")],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )


setup(
    ext_modules=cythonize(
        [extension(name) for name in EXTENSIONS],
        compiler_directives=DIRECTIVES,
    ),
)
