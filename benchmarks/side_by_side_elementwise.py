"""Two checkouts side by side in one process, on the engine's per-op Python path: Tensor(...),
+ - * / forward and backward and the backward loop's accumulation of a tensor used twice, on
small tensors (overhead) and big ones (the threaded kernel). Calls alternate one by one; medians
of process CPU time (all threads), which a busy shared machine disturbs less than wall time.

    python benchmarks/side_by_side_elementwise.py /tmp/base . [rounds]
"""
import importlib
import os
import statistics
import sys
import time

os.environ.setdefault("AUTOGRAD_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402  (after the thread settings)

BASE, NEW = (os.path.abspath(p) for p in sys.argv[1:3])
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 15
def load(root):
    for k in [k for k in sys.modules if k == "autograd" or k.startswith("autograd.")]:
        del sys.modules[k]
    sys.path.insert(0, root); ag = importlib.import_module("autograd"); sys.path.remove(root)
    assert ag.__file__.startswith(root)
    return ag.Tensor
V = {"base": load(BASE), "new": load(NEW)}
small = np.ones((4, 4), np.float32); big = np.random.default_rng(0).standard_normal((64, 32, 28, 28)).astype(np.float32)
def cases(T):
    def chain(a, n):  # n ops on small tensors, each input used twice: accumulation in backward
        def run():
            x = T(a, requires_grad=True); y = x
            for _ in range(n):
                y = y * x + y - x / 2.0
            y.sum().backward()
        return run
    return {"Tensor([[1.,2.],[3.,4.]]) x1000": lambda: [T([[1.0, 2.0], [3.0, 4.0]]) for _ in range(1000)],
            "small (4,4): 100 x (y*x + y - x/2) f+b": chain(small, 100),
            "big (64,32,28,28): 2 x (y*x + y - x/2) f+b": chain(big, 2)}
R = {v: cases(T) for v, T in V.items()}
times = {v: {k: [] for k in R[v]} for v in R}
for v in R:
    for f in R[v].values(): f()
for rnd in range(ROUNDS):
    for k in R["base"]:
        for i in range(2):
            v = ("base", "new")[(i + rnd) % 2]
            t0 = time.process_time(); R[v][k](); times[v][k].append(time.process_time() - t0)
for k in times["base"]:
    b, n = (statistics.median(times[v][k]) * 1e3 for v in ("base", "new"))
    print(f"{k:45s} base {b:8.2f} ms  new {n:8.2f} ms  new/base {n / b:.3f}")
