"""Where a tinydiff step spends its time, by op, without touching the engine's hot path.

Every op ends by calling ``make_node(data, parents, backward, op)``. While an ``OpProfile`` is
installed, each engine module's ``make_node`` is replaced by a wrapper that

* charges the wall time since the previous node was made to this node's op (its forward,
  plus the few lines of model code that led to it), and
* wraps ``backward`` so that each call is timed and charged to the op's backward.

Whatever ``Tensor.backward`` spends outside the closures (topological sort, the grads dict,
summing the gradients of tensors used twice, copying leaf gradients) is "graph overhead".
Uninstalled, nothing of this remains: the engine runs its own ``make_node``.
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Any, Callable

import autograd.tensor  # noqa: F401  (the module; `autograd.tensor` the attribute is a function)

tensor_module = sys.modules["autograd.tensor"]

CATEGORIES = {  # op name -> the row it is summed into
    "conv2d": "convolution",
    "group_norm_silu": "group norm (+SiLU)", "group_norm": "group norm (+SiLU)",
    "layer_norm": "group norm (+SiLU)",
    "scaled_dot_product_attention": "attention", "softmax": "attention",
    "linear": "linear (+SiLU), matmul", "linear_silu": "linear (+SiLU), matmul", "mlp_silu": "linear (+SiLU), matmul",
    "matmul": "linear (+SiLU), matmul",
    "dropout": "dropout",
    "mse_loss": "loss",
}
OTHER = "elementwise + shape"


class OpProfile:
    """Accumulated seconds per op (forward and backward) and per phase of a step."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.forward: dict[str, float] = defaultdict(float)
        self.backward: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.phases: dict[str, float] = defaultdict(float)
        self._original = tensor_module.make_node
        self._patched: list[Any] = []
        self._last = self.clock()

    # ------------------------------------------------------------------ install / remove
    def install(self) -> None:
        self.phases.clear()  # phases timed before (warm-up) are not part of the profile
        for module in list(sys.modules.values()):
            if getattr(module, "make_node", None) is self._original:
                module.make_node = self._make_node
                self._patched.append(module)

    def remove(self) -> None:
        for module in self._patched:
            module.make_node = self._original
        self._patched.clear()

    # ------------------------------------------------------------------ hooks
    def _make_node(self, data: Any, parents: tuple, backward: Callable, op: str) -> Any:
        now = self.clock()
        self.forward[op] += now - self._last
        self.calls[op] += 1
        node = self._original(data, parents, self._timed(backward, op), op)
        self._last = self.clock()
        return node

    def _timed(self, backward: Callable, op: str) -> Callable:
        def timed_backward(g: Any) -> Any:
            t0 = self.clock()
            grads = backward(g)
            self.backward[op] += self.clock() - t0
            return grads
        return timed_backward

    def mark(self) -> None:
        """Start a new forward interval now (call before the first op of a forward)."""
        self._last = self.clock()

    def phase(self, name: str, seconds: float) -> None:
        self.phases[name] += seconds

    # ------------------------------------------------------------------ report
    def rows(self, steps: int) -> list[tuple[str, float, float]]:
        """(category, forward ms, backward ms) per step, biggest first, then the phases."""
        fwd: dict[str, float] = defaultdict(float)
        bwd: dict[str, float] = defaultdict(float)
        for op, s in self.forward.items():
            fwd[CATEGORIES.get(op, OTHER)] += s
        for op, s in self.backward.items():
            bwd[CATEGORIES.get(op, OTHER)] += s
        cats = sorted(set(fwd) | set(bwd), key=lambda c: -(fwd[c] + bwd[c]))
        out = [(c, 1e3 * fwd[c] / steps, 1e3 * bwd[c] / steps) for c in cats]
        graph = self.phases.get("backward", 0.0) - sum(self.backward.values())
        if "backward" in self.phases:
            out.append(("graph overhead (backward walk)", 0.0, 1e3 * graph / steps))
        for name in ("draw t, noise; q_sample", "clip_grad_norm_", "optimizer step", "sampler update"):
            if name in self.phases:
                out.append((name, 1e3 * self.phases[name] / steps, 0.0))
        return out

    def top_ops(self, steps: int, n: int = 8) -> list[tuple[str, int, float, float]]:
        """(op, calls per step, forward ms, backward ms) of the n most expensive ops."""
        ops = sorted(set(self.forward) | set(self.backward),
                     key=lambda o: -(self.forward.get(o, 0) + self.backward.get(o, 0)))[:n]
        return [(o, self.calls[o] // steps, 1e3 * self.forward.get(o, 0) / steps,
                 1e3 * self.backward.get(o, 0) / steps) for o in ops]
