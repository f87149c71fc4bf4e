"""autograd.malloc.keep_freed_host_memory() makes glibc keep freed memory for reuse: an array
freed and allocated again must not be page-faulted in a second time. Importing the engine
alone leaves malloc as it is (the trainer, the CLI and the benchmark switch it on)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys, numpy as np
import autograd
from autograd.malloc import keep_freed_host_memory
if sys.argv[1] == "tune":
    keep_freed_host_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # like a training step: many arrays alive at once (the graph), then all freed
    arrays = [np.ones(4 << 20, np.uint8) for _ in range(16)]   # 16 x 4 MB
    del arrays
step()
before = faults()
for _ in range(5):
    step()
print(faults() - before)
"""


def faults_of_reallocation(keep: str, tune: bool = True) -> int:
    env = dict(os.environ, AUTOGRAD_KEEP_FREED_MEMORY=keep)
    out = subprocess.run([sys.executable, "-c", PROBE, "tune" if tune else "import-only"], env=env,
                         capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_freed_arrays_are_reused_without_page_faults():
    # Five steps of 64 MB are 80,000 pages: without the tuning most are faulted in afresh.
    assert faults_of_reallocation("0") > 20000
    assert faults_of_reallocation("1") < 2000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_importing_the_engine_leaves_malloc_alone():
    assert faults_of_reallocation("1", tune=False) > 20000


def test_the_switch_says_whether_it_tuned(monkeypatch):
    from autograd.malloc import keep_freed_host_memory
    monkeypatch.setenv("AUTOGRAD_KEEP_FREED_MEMORY", "0")
    assert keep_freed_host_memory() is False
