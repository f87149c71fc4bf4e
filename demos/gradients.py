"""Gradients three ways: derived by hand, computed by the engine, estimated by finite differences.

    python demos/gradients.py        (a few seconds on a CPU)

Four gradients, each derived in two or three lines below, then evaluated three ways:

    hand     the derived formula, written with plain NumPy
    engine   autograd's backward()
    numeric  central finite differences of the loss: (L(x + h) - L(x - h)) / 2h

The last one is the gradient of the DDPM training loss with respect to one weight of a
convolution, the number every training step of a diffusion model is built from.
Everything is float64, so the three agree to about 1e-9 (finite differences lose the rest).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, uninstalled

import autograd.functional as F  # noqa: E402
from autograd import Tensor, no_grad  # noqa: E402
from autograd.gradcheck import central_differences  # noqa: E402
from tinydiff.diffusion import GaussianDiffusion  # noqa: E402
from tinydiff.schedules import make_beta_schedule  # noqa: E402

rng = np.random.default_rng(0)
TOLERANCE = 1e-6
worst = 0.0  # the largest disagreement seen, reported at the end


def finite_difference(loss, x: np.ndarray, h: float = 1e-6, index=None):
    """dL/dx by central differences: nudge one element up and down, measure the loss, restore it
    (autograd.gradcheck's own estimate). All elements, or only ``index``."""
    return central_differences(loss, x, h, index)


def show(title: str, derivation: str, hand, engine, numeric, rows: int = 4) -> None:
    """Print the derivation, then hand | engine | numeric for the first few elements."""
    global worst
    hand, engine, numeric = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (hand, engine, numeric))
    print(f"\n== {title}")
    for line in derivation.strip("\n").splitlines():
        print("   " + line)
    print(f"   {'element':>14} {'hand':>14} {'engine':>14} {'numeric':>14}")
    for i in list(np.ndindex(hand.shape))[:rows]:
        print(f"   {str(i):>14} {hand[i]:14.9f} {engine[i]:14.9f} {numeric[i]:14.9f}")
    if hand.size > rows:
        print(f"   {'...':>14}  ({hand.size} elements in all)")
    d_engine, d_numeric = np.abs(hand - engine).max(), np.abs(hand - numeric).max()
    print(f"   max |hand - engine| = {d_engine:.1e}    max |hand - numeric| = {d_numeric:.1e}")
    worst = max(worst, d_engine, d_numeric)


def engine_value(fn, *arrays) -> float:
    """The loss as a plain number, from the engine's forward pass (nothing recorded)."""
    with no_grad():
        return fn(*(Tensor(a) for a in arrays)).item()


# ----------------------------------------------------------------------------- 1
def broadcasted_product() -> None:
    a, b = rng.normal(size=(3, 1)), rng.normal(size=(1, 4))
    w = rng.normal(size=(3, 4))  # fixed weights, so that L depends on every y[i, j] differently

    def loss(a, b):
        return (Tensor(w) * (a * b)).sum()

    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    loss(ta, tb).backward()

    hand_a = (w * b).sum(axis=1, keepdims=True)  # dL/da[i] = sum_j w[i,j] b[j]
    hand_b = (w * a).sum(axis=0, keepdims=True)  # dL/db[j] = sum_i w[i,j] a[i]
    derivation = """
y[i,j] = a[i] b[j], with a of shape (3, 1) and b of shape (1, 4) broadcast to (3, 4);  L = sum_ij w[i,j] y[i,j]
dL/da[i] = sum_j w[i,j] b[j]: a[i] was copied along j, so its gradient sums over the copies
dL/db[j] = sum_i w[i,j] a[i]"""
    show("broadcasted product, dL/da", derivation, hand_a, ta.grad,
         finite_difference(lambda: engine_value(loss, a, b), a))
    show("broadcasted product, dL/db", "", hand_b, tb.grad,
         finite_difference(lambda: engine_value(loss, a, b), b))


# ----------------------------------------------------------------------------- 2
def softmax() -> None:
    x, w = rng.normal(size=5), rng.normal(size=5)

    def loss(x):
        return (F.softmax(x, dim=0) * Tensor(w)).sum()

    tx = Tensor(x, requires_grad=True)
    loss(tx).backward()

    y = np.exp(x - x.max())
    y /= y.sum()
    hand = y * (w - (w * y).sum())
    derivation = """
y_i = exp(x_i) / sum_k exp(x_k)  =>  dy_i/dx_j = y_i (delta_ij - y_j);   L = sum_i w_i y_i
dL/dx_j = sum_i w_i y_i (delta_ij - y_j) = y_j (w_j - sum_i w_i y_i)"""
    show("softmax", derivation, hand, tx.grad, finite_difference(lambda: engine_value(loss, x), x))


# ----------------------------------------------------------------------------- 3
def group_norm() -> None:
    N, C, H, W, G = 2, 4, 3, 3, 2
    x, w = rng.normal(size=(N, C, H, W)), rng.normal(size=(N, C, H, W))
    eps = 1e-5

    def loss(x):
        return (F.group_norm(x, G, eps=eps) * Tensor(w)).sum()

    tx = Tensor(x, requires_grad=True)
    loss(tx).backward()

    # Per (sample, group): M = (C/G) H W values standardised together.
    xg, wg = x.reshape(N, G, -1), w.reshape(N, G, -1)
    r = 1 / np.sqrt(xg.var(axis=2, keepdims=True) + eps)
    x_hat = (xg - xg.mean(axis=2, keepdims=True)) * r
    hand = r * (wg - wg.mean(axis=2, keepdims=True) - x_hat * (wg * x_hat).mean(axis=2, keepdims=True))
    derivation = """
x_hat = (x - mu) r, r = 1/sqrt(var + eps), mu and var over each (sample, group) of M values;  L = sum w x_hat
dx_hat_i/dx_j = r (delta_ij - 1/M - x_hat_i x_hat_j / M)   (mu and var move with every x_j of the group)
dL/dx = r (w - mean(w) - x_hat mean(w x_hat)), the means taken over the group"""
    show("group norm (2 groups of 2 channels)", derivation, hand.reshape(x.shape), tx.grad,
         finite_difference(lambda: engine_value(loss, x), x))


# ----------------------------------------------------------------------------- 4
def conv2d_numpy(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """A 3x3 convolution, stride 1, zero padding 1, written out: y[b,o,i,j] = sum_{c,p,q} w[o,c,p,q] x_pad[b,c,i+p,j+q]."""
    H, W = x.shape[2:]
    x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return sum(np.einsum("oc,bcij->boij", w[:, :, p, q], x_pad[:, :, p:p + H, q:q + W])
               for p in range(3) for q in range(3))


def ddpm_loss_conv_weight() -> None:
    diffusion = GaussianDiffusion(make_beta_schedule("linear", 1000))
    x0 = rng.uniform(-1, 1, size=(2, 1, 6, 6))  # two 6x6 'images' in [-1, 1]
    eps = rng.normal(size=x0.shape)
    t = 300
    x_t = diffusion.q_sample(x0, t, eps)  # sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    w = rng.normal(scale=0.3, size=(1, 1, 3, 3))  # the whole 'model': one 3x3 conv predicting eps
    o, c, p, q = index = (0, 0, 1, 2)

    def loss(w):
        return F.mse_loss(F.conv2d(Tensor(x_t), w, padding=1), Tensor(eps))

    tw = Tensor(w, requires_grad=True)
    loss(tw).backward()

    residual = eps - conv2d_numpy(x_t, w)  # eps - eps_hat
    H, W = x0.shape[2:]
    x_pad = np.pad(x_t, ((0, 0), (0, 0), (1, 1), (1, 1)))
    hand = -2 / residual.size * (residual[:, o] * x_pad[:, c, p:p + H, q:q + W]).sum()
    abar = diffusion.alphas_cumprod[t]
    derivation = f"""
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps  (GaussianDiffusion.q_sample, abar_{t} = {abar:.4f})
eps_hat = conv2d(x_t, w, padding=1);   L = mean((eps - eps_hat)^2) over n = {residual.size} values
dL/dw[o,c,p,q] = -(2/n) sum_{{b,i,j}} (eps - eps_hat)[b,o,i,j] x_t_pad[b,c,i+p,j+q]:
  each weight sees every pixel, shifted by its (p, q) offset in the kernel; here w{list(index)}"""
    show("DDPM loss, one conv weight", derivation, hand, tw.grad[index],
         finite_difference(lambda: engine_value(loss, w), w, index=index), rows=1)


def main() -> int:
    broadcasted_product()
    softmax()
    group_norm()
    ddpm_loss_conv_weight()
    agree = worst < TOLERANCE
    print(f"\nlargest disagreement anywhere: {worst:.1e} ({'all agree' if agree else 'MISMATCH'}, "
          f"tolerance {TOLERANCE:g})")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
