"""Optimizers against hand-written reference loops of the published update rules.

Each reference below is written out in plain NumPy from the paper / torch documentation
(Adam in its bias-corrected m_hat, v_hat form), independently of the engine's in-place
rearrangements, and driven on the same quadratic with the same gradients.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from autograd import Tensor
from autograd.optim import SGD, Adam, AdamW, LinearWarmup, clip_grad_norm_

def leaf(array):
    """A trainable leaf (what nn.Parameter is; plain Tensors keep this file independent of nn)."""
    return Tensor(array, requires_grad=True)


# Quadratic bowl f(p) = 1/2 sum a (p - c)^2, grad = a (p - c): curvature differs per coordinate.
SHAPES = [(3, 4), (5,), (2, 1, 3)]


def make_problem(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = [rng.uniform(0.5, 3.0, s).astype(dtype) for s in SHAPES]
    c = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    p0 = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    return a, c, p0


def grad_of(a, c, p):
    return [ai * (pi - ci) for ai, ci, pi in zip(a, c, p)]


def run_engine(make_opt, steps, dtype=np.float64, lr_schedule=None):
    a, c, p0 = make_problem(dtype=dtype)
    params = [leaf(x.copy()) for x in p0]
    opt = make_opt(params)
    for k in range(steps):
        if lr_schedule is not None:
            opt.param_groups[0]["lr"] = lr_schedule(k)
        for p, g in zip(params, grad_of(a, c, [p.data for p in params])):
            p.grad = g
        opt.step()
    return [p.data for p in params], opt


def sgd_reference(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    a, c, p = make_problem()
    bufs = [None] * len(p)
    for _ in range(steps):
        grads = grad_of(a, c, p)
        new_p = []
        for i, (x, g) in enumerate(zip(p, grads)):
            g = g + weight_decay * x
            if momentum:
                bufs[i] = g.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * g
                g = g + momentum * bufs[i] if nesterov else bufs[i]
            new_p.append(x - lr * g)
        p = new_p
    return p


def adam_reference(steps, lr, betas=(0.9, 0.999), eps=1e-8, l2=0.0, decoupled=0.0, lr_schedule=None):
    """Kingma & Ba, Algorithm 1, plus L2 (Adam's weight_decay) or decoupled decay (AdamW)."""
    b1, b2 = betas
    a, c, p = make_problem()
    m = [np.zeros_like(x) for x in p]
    v = [np.zeros_like(x) for x in p]
    for t in range(1, steps + 1):
        step_lr = lr if lr_schedule is None else lr_schedule(t - 1)
        grads = grad_of(a, c, p)
        for i in range(len(p)):
            p[i] = p[i] * (1 - step_lr * decoupled)
            g = grads[i] + l2 * p[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1 ** t)
            v_hat = v[i] / (1 - b2 ** t)
            p[i] = p[i] - step_lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def assert_params_close(got, want, rtol=1e-10, atol=1e-12):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- SGD
@pytest.mark.parametrize("kw", [
    dict(),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3),
    dict(momentum=0.8, nesterov=True),
    dict(weight_decay=0.1),
    dict(momentum=0.9, weight_decay=0.05, nesterov=True),
    dict(momentum=0.5, dampening=0.5, weight_decay=0.2),
], ids=str)
def test_sgd_matches_reference(kw):
    got, _ = run_engine(lambda ps: SGD(ps, lr=0.05, **kw), steps=7)
    assert_params_close(got, sgd_reference(7, lr=0.05, **kw))


def test_sgd_rejects_bad_hyperparameters():
    p = [leaf(np.zeros(2))]
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        SGD(p, lr=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)


# ---------------------------------------------------------------------------- Adam / AdamW
@pytest.mark.parametrize("kw", [dict(), dict(betas=(0.8, 0.99), eps=1e-6), dict(eps=0.1)], ids=str)
def test_adam_matches_bias_corrected_reference(kw):
    got, opt = run_engine(lambda ps: Adam(ps, lr=0.01, **kw), steps=6)
    assert_params_close(got, adam_reference(6, lr=0.01, **kw))
    assert all(s["step"] == 6 for s in opt.state.values())


def test_adam_l2_weight_decay_matches_reference():
    got, _ = run_engine(lambda ps: Adam(ps, lr=0.01, weight_decay=0.3), steps=6)
    assert_params_close(got, adam_reference(6, lr=0.01, l2=0.3))


def test_adamw_decoupled_decay_matches_reference_and_differs_from_adam_l2():
    got_w, _ = run_engine(lambda ps: AdamW(ps, lr=0.01, weight_decay=0.3), steps=6)
    assert_params_close(got_w, adam_reference(6, lr=0.01, decoupled=0.3))
    got_l2, _ = run_engine(lambda ps: Adam(ps, lr=0.01, weight_decay=0.3), steps=6)
    # L2 decay is rescaled by 1/sqrt(v) along with the gradient; decoupled decay is not.
    diff = max(np.abs(w - l).max() for w, l in zip(got_w, got_l2))
    assert diff > 1e-3


def test_adamw_default_weight_decay_is_torchs():
    opt = AdamW([leaf(np.zeros(2))])
    assert opt.param_groups[0]["weight_decay"] == 1e-2 and opt.param_groups[0]["lr"] == 1e-3


def test_edited_learning_rate_is_used_at_the_next_step():
    schedule = lambda k: 0.02 / (1 + k)  # noqa: E731
    got, _ = run_engine(lambda ps: Adam(ps, lr=1.0), steps=5, lr_schedule=schedule)
    assert_params_close(got, adam_reference(5, lr=1.0, lr_schedule=schedule))


def test_param_groups_use_their_own_hyperparameters():
    a, c, p0 = make_problem()
    params = [leaf(x.copy()) for x in p0]
    opt = SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    for _ in range(3):
        for p, g in zip(params, grad_of(a, c, [p.data for p in params])):
            p.grad = g
        opt.step()
    ref_plain = sgd_reference(3, lr=0.1)
    ref_mom = sgd_reference(3, lr=0.5, momentum=0.9)
    assert_params_close([p.data for p in params], ref_plain[:2] + ref_mom[2:])


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, weight_decay=0.1), lambda ps: AdamW(ps)],
                         ids=["sgd", "adam", "adamw"])
def test_step_updates_in_place_and_keeps_float32(make):
    params = [leaf(np.ones(s, np.float32)) for s in SHAPES]
    arrays = [p.data for p in params]
    opt = make(params)
    for _ in range(2):
        for p in params:
            p.grad = np.full(p.shape, 0.5, np.float32)
        opt.step()
    for p, arr in zip(params, arrays):
        assert p.data is arr and p.data.dtype == np.float32 and not np.all(arr == 1)
    for state in opt.state.values():
        assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))


def test_parameters_without_grad_are_skipped():
    p, q = leaf(np.ones(3)), leaf(np.ones(3))
    opt = Adam([p, q], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    assert np.all(q.data == 1) and q not in opt.state and opt.state[p]["step"] == 1


def test_zero_grad():
    p = leaf(np.ones(3))
    opt = SGD([p], lr=0.1)
    p.grad = np.ones(3)
    opt.zero_grad(set_to_none=False)
    assert np.all(p.grad == 0)
    opt.zero_grad()
    assert p.grad is None


# ---------------------------------------------------------------------------- state dicts
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9), lambda ps: Adam(ps, lr=0.01),
                                  lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1)],
                         ids=["sgd", "adam", "adamw"])
def test_state_dict_resume_equals_uninterrupted_run(make, tmp_path):
    from autograd.serialization import load, save
    a, c, p0 = make_problem()

    def steps(params, opt, n):
        for _ in range(n):
            for p, g in zip(params, grad_of(a, c, [p.data for p in params])):
                p.grad = g
            opt.step()

    ref_params = [leaf(x.copy()) for x in p0]
    steps(ref_params, make(ref_params), 6)

    params = [leaf(x.copy()) for x in p0]
    opt = make(params)
    steps(params, opt, 3)
    save({"params": [p.data for p in params], "opt": opt.state_dict()}, tmp_path / "ck.npz")
    ck = load(tmp_path / "ck.npz")
    params2 = [leaf(x) for x in ck["params"]]
    opt2 = make(params2)
    opt2.load_state_dict(ck["opt"])
    steps(params2, opt2, 3)
    assert_params_close([p.data for p in params2], [p.data for p in ref_params], rtol=0, atol=0)


def test_load_state_dict_copies_and_casts_into_param_dtype():
    p = leaf(np.ones(3, np.float32))
    opt = Adam([p])
    saved = {"state": {0: {"step": 4, "exp_avg": np.full(3, 0.5), "exp_avg_sq": np.full(3, 0.25)}},
             "param_groups": [{"lr": 0.1, "betas": [0.5, 0.6], "eps": 1e-8, "weight_decay": 0.0, "params": [0]}]}
    opt.load_state_dict(saved)
    st = opt.state[p]
    assert st["step"] == 4 and st["exp_avg"].dtype == np.float32
    assert st["exp_avg"] is not saved["state"][0]["exp_avg"]
    assert opt.param_groups[0]["betas"] == (0.5, 0.6) and opt.param_groups[0]["lr"] == 0.1
    assert opt.param_groups[0]["params"] == [p]


def test_load_state_dict_errors():
    p = leaf(np.ones(3))
    opt = Adam([p])
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    bad = {"state": {0: {"step": 1, "exp_avg": np.zeros(4), "exp_avg_sq": np.zeros(3)}},
           "param_groups": [{**opt.state_dict()["param_groups"][0]}]}
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        opt.load_state_dict(bad)


# ---------------------------------------------------------------------------- convergence
def least_squares(seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(64, 5))
    y = X @ rng.normal(size=5) + 0.1 * rng.normal(size=64)
    return X, y, np.linalg.lstsq(X, y, rcond=None)[0]


@pytest.mark.parametrize("make,steps", [(lambda ps: SGD(ps, lr=0.1, momentum=0.9), 150),
                                        (lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True), 150),
                                        (lambda ps: Adam(ps, lr=0.05), 600),
                                        (lambda ps: AdamW(ps, lr=0.05, weight_decay=0.0), 600)],
                         ids=["sgd", "nesterov", "adam", "adamw"])
def test_converges_on_least_squares(make, steps):
    X, y, w_star = least_squares()
    Xt, yt = Tensor(X), Tensor(y)
    w = leaf(np.zeros(5))
    opt = make([w])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((Xt @ w - yt) ** 2).mean()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.data, w_star, atol=1e-3)


# ---------------------------------------------------------------------------- clipping
def test_clip_grad_norm_matches_numpy_norm():
    rng = np.random.default_rng(2)
    params = [leaf(np.zeros(s, np.float32)) for s in SHAPES] + [leaf(np.zeros(2, np.float32))]
    grads = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    total_ref = np.linalg.norm(np.concatenate([g.ravel().astype(np.float64) for g in grads]))
    total = clip_grad_norm_(params, max_norm=1.0)
    assert isinstance(total, float) and total == pytest.approx(total_ref, rel=1e-6)
    clipped = np.linalg.norm(np.concatenate([p.grad.ravel() for p in params[:3]]))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    for p, g in zip(params, grads):  # same direction, scaled by max_norm / total
        np.testing.assert_allclose(p.grad, g / total_ref, rtol=1e-5)
        assert p.grad.dtype == np.float32
    assert params[3].grad is None


@pytest.mark.parametrize("total", [0.3, 0.999, 1.001, 1.5])
def test_clip_grad_norm_scales_exactly_when_above_max_norm(total):
    p = leaf(np.zeros(4))
    p.grad = np.array([1.0, -2.0, 0.0, 2.0]) * (total / 3.0)
    before = p.grad.copy()
    assert clip_grad_norm_([p], max_norm=1.0) == pytest.approx(total)
    np.testing.assert_allclose(p.grad, before * min(1.0, 1.0 / (total + 1e-6)), rtol=1e-12)


def test_clip_grad_norm_inf_and_p_norms():
    p, q = leaf(np.zeros(3)), leaf(np.zeros(2))
    p.grad, q.grad = np.array([1.0, -4.0, 2.0]), np.array([3.0, 0.5])
    assert clip_grad_norm_([p, q], max_norm=100, norm_type=math.inf) == 4.0
    assert clip_grad_norm_([p, q], max_norm=100, norm_type=1) == pytest.approx(10.5)
    assert clip_grad_norm_([p, q], max_norm=1.0, norm_type=math.inf) == 4.0
    assert np.abs(np.concatenate([p.grad, q.grad])).max() == pytest.approx(1.0, rel=1e-5)


def test_clip_grad_norm_nonfinite():
    p = leaf(np.zeros(2))
    p.grad = np.array([np.nan, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


# ---------------------------------------------------------------------------- warmup
def test_linear_warmup_values_and_convention():
    p, q = leaf(np.zeros(1)), leaf(np.zeros(1))
    opt = SGD([{"params": [p]}, {"params": [q], "lr": 1.0}], lr=0.1)
    sched = LinearWarmup(opt, warmup_steps=4)
    seen = []
    for _ in range(6):
        seen.append(sched.get_last_lr())
        opt.step()
        sched.step()
    want = [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    np.testing.assert_allclose([s[0] for s in seen], [0.1 * w for w in want])
    np.testing.assert_allclose([s[1] for s in seen], want)


def test_linear_warmup_zero_steps_is_constant():
    opt = SGD([leaf(np.zeros(1))], lr=0.3)
    sched = LinearWarmup(opt, 0)
    assert sched.get_last_lr() == [0.3]
    sched.step()
    assert sched.get_last_lr() == [0.3]
    with pytest.raises(ValueError):
        LinearWarmup(opt, -1)


def test_linear_warmup_resume_through_state_dicts():
    def fresh():
        opt = Adam([leaf(np.zeros(1))], lr=0.4)
        return opt, LinearWarmup(opt, 10)
    opt, sched = fresh()
    for _ in range(3):
        sched.step()
    assert sched.get_last_lr() == [pytest.approx(0.16)]
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()

    opt2 = Adam([leaf(np.zeros(1))], lr=0.4)
    opt2.load_state_dict(opt_sd)  # lr now 0.16, initial_lr 0.4 from the saved groups
    sched2 = LinearWarmup(opt2, 10)
    assert sched2.base_lrs == [0.4]
    sched2.load_state_dict(sched_sd)
    assert sched2.get_last_lr() == [pytest.approx(0.16)]
    sched2.step()
    assert sched2.get_last_lr() == [pytest.approx(0.2)]
