"""Two checkouts of the engine timed side by side in one process: the fast paths of the ops
issue 10 touched (conv2d, group norm (+SiLU), silu, dropout, linear_silu, attention, a chain
of + * with accumulation) and a UNet training step, forward and backward. Both packages are
imported at once (sys.modules swapped between the imports), and the calls alternate one by one
between them, so a change of load on a shared machine hits both alike. Medians.

    git archive <commit> | tar -x -C /tmp/base    # the checkout to compare against
    python benchmarks/side_by_side.py /tmp/base . --rounds 5 [--new-first]
"""
import argparse
import importlib
import os
import statistics
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("base", help="root of the checkout to compare against")
ap.add_argument("new", help="root of the checkout under test")
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--new-first", action="store_true", help="import the checkout under test first")
args = ap.parse_args()
args.base, args.new = os.path.abspath(args.base), os.path.abspath(args.new)
os.environ.setdefault("AUTOGRAD_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402  (after the thread settings)

def load(root):
    for k in [k for k in sys.modules if k == "autograd" or k.startswith(("autograd.", "tinydiff"))]:
        del sys.modules[k]
    sys.path.insert(0, root)
    try:  # (module by module: F's names shadow some modules, e.g. F.linear is the function)
        ag = importlib.import_module("autograd")
        F = importlib.import_module("autograd.functional")
        lin = importlib.import_module("autograd.functional.linear"); nrm = importlib.import_module("autograd.functional.norm")
        models = importlib.import_module("tinydiff.models"); optim = importlib.import_module("autograd.optim")
        try:
            importlib.import_module("autograd.malloc").keep_freed_host_memory()
        except ImportError:
            pass
        assert ag.__file__.startswith(root), ag.__file__
    finally:
        sys.path.remove(root)
    return dict(T=ag.Tensor, F=F, linear_silu=lin.linear_silu, gns=nrm.group_norm_silu, UNet=models.UNet, AdamW=optim.AdamW)

rng = np.random.default_rng(0)
def cl(a): return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
X = cl(rng.standard_normal((64, 32, 28, 28)).astype(np.float32))
W = (rng.standard_normal((32, 32, 3, 3)) * 0.05).astype(np.float32); B = np.zeros(32, np.float32)
G = np.ones(32, np.float32)
H = rng.standard_normal((1024, 256)).astype(np.float32); WL = (rng.standard_normal((256, 256)) * 0.05).astype(np.float32); BL = np.zeros(256, np.float32)
Q = rng.standard_normal((64, 4, 196, 16)).astype(np.float32)

def cases(m):
    T, F = m["T"], m["F"]
    def fb(fn, *arrs):
        def run():
            ts = [T(a, requires_grad=True) for a in arrs]
            out = fn(*ts); out.backward(np.ones(out.shape, out.dtype))
        return run
    unet = m["UNet"](); opt = m["AdamW"](list(unet.parameters()), lr=1e-4)
    xu = rng.standard_normal((32, 1, 28, 28)).astype(np.float32); tu = rng.integers(0, 1000, 32)
    def unet_step():
        loss = F.mse_loss(unet(T(xu), tu), T(np.zeros_like(xu))); opt.zero_grad(); loss.backward(); opt.step()
    return {
        "conv2d 3x3 (64,32,28,28) f+b": fb(lambda x, w, b: F.conv2d(x, w, b, padding=1), X, W, B),
        "group_norm_silu (64,32,28,28) f+b": fb(lambda x, g, b: m["gns"](x, 8, g, b), X, G, B),
        "group_norm (64,32,28,28) f+b": fb(lambda x, g, b: F.group_norm(x, 8, g, b), X, G, B),
        "silu (64,32,28,28) f+b": fb(F.silu, X),
        "dropout p=0.1 (64,32,28,28) f+b": fb(lambda x: F.dropout(x, 0.1), X),
        "linear_silu (1024,256)x256 f+b": fb(m["linear_silu"], H, WL, BL),
        "sdpa (64,4,196,16) f+b": fb(F.scaled_dot_product_attention, Q, Q, Q),
        "x*y + x (64,32,28,28) f+b (accumulate)": fb(lambda x, y: x * y + x, X, X),
        "UNet train step b32": unet_step,
    }

if args.new_first:  # (the import order could favour one side: run both ways)
    _n = load(args.new); versions = {"base": load(args.base), "new": _n}
else:
    versions = {"base": load(args.base), "new": load(args.new)}
runs = {v: cases(m) for v, m in versions.items()}
reps = {"UNet train step b32": 2}
times = {v: {k: [] for k in runs[v]} for v in runs}
for v in runs:  # warm up
    for k, f in runs[v].items(): f()
for rnd in range(args.rounds):
    for k in runs["base"]:  # call by call, alternating which version goes first
        for i in range(2 * reps.get(k, 3)):
            v = ("base", "new")[(i + rnd) % 2]
            t0 = time.perf_counter(); runs[v][k](); times[v][k].append(time.perf_counter() - t0)
print(f"{'op':42s} {'base ms':>9s} {'new ms':>9s} {'new/base':>9s}  (medians; spread base min-max)")
for k in times["base"]:
    b, n = statistics.median(times["base"][k]) * 1e3, statistics.median(times["new"][k]) * 1e3
    print(f"{k:42s} {b:9.1f} {n:9.1f} {n / b:9.3f}  ({min(times['base'][k])*1e3:.1f}-{max(times['base'][k])*1e3:.1f})")
