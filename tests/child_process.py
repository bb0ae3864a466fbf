"""Run Python in a child process on the very fastconv these tests imported.

A child started in the repository root would put the source tree first on
its path ("" for ``-c`` and ``-m``), and the source tree has no compiled
extension when fastconv is installed from a fresh clone, as CI does. So the
child runs in a neutral directory with the imported package's parent first on
PYTHONPATH.
"""

import os
import subprocess
import sys
import tempfile

import fastconv

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def python_env(**extra):
    """os.environ plus ``extra``, with the imported fastconv first on PYTHONPATH."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env


def run_python(args, *, env=None, timeout=300, **kwargs):
    """subprocess.run([python, *args]) with the output captured as text."""
    return subprocess.run([sys.executable, *args], env=env or python_env(), cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def popen_python(args, **kwargs):
    """subprocess.Popen([python, *args]) set up like run_python."""
    return subprocess.Popen([sys.executable, *args], env=python_env(), cwd=tempfile.gettempdir(),
                            text=True, **kwargs)
