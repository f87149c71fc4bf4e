"""All array math on the engine's hot paths goes through the array's own module: no silent host
round trips for CuPy arrays.

Two guards, so that a regression fails here on a machine without a GPU:

1. Static (AST): the engine modules below never import numpy (or cupy: that comes from
   ``autograd.backend``, where it is optional), never import the name ``numpy`` from elsewhere,
   and never call the host-transfer functions ``to_numpy``/``asnumpy``. Outside the scanned
   set by design: ``backend.py`` (it *is* the dispatch), ``gradcheck.py`` (finite differences
   are computed on the host in float64), ``random.py`` (one generator per backend),
   ``serialization.py`` (.npz files live on the host), ``graph.py`` (a debugging view) and
   ``derivatives.py`` (a doc generator).

2. Runtime: ``FakeCupy`` stands in for the ``cupy`` module inside ``autograd.backend``, and its
   arrays, ``DeviceArray``, are a ``numpy.ndarray`` subclass that behaves as a CuPy array would
   on the points that matter: its math stays a ``DeviceArray`` (``__array_ufunc__`` re-wraps),
   mixing it with a host float array raises (CuPy raises ``TypeError``), calling a ``numpy.*``
   function on it raises (the engine must call ``x.xp.*``), and every ``asnumpy`` transfer is
   counted. Each op then runs forward and backward on such data and must return device arrays,
   agree with the plain NumPy run, and make no transfer. (A bare ``numpy.asarray(device_array)``
   cannot be intercepted for an ndarray subclass; it is caught by its effect: its result is a
   host array, which either fails the type check or mixes with device arrays and raises.)
"""
from __future__ import annotations

import ast
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest

import autograd
import autograd.backend as backend
from autograd import Tensor

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ["autograd/tensor.py", "autograd/ops", "autograd/functional", "autograd/nn", "autograd/optim"]
# module -> why it may import numpy. Keep this short and justified.
NUMPY_ALLOWED = {
    "autograd/nn/init.py": "parameters are created and filled on the host from the NumPy default "
                           "generator (so a seed gives the same weights on every device), then moved",
}
HOST_TRANSFERS = {"to_numpy", "asnumpy"}
# (module, function) -> why it may move data to the host.
TRANSFER_ALLOWED = {
    ("autograd/tensor.py", "numpy"): "Tensor.numpy() is the user's one explicit way off the device",
}


def engine_modules() -> list[Path]:
    files = []
    for entry in SCANNED:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _enclosing_functions(tree: ast.AST) -> dict[ast.AST, str]:
    """Each node -> the name of the innermost function (or method) around it, if any."""
    owner: dict[ast.AST, str] = {}

    def visit(node: ast.AST, name: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else name
            if inner is not None:
                owner[child] = inner
            visit(child, inner)
    visit(tree, None)
    return owner


def violations(source: str, numpy_allowed: bool = False,
               transfers_allowed_in: frozenset[str] = frozenset()) -> list[str]:
    """Lines of ``source`` that bypass the array's own module, each with the reason."""
    found = []
    tree = ast.parse(source)
    owner = _enclosing_functions(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "cupy" or (top == "numpy" and not numpy_allowed):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            top = (node.module or "").split(".")[0]
            names = {a.name for a in node.names}
            if top == "cupy" or (top == "numpy" and not numpy_allowed):
                found.append(f"line {node.lineno}: from {node.module} import ...")
            elif names & ({"cupy"} | ({"numpy"} if not numpy_allowed else set())):
                found.append(f"line {node.lineno}: from {node.module} import "
                             f"{', '.join(sorted(names & {'numpy', 'cupy'}))}")
        elif owner.get(node) not in transfers_allowed_in:
            if isinstance(node, ast.Name) and node.id in HOST_TRANSFERS:
                found.append(f"line {node.lineno}: {node.id} (a host transfer)")
            elif isinstance(node, ast.Attribute) and node.attr in HOST_TRANSFERS:
                found.append(f"line {node.lineno}: .{node.attr} (a host transfer)")
    return found


def test_the_scanned_set_is_not_empty_and_the_allowlist_is_current():
    files = {str(p.relative_to(ROOT)) for p in engine_modules()}
    assert "autograd/tensor.py" in files and "autograd/ops/arithmetic.py" in files
    stale = set(NUMPY_ALLOWED) - files
    assert not stale or not (ROOT / "autograd/nn").is_dir(), f"allowlisted but missing: {stale}"


@pytest.mark.parametrize("path", engine_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_modules_do_not_import_numpy_or_move_data_to_the_host(path):
    rel = str(path.relative_to(ROOT))
    allowed = frozenset(fn for module, fn in TRANSFER_ALLOWED if module == rel)
    bad = violations(path.read_text(), numpy_allowed=rel in NUMPY_ALLOWED, transfers_allowed_in=allowed)
    assert not bad, f"{rel} bypasses x.xp / get_array_module:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("source, expected", [
    ("import numpy as np\nout = np.asarray(x)", "import numpy"),
    ("from numpy import exp", "from numpy import"),
    ("import numpy.linalg", "import numpy.linalg"),
    ("from autograd.backend import numpy", "import numpy"),
    ("def f(x):\n    return to_numpy(x)", "to_numpy (a host transfer)"),
    ("y = backend.to_numpy(x)", ".to_numpy"),
    ("def f(x):\n    return cupy.asnumpy(x)", ".asnumpy"),
    ("import cupy", "import cupy"),
])
def test_the_static_check_flags_each_way_around(source, expected):
    assert any(expected in v for v in violations(source))


def test_the_static_check_passes_array_module_code_and_allowlisted_transfers():
    assert violations("def f(x):\n    return x.xp.exp(x.data) + get_array_module(x.data).ones(3)") == []
    source = "def numpy(self):\n    return to_numpy(self.data)\ndef other(self):\n    return to_numpy(self)"
    assert violations(source, transfers_allowed_in=frozenset({"numpy"})) == ["line 4: to_numpy (a host transfer)"]


# ---------------------------------------------------------------- the runtime guard
class HostRoundTrip(AssertionError):
    pass


class DeviceArray(np.ndarray):
    """An ndarray that plays a CuPy array: its math stays on the 'device'."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if out is not None:
            kwargs["out"] = tuple(_to_base(o, ufunc.__name__) for o in out)
        result = getattr(ufunc, method)(*(_to_base(i, ufunc.__name__) for i in inputs), **kwargs)
        return _to_device(result)

    def __array_function__(self, func, types, args, kwargs):
        raise HostRoundTrip(f"numpy.{func.__name__} was called on device data; use x.xp.{func.__name__}")


def _to_base(x, where, host_ok=False):
    """Unwrap device arrays for NumPy; a host float array among them is a device mix-up."""
    if isinstance(x, DeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, np.ndarray) and x.dtype.kind in "fc" and not host_ok:
        raise HostRoundTrip(f"{where}: a host float array of shape {x.shape} met device data "
                            f"(CuPy raises TypeError here)")
    if isinstance(x, (list, tuple)):
        return type(x)(_to_base(i, where, host_ok) for i in x)
    return x


def _to_device(x):
    if isinstance(x, DeviceArray) or x is None:
        return x
    if isinstance(x, (np.ndarray, np.generic)):  # CuPy reductions give 0-d arrays, not scalars
        return np.asarray(x).view(DeviceArray)
    if isinstance(x, tuple):
        return tuple(_to_device(i) for i in x)
    return x


class _DeviceFunction:
    """A numpy function or ufunc as the fake cupy module exposes it."""

    def __init__(self, fn, host_ok):
        self._fn, self._host_ok = fn, host_ok

    def __call__(self, *args, **kwargs):
        name = getattr(self._fn, "__name__", "?")
        args = tuple(_to_base(a, name, self._host_ok) for a in args)
        kwargs = {k: _to_base(v, name, self._host_ok) for k, v in kwargs.items()}
        return _to_device(self._fn(*args, **kwargs))

    def __getattr__(self, name):  # ufunc methods: add.at, maximum.reduce, ...
        attr = getattr(self._fn, name)
        return _DeviceFunction(attr, self._host_ok) if callable(attr) else attr


class FakeCupy:
    """Enough of the cupy module for the engine: numpy's functions, device-wrapped."""
    __name__ = "fakecupy"
    ndarray = DeviceArray
    # Uploads are explicit and fine (that is how data reaches the GPU).
    UPLOADS = {"asarray", "array", "ascontiguousarray"}

    def __init__(self):
        self.transfers = 0

    def __getattr__(self, name):
        attr = getattr(np, name)
        if callable(attr) and not isinstance(attr, type):
            return _DeviceFunction(attr, host_ok=name in self.UPLOADS)
        return attr  # dtypes and constants

    @property
    def lib(self):
        """``cupy.lib.stride_tricks.as_strided``: a strided view of device data is device data."""
        def as_strided(a, shape=None, strides=None):
            return _to_device(np.lib.stride_tricks.as_strided(_to_base(a, "as_strided"), shape, strides))
        return SimpleNamespace(stride_tricks=SimpleNamespace(as_strided=as_strided))

    def asnumpy(self, a):
        self.transfers += 1
        return np.array(a.view(np.ndarray) if isinstance(a, DeviceArray) else a)


@pytest.fixture
def fake_cupy(monkeypatch):
    fake = FakeCupy()
    monkeypatch.setattr(backend, "cupy", fake)
    return fake


def _functional():
    try:
        import autograd.functional as F
        return F
    except ImportError:
        return None


F = _functional()
needs_F = pytest.mark.skipif(F is None, reason="autograd.functional is not importable yet")

rng = np.random.default_rng(0)
IMG = rng.normal(size=(2, 4, 4, 4))


def _cases():
    """(name, fn of Tensors, input arrays); every float input requires grad."""
    a, b, m = rng.normal(size=(2, 3)), rng.normal(size=(3,)), rng.normal(size=(3, 4))
    pos = rng.uniform(0.5, 2.0, size=(2, 3))
    cases = [
        ("add/sub/mul/div broadcast", lambda x, y: (x + y) * (x - y) / (y * y + 1), a, b),
        ("python numbers", lambda x: 2.0 - x * 3 + x / 4 + 2 ** x + x ** 3, a),
        ("pow tensor", lambda x, y: x ** y, pos, b),
        ("matmul batched/vector", lambda x, y: (x.reshape(1, 2, 3) @ y).sum(0) + (x[1] @ y) + (x @ y[:, 0])[:, None]
         + (x[0] @ y[:, 1]), a, m),
        ("unary", lambda x: x.exp() + x.tanh() + x.sigmoid() + x.relu() + x.sin() + x.cos() + x.abs() - x, a),
        ("log sqrt", lambda x: x.log() + x.sqrt(), pos),
        ("reductions", lambda x: x.sum(0) + x.mean(0, keepdims=True) + x.max(0) + x.var(0), a),
        ("shape ops", lambda x: x.reshape(3, 2).T.unsqueeze(0).flatten().view(2, 3).permute(1, 0)
         .transpose(0, 1).squeeze(), a),
        ("expand", lambda x: x[:1].expand(4, 3), a),
        ("getitem", lambda x: x[[0, 0, 1], ::-1] + x[np.array([1, 0, 1]), -1:], a),
        ("cat/stack", lambda x, y: autograd.cat([x, y], 0).sum(0) + autograd.stack([x[0], y[1]], 1).sum(1), a, a),
        ("astype", lambda x: x.astype(np.float32).astype(np.float64), a),
    ]
    if F is not None:
        cases += [
            ("F.conv2d", lambda x, w, c: F.conv2d(x, w, c, stride=1, padding=1), IMG,
             rng.normal(size=(3, 4, 3, 3)), rng.normal(size=3)),
            ("F.group_norm", lambda x, w, c: F.group_norm(x, 2, w, c), IMG, rng.normal(size=4), rng.normal(size=4)),
            ("F.layer_norm", lambda x: F.layer_norm(x, (4,)), IMG),
            ("F.activations", lambda x: F.silu(x) + F.gelu(x) + F.relu(x) + F.sigmoid(x) + F.tanh(x), a),
            ("F.softmax", lambda x: F.softmax(x, dim=-1) + F.log_softmax(x, dim=0), a),
            ("F.attention", lambda q, k, v: F.scaled_dot_product_attention(q, k, v),
             rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 3))),
            ("F.linear", lambda x, w, c: F.linear(x, w, c), a, rng.normal(size=(5, 3)), rng.normal(size=5)),
            ("F.mse_loss", lambda x, y: F.mse_loss(x, y), a, a[::-1]),
            ("F.cross_entropy", lambda x: F.cross_entropy(x, np.array([0, 2])), a),
            ("F.pool/interpolate", lambda x: F.avg_pool2d(F.interpolate(x, scale_factor=2), 2), IMG),
            ("F.embedding", lambda w: F.embedding(np.array([1, 0, 1]), w), m),
        ]
    return cases


CASES = _cases()


def _run(fn, arrays, wrap):
    xs = [Tensor(wrap(a.copy()), requires_grad=True) for a in arrays]
    out = fn(*xs)
    out.backward(wrap(np.ones(out.shape)), retain_graph=True)
    out.graph()  # the gradient norms are computed on the device too
    return out, xs


@pytest.mark.parametrize("name, fn, arrays", [(c[0], c[1], c[2:]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_ops_keep_device_arrays_on_the_device(name, fn, arrays, fake_cupy):
    ref_out, ref_xs = _run(fn, arrays, lambda a: a)
    out, xs = _run(fn, arrays, lambda a: a.view(DeviceArray))
    assert out.device == "cuda"
    assert type(out.data) is DeviceArray, f"{name}: the result came back as {type(out.data).__name__}"
    np.testing.assert_allclose(out.data.view(np.ndarray), ref_out.data, rtol=1e-12)
    for k, (x, ref) in enumerate(zip(xs, ref_xs)):
        assert type(x.grad) is DeviceArray, f"{name}: the gradient of input {k} is {type(x.grad).__name__}"
        np.testing.assert_allclose(x.grad.view(np.ndarray), ref.grad, rtol=1e-10, atol=1e-12)
    assert fake_cupy.transfers == 0, f"{name}: {fake_cupy.transfers} device-to-host transfers"


def test_the_fake_device_catches_host_math(fake_cupy):
    """The runtime guard can fail: each way of leaving the device is caught."""
    x = np.arange(3.0).view(DeviceArray)
    with pytest.raises(HostRoundTrip, match="numpy.concatenate"):
        np.concatenate([x, x])
    with pytest.raises(HostRoundTrip, match="host float array"):
        x * np.ones(3)
    assert type(np.asarray(x)) is np.ndarray  # a silent downcast: caught by the type checks above
    backend.to_numpy(x)
    assert fake_cupy.transfers == 1
    assert backend.get_array_module(x) is fake_cupy and backend.device_of(x) == "cuda"


@needs_F
def test_optimizers_step_on_the_device(fake_cupy):
    from autograd import optim
    from autograd.nn import Parameter
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.1),
                 lambda ps: optim.AdamW(ps, lr=0.1)):
        p = Parameter(Tensor(rng.normal(size=(3, 2)).view(DeviceArray)))
        opt = make([p])
        for _ in range(2):
            opt.zero_grad()
            (p * p).sum().backward()
            optim.clip_grad_norm_([p], 1.0)
            opt.step()
        assert type(p.data) is DeviceArray and type(p.grad) is DeviceArray
    assert fake_cupy.transfers == 0
