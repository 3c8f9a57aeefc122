"""Console entry points for lina's C++ tools: `pip install .` puts linac, lina-run and lina-convert
in the package's bin/ folder (python/CMakeLists.txt) and these wrappers on the PATH."""
import os
import sys

_BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")


def _exec(name):
    path = os.path.join(_BIN, name)
    if not os.access(path, os.X_OK):
        sys.stderr.write(f"{name}: not installed with this lina package ({path} is missing); reinstall with "
                         "`pip install .` from lina's source, or build it with CMake (build/tools/)\n")
        return 2
    os.execv(path, [name, *sys.argv[1:]])


def linac():
    return _exec("linac")


def lina_run():
    return _exec("lina-run")


def lina_convert():
    return _exec("lina-convert")
