"""nn: Module bookkeeping (registration, names, modes, state dicts), containers, layers wired to
their functional ops, and PyTorch's default initialisations checked against their formulas."""
from __future__ import annotations

import copy
import math
from collections import OrderedDict

import numpy as np
import pytest
from scipy import stats

from autograd import Tensor, nn
from autograd.nn import init
from autograd.random import manual_seed


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.GroupNorm(2, c)
        self.register_buffer("running", np.zeros(c, np.float32))
        self.register_buffer("cache", np.ones(1, np.float32), persistent=False)
        self.note = "plain attribute"

    def forward(self, x):
        return x + nn.SiLU()(self.norm(self.conv(x)))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.blocks = nn.ModuleList([Block(4), Block(4)])
        self.head = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Dropout(0.5), nn.Linear(8, 2))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x.mean(axis=(2, 3))) * self.scale


def x_img(seed=0, shape=(2, 4, 5, 5)):
    return Tensor(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


# ---------------------------------------------------------------------------- registration and names
def test_parameters_are_named_in_definition_order():
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["scale",
                     "blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
                     "blocks.1.conv.weight", "blocks.1.conv.bias", "blocks.1.norm.weight", "blocks.1.norm.bias",
                     "head.0.weight", "head.0.bias", "head.3.weight", "head.3.bias"]


def test_children_modules_and_buffers():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["blocks", "head"]
    assert list(net.children()) == [net.blocks, net.head]
    assert [n for n, _ in net.named_modules()][:5] == ["", "blocks", "blocks.0", "blocks.0.conv", "blocks.0.norm"]
    assert len(list(net.modules())) == 1 + 1 + 2 * 3 + 1 + 4
    assert [n for n, _ in net.named_buffers()] == ["blocks.0.running", "blocks.0.cache",
                                                   "blocks.1.running", "blocks.1.cache"]
    assert all(isinstance(b, Tensor) and not b.requires_grad for b in net.buffers())
    assert "note" not in dict(net.named_parameters()) and net.blocks[0].note == "plain attribute"


def test_parameter_is_a_grad_requiring_tensor_sharing_its_array():
    a = np.zeros(3, np.float32)
    p = nn.Parameter(a)
    assert isinstance(p, Tensor) and p.requires_grad and p.data is a and p.is_leaf
    assert type(p * 2) is Tensor  # results of ops are ordinary tensors
    assert repr(p).startswith("Parameter containing:\nTensor(")
    assert not nn.Parameter(a, requires_grad=False).requires_grad


def test_assignment_rules():
    lin = nn.Linear(2, 3)
    with pytest.raises(TypeError, match="Parameter or None"):
        lin.weight = Tensor(np.zeros((3, 2)))
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    lin.extra = nn.Parameter(np.zeros(1))
    assert [n for n, _ in lin.named_parameters()] == ["weight", "extra"]
    del lin.extra
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        lin.missing

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_shared_parameters_are_listed_once():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    seq = nn.Sequential(a, b)
    assert len(list(seq.parameters())) == 3
    assert seq.num_parameters() == 9 + 3 + 3
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_train_eval_propagates_and_controls_dropout():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    drop = net.head[2]
    x = Tensor(np.ones((200, 50), np.float32))
    assert drop(x) is x or np.array_equal(drop(x).data, x.data)  # identity in eval mode
    net.train()
    assert all(m.training for m in net.modules())
    y = drop(x).data
    kept = y != 0
    assert 0.4 < kept.mean() < 0.6 and np.allclose(y[kept], 2.0)  # survivors scaled by 1/(1-p)
    with pytest.raises(ValueError):
        net.train("no")


def test_zero_grad_and_requires_grad_():
    net = nn.Linear(3, 2)
    (net(Tensor(np.ones((1, 3), np.float32))).sum()).backward()
    assert net.weight.grad is not None
    net.zero_grad(set_to_none=False)
    assert np.all(net.weight.grad == 0)
    net.zero_grad()
    assert net.weight.grad is None and net.bias.grad is None
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    assert net.num_parameters(trainable_only=True) == 0 and net.num_parameters() == 8


def test_to_moves_in_place_and_casts():
    net = Net()
    params = list(net.parameters())
    assert net.to("cpu") is net
    assert net.to(np.float64) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net(x_img().astype(np.float64)).dtype == np.float64
    with pytest.raises(ValueError, match="unknown device"):
        net.to("tpu")


def test_to_device(xp):
    lin = nn.Linear(3, 2)
    lin.to("cuda" if xp.__name__ == "cupy" else "cpu")
    assert lin.weight.xp is xp and lin(Tensor(xp.ones((1, 3), dtype=xp.float32))).xp is xp


def test_deepcopy_gives_independent_parameters():
    net = Net()
    twin = copy.deepcopy(net)
    assert isinstance(twin.scale, nn.Parameter)
    twin.blocks[0].conv.weight.data += 1
    assert not np.allclose(twin.blocks[0].conv.weight.data, net.blocks[0].conv.weight.data)


# ---------------------------------------------------------------------------- state dicts
def test_state_dict_has_parameters_and_persistent_buffers_by_reference():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    # torch's order: each module's own parameters, then its own buffers, then its children
    assert list(sd)[:6] == ["scale", "blocks.0.running", "blocks.0.conv.weight", "blocks.0.conv.bias",
                            "blocks.0.norm.weight", "blocks.0.norm.bias"]
    assert "blocks.0.cache" not in sd
    assert sd["blocks.0.conv.weight"] is net.blocks[0].conv.weight.data
    assert net.state_dict(keep_vars=True)["scale"] is net.scale


def test_load_state_dict_round_trip_copies_into_existing_arrays():
    manual_seed(0)
    src = Net()
    manual_seed(1)
    dst = Net()
    arrays = [p.data for p in dst.parameters()]
    sd = {k: v.astype(np.float64) for k, v in src.state_dict().items()}  # dtype is cast back
    assert dst.load_state_dict(sd) == ([], [])
    for p, q, a in zip(src.parameters(), dst.parameters(), arrays):
        assert q.data is a and q.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data)
    x = x_img()
    src.eval(), dst.eval()
    np.testing.assert_array_equal(src(x).data, dst(x).data)


def test_strict_load_lists_every_missing_and_unexpected_key():
    net = Net()
    sd = dict(net.state_dict())
    del sd["head.0.bias"], sd["blocks.1.running"]
    sd["head.9.weight"] = np.zeros(1)
    before = {k: v.copy() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError) as err:
        net.load_state_dict({k: v + 1 for k, v in sd.items()})
    msg = str(err.value)
    assert "Error(s) in loading state_dict for Net" in msg
    assert 'Missing key(s) in state_dict: "blocks.1.running", "head.0.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "head.9.weight"' in msg
    for k, v in net.state_dict().items():  # a failed load changes nothing
        np.testing.assert_array_equal(v, before[k])
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["blocks.1.running", "head.0.bias"]
    assert result.unexpected_keys == ["head.9.weight"]


def test_shape_mismatch_names_the_key_and_both_shapes_even_when_not_strict():
    net = nn.Sequential(nn.Linear(3, 4))
    sd = dict(net.state_dict())
    sd["0.weight"] = np.zeros((3, 4), np.float32)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: copying a param with shape "
                                               r"\(3, 4\) from checkpoint, the shape in current model is \(4, 3\)"):
            net.load_state_dict(sd, strict=strict)
    sd["0.weight"] = "weights.npy"
    with pytest.raises(RuntimeError, match="value for 0.weight is a str, not an array"):
        net.load_state_dict(sd)


# ---------------------------------------------------------------------------- containers
def test_sequential_composes_in_order():
    manual_seed(0)
    a, b = nn.Linear(3, 5), nn.Linear(5, 2)
    seq = nn.Sequential(a, nn.SiLU(), b)
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    h = a(x).data
    want = b(Tensor(h / (1 + np.exp(-h)))).data
    np.testing.assert_allclose(seq(x).data, want, rtol=1e-6)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is b and list(seq)[1].__class__ is nn.SiLU
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == [seq[1], b]
    assert [n for n, _ in tail.named_children()] == ["1", "2"]  # slices keep their names, as torch
    seq.append(nn.Identity())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    named = nn.Sequential(OrderedDict([("fc", a), ("act", nn.SiLU())]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias"]
    with pytest.raises(IndexError):
        seq[4]


def test_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and layers[-1] is list(layers)[2]
    layers.append(nn.Linear(2, 1))
    layers.extend([nn.Identity()])
    assert len(layers) == 5 and [n for n, _ in layers.named_children()] == ["0", "1", "2", "3", "4"]
    assert len(list(layers.parameters())) == 8
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    del layers[0]
    assert [n for n, _ in layers.named_children()] == ["0", "1", "2", "3"]
    with pytest.raises(IndexError):
        layers[10]
    with pytest.raises(NotImplementedError):
        layers(Tensor(np.ones(2)))
    empty = nn.ModuleList()
    assert len(empty) == 0


def test_repr_looks_like_torch():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(8, 16), nn.SiLU(),
                        nn.ModuleList([nn.Linear(16, 4, bias=False), nn.Dropout(0.1)]),
                        nn.LayerNorm(4), nn.Embedding(10, 4), nn.Identity())
    assert repr(net) == """Sequential(
  (0): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (1): GroupNorm(8, 16, eps=1e-05, affine=True)
  (2): SiLU()
  (3): ModuleList(
    (0): Linear(in_features=16, out_features=4, bias=False)
    (1): Dropout(p=0.1)
  )
  (4): LayerNorm((4,), eps=1e-05, elementwise_affine=True)
  (5): Embedding(10, 4)
  (6): Identity()
)"""


# ---------------------------------------------------------------------------- layers vs numpy
def test_linear_forward_and_grads():
    lin = nn.Linear(3, 2)
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    y = lin(Tensor(x))
    np.testing.assert_allclose(y.data, x @ lin.weight.data.T + lin.bias.data, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(lin.weight.grad, np.ones((2, 5)) @ x, rtol=1e-5)
    np.testing.assert_allclose(lin.bias.grad, [5.0, 5.0])


def test_conv2d_forward_matches_a_loop():
    conv = nn.Conv2d(2, 3, (3, 2), stride=2, padding=1)
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 6)).astype(np.float32)
    y = conv(Tensor(x)).data
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    w, b = conv.weight.data, conv.bias.data
    ho, wo = (5 + 2 - 3) // 2 + 1, (6 + 2 - 2) // 2 + 1
    want = np.empty((1, 3, ho, wo))
    for o in range(3):
        for i in range(ho):
            for j in range(wo):
                want[0, o, i, j] = (xp[0, :, 2 * i:2 * i + 3, 2 * j:2 * j + 2] * w[o]).sum() + b[o]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_norm_layers_match_numpy():
    x = np.random.default_rng(0).normal(size=(2, 6, 3, 3)).astype(np.float32)
    gn = nn.GroupNorm(3, 6)
    gn.weight.data[:] = np.arange(6)
    gn.bias.data[:] = 1.0
    g = x.reshape(2, 3, -1)
    xhat = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(gn(Tensor(x)).data, xhat * np.arange(6)[:, None, None] + 1, rtol=1e-4, atol=1e-5)
    ln = nn.LayerNorm((3, 3), eps=1e-3)
    want = (x - x.mean((2, 3), keepdims=True)) / np.sqrt(x.var((2, 3), keepdims=True) + 1e-3)
    np.testing.assert_allclose(ln(Tensor(x)).data, want, rtol=1e-4, atol=1e-5)
    assert nn.GroupNorm(2, 4, affine=False).weight is None
    assert list(dict(nn.LayerNorm(4, elementwise_affine=False).named_parameters())) == []
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)


def test_embedding_activations_identity():
    emb = nn.Embedding(5, 3)
    idx = np.array([[4, 0], [0, 2]])
    np.testing.assert_array_equal(emb(idx).data, emb.weight.data[idx])
    x = Tensor(np.linspace(-3, 3, 7, dtype=np.float32))
    v = x.data.astype(np.float64)
    sig = 1 / (1 + np.exp(-v))
    for layer, want in [(nn.SiLU(), v * sig), (nn.Sigmoid(), sig), (nn.Tanh(), np.tanh(v)),
                        (nn.ReLU(), np.maximum(v, 0)), (nn.GELU(), v * stats.norm.cdf(v))]:
        np.testing.assert_allclose(layer(x).data, want, rtol=1e-5, atol=1e-6, err_msg=repr(layer))
    assert nn.Identity(3, foo=1)(x) is x


# ---------------------------------------------------------------------------- initialisation
def uniform_ok(values, bound):
    """All values inside [-bound, bound], reaching close to both ends, and uniform (KS test)."""
    v = np.asarray(values, np.float64).ravel()
    assert np.abs(v).max() <= bound * (1 + 1e-6)
    assert v.max() > 0.95 * bound and v.min() < -0.95 * bound
    assert stats.kstest(v, stats.uniform(loc=-bound, scale=2 * bound).cdf).pvalue > 1e-3


@pytest.mark.parametrize("make,fan_in", [(lambda: nn.Linear(300, 200), 300),
                                         (lambda: nn.Conv2d(16, 64, 3), 16 * 9),
                                         (lambda: nn.Conv2d(8, 40, (1, 5)), 8 * 5)])
def test_linear_and_conv_default_init_is_torchs(make, fan_in):
    manual_seed(0)
    layer = make()
    # torch: kaiming_uniform_(a=sqrt(5)) -> gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in)
    w_bound = math.sqrt(2 / 6) * math.sqrt(3 / fan_in)
    uniform_ok(layer.weight.data, w_bound)
    b = layer.bias.data
    assert np.abs(b).max() <= 1 / math.sqrt(fan_in) and b.std() > 0.4 / math.sqrt(fan_in)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32


def test_norm_and_embedding_default_init():
    gn, ln = nn.GroupNorm(4, 8), nn.LayerNorm(5)
    for m in (gn, ln):
        assert np.all(m.weight.data == 1) and np.all(m.bias.data == 0) and m.weight.dtype == np.float32
    manual_seed(0)
    emb = nn.Embedding(400, 50)
    assert stats.kstest(emb.weight.data.ravel().astype(np.float64), "norm").pvalue > 1e-3


def test_init_is_reproducible_under_manual_seed():
    manual_seed(7)
    a = Net()
    manual_seed(7)
    b = Net()
    manual_seed(8)
    c = Net()
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(a.head[0].weight.data, c.head[0].weight.data)


def test_init_functions():
    w = nn.Parameter(np.zeros((64, 32, 3, 3), np.float32))
    assert init._calculate_fan_in_and_fan_out(w) == (32 * 9, 64 * 9)
    with pytest.raises(ValueError, match="fewer than 2"):
        init._calculate_fan_in_and_fan_out(nn.Parameter(np.zeros(3)))
    init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu", generator=np.random.default_rng(0))
    uniform_ok(w.data, math.sqrt(2) * math.sqrt(3 / (64 * 9)))
    init.xavier_uniform_(w, gain=2.0)
    uniform_ok(w.data, 2.0 * math.sqrt(6 / (32 * 9 + 64 * 9)))
    init.uniform_(w, -0.5, 2.0)
    assert w.data.min() >= -0.5 and w.data.max() < 2.0 and abs(w.data.mean() - 0.75) < 0.02
    init.normal_(w, mean=3.0, std=0.5)
    assert abs(w.data.mean() - 3.0) < 0.01 and abs(w.data.std() - 0.5) < 0.01 and w.dtype == np.float32
    init.kaiming_normal_(w)  # leaky_relu a=0 -> gain sqrt(2), std = sqrt(2 / fan_in)
    assert abs(w.data.std() - math.sqrt(2 / (32 * 9))) < 0.01 * math.sqrt(2 / (32 * 9)) * 5
    init.zeros_(w)
    assert not w.data.any()
    init.ones_(w)
    assert np.all(w.data == 1)
    assert init.calculate_gain("tanh") == 5 / 3 and init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
