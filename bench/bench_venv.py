"""The benchmarks' Python environment: bench/setup-voice-bench makes a venv (numpy, pesq,
matplotlib) under the release build; a benchmark script calls ``ensure(...)`` first and is
re-executed inside the venv when its modules are missing from the current interpreter."""
import importlib
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("PARLEY_BENCH_BUILD", os.path.join(ROOT, "build-release"))
VENV = os.environ.get("PARLEY_BENCH_VENV", os.path.join(BUILD, "bench-venv"))


def ensure(script, modules):
    """Returns when every module of ``modules`` imports; otherwise sets up the venv and
    re-executes ``script`` (the caller's __file__, same arguments) with its python."""
    try:
        for m in modules:
            importlib.import_module(m)
        return
    except ImportError:
        pass
    name = os.path.basename(script)
    if os.environ.get("PARLEY_BENCH_IN_VENV"):
        sys.exit(f"{name}: {', '.join(modules)} still missing inside the venv {VENV}")
    subprocess.run([os.path.join(ROOT, "bench", "setup-voice-bench"), VENV], check=True)
    env = dict(os.environ, PARLEY_BENCH_IN_VENV="1")
    py = os.path.join(VENV, "bin", "python")
    os.execve(py, [py, os.path.abspath(script)] + sys.argv[1:], env)
