"""Seeded outputs for a bit-identity check of a refactoring: a short toy-2D run through the
Trainer (40 steps, then 64 samples from the EMA weights) and three UNet training steps (dropout
on, attention, batch 64, 2 engine threads), every loss, weight and gradient saved as arrays.

    PYTHONPATH=/tmp/base python benchmarks/seeded_outputs.py /tmp/before.npz   # the old checkout
    python benchmarks/seeded_outputs.py /tmp/after.npz                        # this one
    python benchmarks/seeded_outputs.py --compare /tmp/before.npz /tmp/after.npz

(The script's own folder comes first on sys.path, so PYTHONPATH picks which checkout's packages
are imported.) --compare exits 1 unless every array is byte for byte the same.
"""
import os
import sys
import tempfile

os.environ.setdefault("AUTOGRAD_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402  (after the thread settings)

if sys.argv[1] == "--compare":
    a, b = np.load(sys.argv[2]), np.load(sys.argv[3])
    assert sorted(a.files) == sorted(b.files), (a.files, b.files)
    bad = [k for k in a.files if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes()]
    print(f"{len(a.files)} arrays, {sum(a[k].nbytes for k in a.files)} bytes; differing: {bad or 'none'}")
    sys.exit(1 if bad else 0)

import autograd.functional as F
import autograd.random as ag_random
from autograd.optim import AdamW
from autograd.tensor import Tensor, no_grad
from tinydiff.train import TrainConfig, Trainer
from tinydiff.models import UNet
try:  # (checkouts before issue 10 tuned malloc on import)
    from autograd.malloc import keep_freed_host_memory
    keep_freed_host_memory()
except ImportError:
    pass

out = {}
with tempfile.TemporaryDirectory() as tmp:
    tr = Trainer(TrainConfig.toy2d(steps=40, batch_size=256, out_dir=tmp, progress=False))
    hist = tr.train()
    out["toy_losses"] = np.array([h.loss for h in hist])
    for k, v in tr.model.state_dict().items():
        out["toy_" + k] = np.asarray(v)
    with no_grad():
        out["toy_sample"] = np.asarray(tr.sample(64).samples)

ag_random.manual_seed(3)
model = UNet(in_channels=1, out_channels=1, model_channels=16, channel_mult=[1, 2, 2], num_res_blocks=1,
             attention_resolutions=[7], dropout=0.1, image_size=28)
model.train()
params = list(model.parameters())
opt = AdamW(params, lr=1e-3)
rng = np.random.default_rng(5)
x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
t = rng.integers(0, 1000, 64)
eps = rng.standard_normal(x.shape).astype(np.float32)  # (a zero target would give zero gradients:
losses = []                                            # the UNet's last conv starts at zero)
for _ in range(3):
    loss = F.mse_loss(model(Tensor(x), t), Tensor(eps))
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
out["unet_losses"] = np.array(losses)
assert all(np.abs(p.grad).max() > 0 for p in params), "every UNet parameter should have a gradient by step 3"
for i, p in enumerate(params):
    out[f"unet_p{i}"] = p.data
    out[f"unet_g{i}"] = p.grad
model.eval()
with no_grad():
    out["unet_eval"] = model(Tensor(x[:16]), t[:16]).data
np.savez(sys.argv[1], **out)
print("saved", len(out), "arrays")
