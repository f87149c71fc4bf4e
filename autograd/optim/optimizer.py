"""Optimizer: parameter groups, per-parameter state, and state dicts, as torch.optim.Optimizer.

Subclasses implement ``_update(p, grad, state, group, scratch)``, which changes ``p.data`` in
place through the array's own module (NumPy or CuPy). Updates work on raw arrays, so nothing
is ever recorded in the autograd graph, and every intermediate goes into ``scratch``: one flat
buffer per device and dtype, as large as the largest parameter and reused for every parameter,
so a step allocates no memory after the first.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from autograd.backend import device_of, get_array_module, to_device
from autograd.tensor import Tensor, is_array


class Optimizer:
    """Base class: ``Optimizer(params, defaults)`` with ``params`` an iterable of Tensors or of
    dicts (parameter groups, each ``{'params': [...], 'lr': ..., ...}`` overriding ``defaults``).

    ``param_groups[i]['lr']`` (and every other hyperparameter) may be edited between steps.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._scratch: dict[tuple[type, Any, int], Any] = {}
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors or of dicts, not a single Tensor")
        groups: list[Any] = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------------ groups
    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones from defaults)."""
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group must be a dict, got {type(group).__name__}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__} can't optimize a non-leaf Tensor (shape {p.shape})")
            if p.dtype.kind != "f":
                raise TypeError(f"{type(self).__name__} can only optimize floating-point tensors, got {p.dtype}")
            if id(p) in seen:
                raise ValueError("some parameters appear in more than one parameter group (or twice in one)")
            seen.add(id(p))
        group = {**self.defaults, **group, "params": params}
        self._check_hyperparameters(group)
        self.param_groups.append(group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid hyperparameter (subclasses extend this)."""
        if not group["lr"] >= 0.0:
            raise ValueError(f"invalid learning rate: {group['lr']} (must be >= 0)")
        if not group.get("weight_decay", 0.0) >= 0.0:
            raise ValueError(f"invalid weight_decay value: {group['weight_decay']} (must be >= 0)")

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (or, with ``set_to_none=False``, zero it in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()`` if one is given
        (it should recompute the loss and call backward, as in torch)."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if grad.shape != p.data.shape or type(grad) is not type(p.data):
                    raise RuntimeError(f"{type(self).__name__}.step: parameter of shape {p.shape} on "
                                       f"{p.device!r} has a gradient of shape {grad.shape} on "
                                       f"{device_of(grad)!r}")
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._init_state(p)
                self._update(p, grad, state, group, self._scratch_for(p, 0))
        return loss

    def _init_state(self, p: Tensor) -> dict[str, Any]:
        return {}

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any], scratch: Any) -> None:
        raise NotImplementedError

    def _scratch_for(self, p: Tensor, slot: int) -> Any:
        """A scratch array of ``p``'s shape, dtype and device: a view of a shared flat buffer
        (``slot`` picks one of several when an update needs more than one at a time)."""
        data = p.data
        key = (type(data), data.dtype, slot)  # the array type tells NumPy (host) from CuPy (device)
        buf = self._scratch.get(key)
        if buf is None or buf.size < data.size:
            # Size it for the largest parameter of its kind at once, so it is allocated once.
            size = max(q.data.size for g in self.param_groups for q in g["params"]
                       if (type(q.data), q.data.dtype) == key[:2])
            buf = self._scratch[key] = get_array_module(data).empty(max(size, data.size), dtype=data.dtype)
        return buf[:data.size].reshape(data.shape)

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {name: array or number}}, 'param_groups': [{..., 'params': [index]}]}``
        with parameters numbered in group order, as torch. Arrays are live references; the
        whole thing holds only arrays, numbers, tuples and lists, so it serializes without pickle.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by ``state_dict()``.

        Parameters are matched by position; state arrays are copied onto each parameter's
        device (floating ones cast to its dtype), so the loaded dict is never aliased.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        by_index: dict[int, Tensor] = {}
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(f"parameter group {i}: loaded state dict has {len(saved['params'])} "
                                 f"parameters, this optimizer has {len(group['params'])}")
            by_index.update(zip((int(k) for k in saved["params"]), group["params"]))
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved in state_dict["state"].items():
            if int(key) not in by_index:
                raise ValueError(f"loaded state dict has state for parameter {key}, which no group lists")
            p = by_index[int(key)]
            new_state[p] = {name: _to_param(value, p, f"state of parameter {key}, entry {name!r}")
                            for name, value in saved.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(v, list) else v  # e.g. betas after a JSON round trip
        self.state = new_state


def _to_param(value: Any, p: Tensor, where: str) -> Any:
    """A fresh copy of a saved state entry on ``p``'s device (floating arrays in ``p``'s dtype)."""
    if not is_array(value):
        return value
    if value.shape not in ((), p.shape):
        raise ValueError(f"{where}: shape {value.shape} does not match the parameter's shape {p.shape}")
    value = to_device(value, device_of(p.data))
    return value.astype(p.data.dtype if value.dtype.kind == "f" else value.dtype, copy=True)
