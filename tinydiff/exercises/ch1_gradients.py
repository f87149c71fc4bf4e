"""Chapter 1, gradients by hand: the learner writes each op's backward on NumPy arrays.

Every check wraps the learner's backward in an autograd node whose forward is the op's plain
definition, and hands it to ``autograd.gradcheck``: the learner's vector-Jacobian product must
match float64 central differences of the forward, on hypothesis-drawn shapes and values.
Before that, each returned gradient must have its input's shape (the unbroadcast step).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograd.gradcheck import GradcheckError, central_differences, gradcheck
from autograd.tensor import Tensor, make_node
from tinydiff.exercises.grading import Exercise, Failure, as_array, call, describe, for_all

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def values(shape: Any, lo: float = -2.0, hi: float = 2.0) -> st.SearchStrategy:
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, width=64))


def away_from_zero(shape: Any) -> st.SearchStrategy:
    """Values in [-2, -0.5] u [0.5, 2]: finite differences of 1/b stay accurate."""
    return st.tuples(values(shape, 0.5, 2.0), hnp.arrays(np.bool_, shape)).map(
        lambda p: np.where(p[1], -p[0], p[0]))


def check_backward(expr: str, names: Sequence[str], forward: Callable[..., np.ndarray],
                   learner: Callable[[list, np.ndarray, np.ndarray], Any], inputs: Sequence[np.ndarray],
                   example: str, shape_advice: str = "") -> None:
    """The learner's gradients (``learner(inputs, y, grad)``) have the inputs' shapes and match
    central differences of sum(forward(inputs) * grad) through gradcheck, input by input."""
    inputs = [np.array(a, dtype=np.float64) for a in inputs]
    y = forward(*inputs)
    g = np.random.default_rng(0).standard_normal(np.shape(y))
    grads = call(learner, [a.copy() for a in inputs], np.array(y), g.copy())
    grads = grads if isinstance(grads, (tuple, list)) else (grads,)
    if len(grads) != len(names):
        raise Failure(f"the backward of {expr} should return {len(names)} gradient(s) "
                      f"({', '.join('grad_' + n for n in names)}); got {len(grads)}", example)
    for name, a, gr in zip(names, inputs, grads):
        arr = as_array(gr, f"the gradient of {name}")
        if arr.shape != a.shape:
            shapes = ", ".join(f"{n} of shape {x.shape}" for n, x in zip(names, inputs))
            advice = shape_advice if arr.shape == np.shape(y) and arr.shape != a.shape else ""
            raise Failure(f"the gradient of {name} in {expr} with {shapes} has shape {arr.shape}, expected "
                          f"{a.shape}" + (f": {advice}" if advice else ""), example, a.shape, arr.shape)

    for k, name in enumerate(names):
        tensors = [Tensor(a.copy(), requires_grad=(j == k)) for j, a in enumerate(inputs)]

        def fn(*ts: Tensor) -> Tensor:
            datas = [t.data for t in ts]
            out = np.asarray(forward(*datas), dtype=np.float64)

            def backward(gr: np.ndarray) -> tuple:
                got = call(learner, [d.copy() for d in datas], out.copy(), np.array(gr))
                got = got if isinstance(got, (tuple, list)) else (got,)
                return tuple(np.asarray(x, dtype=np.float64) for x in got)
            return make_node(out, tuple(ts), backward, expr)
        try:
            gradcheck(fn, tensors, atol=1e-5, rtol=1e-4)
        except GradcheckError as exc:
            data = inputs[k].copy()
            args = list(inputs)
            args[k] = data
            def loss(args: list = args) -> float:
                return float((forward(*args) * g).sum())
            numeric = central_differences(loss, data)
            analytic = as_array(grads[k], f"the gradient of {name}")
            raise Failure(f"the gradient of {name} in {expr} disagrees with float64 central differences "
                          f"(a sign error, or a missing factor?): {exc}",
                          example + f", upstream grad = {describe(g=g)[4:]}", numeric, analytic) from None


# --------------------------------------------------------------------------- the exercises

def _binary(expr: str, forward: Callable, fn: Callable, b_values: Callable) -> None:
    def prop(ex: tuple) -> None:
        a, b = ex
        check_backward(expr, ("a", "b"), forward, lambda i, y, g: fn(i[0], i[1], g), [a, b],
                       describe(a=a, b=b), "did you sum over the broadcast axes (unbroadcast)?")
    shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)
    for_all(shapes.flatmap(lambda s: st.tuples(values(s.input_shapes[0]), b_values(s.input_shapes[1]))), prop)


def grade_mul(fn: Callable) -> None:
    _binary("a * b", lambda a, b: a * b, fn, values)


def grade_div(fn: Callable) -> None:
    _binary("a / b", lambda a, b: a / b, fn, away_from_zero)


def _unary(expr: str, forward: Callable, fn: Callable, with_y: bool, lo: float = -2.0, hi: float = 2.0) -> None:
    def prop(x: np.ndarray) -> None:
        learner = (lambda i, y, g: fn(i[0], y, g)) if with_y else (lambda i, y, g: fn(i[0], g))
        check_backward(expr, ("x",), forward, learner, [x], describe(x=x))
    for_all(SHAPES.flatmap(lambda s: values(s, lo, hi)), prop)


def grade_tanh(fn: Callable) -> None:
    _unary("y = tanh(x)", np.tanh, fn, True)


def grade_exp(fn: Callable) -> None:
    _unary("y = exp(x)", np.exp, fn, True)


def grade_log(fn: Callable) -> None:
    _unary("y = log(x)", np.log, fn, False, 0.2, 3.0)


def grade_sigmoid(fn: Callable) -> None:
    _unary("y = sigmoid(x)", lambda x: 1.0 / (1.0 + np.exp(-x)), fn, True, -4.0, 4.0)


def _reduction(kind: str, forward: Callable, fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        x, axis, keepdims = ex
        expr = f"y = x.{kind}(axis={axis}, keepdims={keepdims})"
        check_backward(expr, ("x",), lambda a: forward(a, axis=axis, keepdims=keepdims),
                       lambda i, y, g: fn(i[0], g, axis, keepdims), [x],
                       describe(x=x) + f", axis = {axis}, keepdims = {keepdims}",
                       "grad has the reduced shape; reshape it (keepdims) and broadcast it back to x's shape")
    def draw(shape: tuple) -> st.SearchStrategy:
        axes = st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1))
        return st.tuples(values(shape), axes, st.booleans())
    for_all(SHAPES.flatmap(draw), prop)


def grade_sum(fn: Callable) -> None:
    _reduction("sum", np.sum, fn)


def grade_mean(fn: Callable) -> None:
    _reduction("mean", np.mean, fn)


def grade_matmul(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        a, b = ex
        check_backward("y = a @ b", ("a", "b"), lambda p, q: p @ q, lambda i, y, g: fn(i[0], i[1], g),
                       [a, b], describe(a=a, b=b))
    dims = st.tuples(*[st.integers(1, 4)] * 3)
    for_all(dims.flatmap(lambda d: st.tuples(values((d[0], d[1])), values((d[1], d[2])))), prop)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _along_axis(kind: str, forward: Callable, fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        x, axis = ex
        check_backward(f"y = {kind}(x, axis={axis})", ("x",), lambda a: forward(a, axis),
                       lambda i, y, g: fn(i[0], y, g, axis), [x], describe(x=x) + f", axis = {axis}",
                       "grad has the reduced shape; broadcast it back along the axis")
    for_all(SHAPES.flatmap(lambda s: st.tuples(values(s, -3, 3), st.integers(-len(s), len(s) - 1))), prop)


def grade_softmax(fn: Callable) -> None:
    _along_axis("softmax", _softmax, fn)


def grade_log_softmax(fn: Callable) -> None:
    _along_axis("log_softmax", lambda x, axis: np.log(_softmax(x, axis)), fn)


def grade_logsumexp(fn: Callable) -> None:
    _along_axis("logsumexp", lambda x, axis: np.log(np.exp(x).sum(axis=axis)), fn)


def grade_mse(fn: Callable) -> None:
    def prop(ex: tuple) -> None:
        pred, target = ex
        check_backward("loss = mean((pred - target)^2)", ("pred", "target"),
                       lambda p, q: np.mean((p - q) ** 2), lambda i, y, g: fn(i[0], i[1], g),
                       [pred, target], describe(pred=pred, target=target))
    for_all(SHAPES.flatmap(lambda s: st.tuples(values(s), values(s))), prop)


# --------------------------------------------------------------------------- stubs

def _stub(signature: str, doc: str) -> str:
    return f"def {signature}:\n    \"\"\"{doc.strip()}\n    \"\"\"\n    raise NotImplementedError\n"


REDUCTION_DOC = """{what}: y = x.{kind}(axis=axis, keepdims=keepdims); return dL/dx.

    Shapes: x any shape; grad has y's shape (the reduced one, or with 1s where keepdims).
    axis is None (every axis) or one int (possibly negative).
    Derive: dy_J/dx_I = {partial} when I falls in the reduced slice of J, else 0, so
    dL/dx_I = {result}.
"""

EXERCISES = [
    Exercise("1.1", "mul_backward", "y = a * b with broadcasting: dL/da, dL/db (the unbroadcast step)",
             _stub("mul_backward(a, b, grad)", """
    The backward of y = a * b, where a and b broadcast against each other (NumPy rules).

    Given grad = dL/dy (of y's broadcast shape), return (dL/da, dL/db), each of its input's shape.
    Derive: dy_i/da_i = b_i elementwise, so dL/da = grad * b *before* broadcasting is undone.
    An input of shape (3, 1) was broadcast to (3, 4): each a_i fed 4 outputs, so its gradient
    is the sum over that axis (the 'unbroadcast' step). Leading axes that broadcasting added
    are summed away entirely.
    Shapes: a (3, 1), b (3, 4) -> grad (3, 4); return shapes (3, 1) and (3, 4).
    Hint: write a helper unbroadcast(g, shape) first; you will reuse it in 1.2.
"""), ("dL/da = unbroadcast(grad * b, a.shape) and dL/db = unbroadcast(grad * a, b.shape).",
       "unbroadcast: sum over the leading axes that g has and shape lacks (axis=0 while "
       "g.ndim > len(shape)), then over every axis where shape has 1 and g does not (keepdims=True).",
       "np.broadcast_to(a, y.shape) is the forward of broadcasting; its backward is the sum."),
             "autograd/ops/arithmetic.py (mul, unbroadcast)", grade_mul,
             teaches="the chain rule elementwise, and why a broadcast input's gradient is a sum"),
    Exercise("1.2", "div_backward", "y = a / b with broadcasting: dL/da, dL/db",
             _stub("div_backward(a, b, grad)", """
    The backward of y = a / b, a and b broadcasting against each other.

    Return (dL/da, dL/db) of the inputs' shapes, given grad = dL/dy.
    Derive on paper: d(a/b)/da = 1/b and d(a/b)/db = -a / b^2. Mind the sign.
    Shapes as in 1.1: undo the broadcast with your unbroadcast.
"""), ("dL/da = unbroadcast(grad / b, a.shape).",
       "dL/db = unbroadcast(-grad * a / b**2, b.shape): the minus sign is the usual mistake."),
             "autograd/ops/arithmetic.py (div)", grade_div,
             teaches="the quotient rule, signs, and unbroadcasting again"),
    Exercise("1.3", "tanh_backward", "y = tanh(x): dL/dx in terms of the output y",
             _stub("tanh_backward(x, y, grad)", """
    The backward of y = tanh(x), elementwise. y = tanh(x) is given (the forward kept it).

    Return dL/dx (x's shape) from grad = dL/dy.
    Derive: tanh(x) = (e^x - e^-x) / (e^x + e^-x); by the quotient rule
    d tanh(x)/dx = 1 - tanh(x)^2. Writing it with y saves recomputing tanh.
"""), ("dy/dx = 1 - y^2; multiply by grad elementwise.",
       "1 - x**2 is not it: the derivative is in terms of y = tanh(x)."),
             "autograd/ops/unary.py (tanh)", grade_tanh,
             teaches="derivatives written with the output the forward saved"),
    Exercise("1.4", "exp_backward", "y = exp(x): dL/dx",
             _stub("exp_backward(x, y, grad)", """
    The backward of y = exp(x), elementwise; y = exp(x) is given. Return dL/dx.
    Derive: d e^x / dx = e^x = y.
"""), ("dL/dx = grad * y.",), "autograd/ops/unary.py (exp)", grade_exp,
             teaches="the one function that is its own derivative, and reusing the forward's output"),
    Exercise("1.5", "log_backward", "y = log(x): dL/dx",
             _stub("log_backward(x, grad)", """
    The backward of y = log(x) (natural log), elementwise, for x > 0. Return dL/dx.
    Derive: d log(x)/dx = 1/x.
"""), ("dL/dx = grad / x.",), "autograd/ops/unary.py (log)", grade_log,
             teaches="the derivative of the log, the heart of every log-likelihood"),
    Exercise("1.6", "sigmoid_backward", "y = sigmoid(x): dL/dx",
             _stub("sigmoid_backward(x, y, grad)", """
    The backward of y = sigmoid(x) = 1 / (1 + exp(-x)), elementwise; y is given. Return dL/dx.
    Derive: dy/dx = exp(-x) / (1 + exp(-x))^2; show that this equals y (1 - y).
"""), ("dy/dx = y * (1 - y).", "exp(-x)/(1+exp(-x)) = 1 - y."),
             "autograd/ops/unary.py (sigmoid)", grade_sigmoid,
             teaches="the logistic derivative y (1 - y), used again by SiLU in 2.2"),
    Exercise("1.7", "sum_backward", "y = x.sum(axis, keepdims): dL/dx",
             _stub("sum_backward(x, grad, axis, keepdims)",
                   REDUCTION_DOC.format(what="The backward of a sum", kind="sum", partial="1",
                                        result="grad_J broadcast back over the summed axis")),
             ("Every x in a summed slice gets the same gradient: the grad of that slice's output.",
              "Without keepdims, np.expand_dims(grad, axis) first (nothing to do when axis is None: grad "
              "is 0-d), then np.broadcast_to(..., x.shape)."),
             "autograd/ops/reduce.py (sum)", grade_sum,
             teaches="that the backward of a sum is a broadcast (and of a broadcast, a sum)"),
    Exercise("1.8", "mean_backward", "y = x.mean(axis, keepdims): dL/dx",
             _stub("mean_backward(x, grad, axis, keepdims)",
                   REDUCTION_DOC.format(what="The backward of a mean", kind="mean", partial="1/n "
                                        "(n = number of elements averaged)",
                                        result="grad_J / n broadcast back over the averaged axis")),
             ("As 1.7, divided by the number of elements in each averaged slice.",
              "n = x.size // grad.size."),
             "autograd/ops/reduce.py (mean)", grade_mean,
             teaches="the mean as a scaled sum"),
    Exercise("1.9", "matmul_backward", "y = a @ b (2-D): dL/da, dL/db",
             _stub("matmul_backward(a, b, grad)", """
    The backward of y = a @ b with a (n, k), b (k, m), y (n, m). Return (dL/da, dL/db).
    Derive: y_ij = sum_p a_ip b_pj, so dL/da_ip = sum_j grad_ij b_pj and
    dL/db_pj = sum_i a_ip grad_ij. Write both sums as matrix products.
    Shapes: dL/da must be (n, k) and dL/db (k, m): let the shapes guide the transposes.
"""), ("dL/da = grad @ b.T.", "dL/db = a.T @ grad."),
             "autograd/ops/arithmetic.py (matmul)", grade_matmul,
             teaches="index notation turned into matrix products; shapes as a check"),
    Exercise("1.10", "softmax_backward", "y = softmax(x, axis): dL/dx (the Jacobian-vector product)",
             _stub("softmax_backward(x, y, grad, axis)", """
    The backward of y = softmax(x) along ``axis``: y_i = exp(x_i) / sum_j exp(x_j); y is given.
    Return dL/dx (x's shape); grad = dL/dy has x's shape too.
    Derive: dy_i/dx_j = y_i (delta_ij - y_j). Contract with grad without forming the Jacobian:
    dL/dx_j = y_j (grad_j - sum_i grad_i y_i).
"""), ("dL/dx = y * (grad - (grad * y).sum(axis, keepdims=True)).",
       "keepdims=True is what lets the sum broadcast back along the axis."),
             "autograd/functional/attention.py (softmax)", grade_softmax,
             teaches="a Jacobian-vector product with a dense Jacobian, in O(n)"),
    Exercise("1.11", "log_softmax_backward", "y = log_softmax(x, axis): dL/dx",
             _stub("log_softmax_backward(x, y, grad, axis)", """
    The backward of y = log_softmax(x) = x - logsumexp(x) along ``axis``; y is given.
    Return dL/dx. Derive: dy_i/dx_j = delta_ij - softmax(x)_j, and softmax(x) = exp(y).
"""), ("dL/dx = grad - exp(y) * grad.sum(axis, keepdims=True).",),
             "autograd/functional/attention.py (log_softmax)", grade_log_softmax,
             teaches="why log_softmax has a cheaper, stabler backward than log(softmax)"),
    Exercise("1.12", "logsumexp_backward", "y = logsumexp(x, axis): dL/dx",
             _stub("logsumexp_backward(x, y, grad, axis)", """
    The backward of y = log(sum_j exp(x_j)) along ``axis`` (the axis is reduced away: y and
    grad have x's shape without that axis). Return dL/dx of x's shape.
    Derive: dy/dx_j = exp(x_j) / sum_k exp(x_k) = exp(x_j - y), the softmax.
"""), ("dL/dx = expand_dims(grad, axis) * exp(x - expand_dims(y, axis)).",),
             "autograd/functional/loss.py (cross_entropy uses logsumexp)", grade_logsumexp,
             teaches="that the gradient of logsumexp is the softmax"),
    Exercise("1.13", "mse_backward", "loss = mean((pred - target)^2): dL/dpred, dL/dtarget",
             _stub("mse_backward(pred, target, grad)", """
    The backward of the mean squared error L = (1/n) sum_i (pred_i - target_i)^2 (a scalar; n
    elements), as in DDPM's L_simple (eq. 14). grad = dL_total/dL is a 0-d array.
    Return (dL/dpred, dL/dtarget), each of pred's shape.
    Derive: dL/dpred_i = 2 (pred_i - target_i) / n; dL/dtarget_i is its negative.
"""), ("dL/dpred = grad * 2 * (pred - target) / pred.size.", "Don't forget the 1/n of the mean."),
             "autograd/functional/loss.py (mse_loss)", grade_mse,
             teaches="the gradient DDPM training follows, factor 2/n included"),
]
