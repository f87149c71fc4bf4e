"""Noise predictors and the MNIST classifier: shapes, sizes, invariances, gradients, learning.

The references are independent of the code under test: the timestep embedding against a scalar
loop over math.cos/math.sin, the UNet's size against a closed-form count of its layers, every
backward against finite differences, permutation equivariance against a permuted forward.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from autograd import Tensor, gradcheck, no_grad
from autograd.optim import Adam
from autograd.random import manual_seed
from tinydiff.models import (MLPDenoiser, MNISTClassifier, UNet, build_model, count_parameters,
                             timestep_embedding)


def perturb(model, scale=0.05, seed=0):
    """Add noise to every parameter, so the zero-initialised layers stop hiding the rest."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data = p.data + (scale * rng.standard_normal(p.shape)).astype(p.dtype)
    return model


def tiny_unet(**kw):
    args = dict(in_channels=1, model_channels=4, out_channels=1, num_res_blocks=1,
                channel_mult=(1, 2), attention_resolutions=(4,), num_heads=2, num_groups=2,
                dropout=0.0, image_size=8)
    args.update(kw)
    return UNet(**args)


# ---------------------------------------------------------------- timestep embedding
@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-4), (np.float64, 1e-12)])
def test_timestep_embedding_matches_scalar_formula(xp, dtype, tol):
    ts = [0, 1, 7, 250, 999]
    dim = 9  # odd: the last column is padding
    emb = timestep_embedding(xp.asarray(ts), dim, dtype=dtype)
    assert emb.dtype == dtype and emb.shape == (5, dim) and emb.xp is xp
    got = emb.numpy()
    half = dim // 2
    for i, ti in enumerate(ts):
        for k in range(half):
            w = 10000.0 ** (-k / half)
            assert got[i, k] == pytest.approx(math.cos(ti * w), abs=tol)
            assert got[i, half + k] == pytest.approx(math.sin(ti * w), abs=tol)
        assert got[i, -1] == 0.0
    assert timestep_embedding(xp.asarray(ts), dim).dtype == np.float32  # the default


def test_timestep_embedding_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        timestep_embedding(np.zeros((2, 2)), 8)


# ---------------------------------------------------------------- UNet
def closed_form_unet_params(mc=32, mult=(1, 2, 2), nrb=2, attn_levels=(2,), cin=1, cout=1):
    """Parameters of the improved-diffusion layout, counted layer by layer from the formulas
    (conv k x k: k*k*in*out + out; linear: in*out + out; group norm: 2 * channels)."""
    emb = 4 * mc

    def res(ci, co):
        n = 2 * ci + 9 * ci * co + co + emb * co + co + 2 * co + 9 * co * co + co
        return n + (ci * co + co if ci != co else 0)

    def attn(c):
        return 2 * c + (3 * c * c + 3 * c) + (c * c + c)

    n = (mc * emb + emb) + (emb * emb + emb) + (9 * cin * mc + mc)
    chans, ch = [mc], mc
    for level, m in enumerate(mult):
        for _ in range(nrb):
            n += res(ch, m * mc) + (attn(m * mc) if level in attn_levels else 0)
            ch = m * mc
            chans.append(ch)
        if level != len(mult) - 1:
            n += 9 * ch * ch + ch
            chans.append(ch)
    n += 2 * res(ch, ch) + attn(ch)
    for level, m in reversed(list(enumerate(mult))):
        for i in range(nrb + 1):
            n += res(ch + chans.pop(), m * mc) + (attn(m * mc) if level in attn_levels else 0)
            ch = m * mc
            if level and i == nrb:
                n += 9 * ch * ch + ch
    return n + 2 * ch + 9 * ch * cout + cout


def test_default_unet_size_and_shape():
    model = UNet().eval()
    n = count_parameters(model)
    assert 1_000_000 <= n <= 2_000_000
    assert n == closed_form_unet_params()
    assert count_parameters(UNet(attention_resolutions=())) == closed_form_unet_params(attn_levels=())
    x = Tensor(np.random.default_rng(0).standard_normal((1, 1, 28, 28)).astype(np.float32))
    with no_grad():
        out = model(x, np.array([900]))
    assert out.shape == (1, 1, 28, 28) and out.dtype == np.float32
    # Zero-initialised output conv: the untrained net predicts exactly zero noise.
    assert not out.data.any()


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="match no level"):
        UNet(attention_resolutions=(8,))
    with pytest.raises(ValueError, match="multiples of 4"):
        UNet()(Tensor(np.zeros((1, 1, 30, 30), np.float32)), 0)
    with pytest.raises(ValueError, match="without num_classes"):
        tiny_unet()(Tensor(np.zeros((1, 1, 8, 8), np.float32)), 0, y=np.array([1]))


def test_unet_is_equivariant_to_batch_permutation_and_responds_to_t():
    manual_seed(1)
    model = perturb(tiny_unet(channel_mult=(1, 2), image_size=16, attention_resolutions=(8,))).eval()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 1, 16, 16)).astype(np.float32)
    t = np.array([0, 10, 200, 500, 999])
    perm = rng.permutation(5)
    with no_grad():
        out = model(Tensor(x), t).numpy()
        out_perm = model(Tensor(x[perm]), t[perm]).numpy()
        out_other_t = model(Tensor(x), t + 1).numpy()
        out_int_t = model(Tensor(x[:1]), 10).numpy()
    np.testing.assert_allclose(out_perm, out[perm], rtol=1e-5, atol=1e-5)
    assert np.abs(out_other_t - out).max() > 1e-4          # t = 0 vs t = 1 is a small change ...
    np.testing.assert_allclose(out_int_t, model(Tensor(x[:1]), np.array([10])).numpy())


def test_unet_gradcheck_input_and_parameters():
    # Two levels of a 4x4 input (4 -> 2): every kind of block, at a cost of two forward passes
    # per checked element.
    manual_seed(2)
    model = perturb(tiny_unet(image_size=4, attention_resolutions=(2,)), scale=0.2).to(np.float64)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 1, 4, 4)), requires_grad=True)
    t = np.array([3, 77])
    params = dict(model.named_parameters())
    names = ["time_embed.0.bias", "input_blocks.1.0.in_conv.bias", "input_blocks.2.0.op.bias",
             "input_blocks.3.1.qkv.bias", "input_blocks.3.1.proj_out.bias",
             "middle_block.0.emb_proj.bias", "output_blocks.0.0.skip_connection.bias",
             "output_blocks.1.2.conv.bias", "output_blocks.2.0.out_norm.weight", "out_conv.weight"]
    chosen = [params[n] for n in names]
    assert gradcheck(lambda x, *ps: model(x, t), [x] + chosen, atol=1e-6, rtol=1e-4)


def test_unet_class_conditioning_and_null_label():
    manual_seed(3)
    model = perturb(tiny_unet(num_classes=3)).eval()
    assert model.label_emb.weight.shape == (4, 16)  # three classes and "no label"
    x = Tensor(np.random.default_rng(3).standard_normal((2, 1, 8, 8)).astype(np.float32))
    t = np.array([5, 5])
    with no_grad():
        a = model(x, t, y=np.array([0, 0])).numpy()
        b = model(x, t, y=np.array([2, 2])).numpy()
        null = model(x, t).numpy()
        null_explicit = model(x, t, y=np.array([3, 3])).numpy()
    assert np.abs(a - b).max() > 1e-3
    np.testing.assert_array_equal(null, null_explicit)
    assert np.abs(null - a).max() > 1e-3
    with pytest.raises(ValueError, match=r"0\.\.3"):
        model(x, t, y=np.array([0, 4]))


def test_build_model_round_trip():
    for model in (perturb(tiny_unet(num_classes=2)), perturb(MLPDenoiser(num_classes=4)),
                  perturb(MNISTClassifier())):
        model.eval()
        clone = build_model(model.config).eval()
        assert type(clone) is type(model) and clone.config == model.config
        clone.load_state_dict(model.state_dict())
        if isinstance(model, MNISTClassifier):
            x, args = np.random.default_rng(0).standard_normal((2, 1, 28, 28)), ()
        elif isinstance(model, UNet):
            x, args = np.random.default_rng(0).standard_normal((2, 1, 8, 8)), (np.array([1, 2]), [0, 1])
        else:
            x, args = np.random.default_rng(0).standard_normal((2, 2)), (np.array([1, 2]), [0, 1])
        x = Tensor(x.astype(np.float32))
        with no_grad():
            np.testing.assert_array_equal(clone(x, *args).numpy(), model(x, *args).numpy())
    with pytest.raises(ValueError, match="unknown model name"):
        build_model({"name": "transformer"})
    with pytest.raises(ValueError, match="bad arguments"):
        build_model({"name": "mlp", "depth": 3})


def test_adam_steps_reduce_a_denoising_loss_on_fixed_data():
    manual_seed(4)
    model = tiny_unet(dropout=0.1)
    rng = np.random.default_rng(4)
    # Fixed "images" (a bright square) and fixed noise at fixed noise levels.
    x0 = -np.ones((8, 1, 8, 8), np.float32)
    x0[:, :, 2:6, 2:6] = 1.0
    noise = rng.standard_normal(x0.shape).astype(np.float32)
    t = rng.integers(0, 1000, size=8)
    abar = np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2)[:, None, None, None] ** 2
    xt = Tensor((np.sqrt(abar) * x0 + np.sqrt(1 - abar) * noise).astype(np.float32))
    target = Tensor(noise)
    opt = Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = ((model(xt, t) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(float((noise ** 2).mean()), rel=1e-5)  # zero output at init
    assert np.mean(losses[-5:]) < 0.7 * losses[0]


# ---------------------------------------------------------------- MLP
def test_mlp_shapes_and_gradcheck():
    manual_seed(5)
    model = MLPDenoiser(hidden_dim=16, num_layers=2, time_embed_dim=8, num_classes=3)
    x = np.random.default_rng(5).standard_normal((4, 2)).astype(np.float32)
    assert model(Tensor(x), np.array([0, 1, 2, 3])).shape == (4, 2)
    assert model(Tensor(x), 7, y=[0, 1, 2, 3]).shape == (4, 2)
    model.to(np.float64)
    x64 = Tensor(x.astype(np.float64), requires_grad=True)
    t, y = np.array([0, 10, 500, 999]), np.array([0, 1, 2, 3])
    assert gradcheck(lambda x, w, b: model(x, t, y), [x64, model.layers[0].weight, model.out.bias])


def test_mlp_conditioning_changes_output_and_null_label_is_default():
    manual_seed(6)
    model = MLPDenoiser(hidden_dim=32, num_classes=2)
    x = Tensor(np.random.default_rng(6).standard_normal((3, 2)).astype(np.float32))
    with no_grad():
        a = model(x, 5, y=[0, 0, 0]).numpy()
        b = model(x, 5, y=[1, 1, 1]).numpy()
        np.testing.assert_array_equal(model(x, 5).numpy(), model(x, 5, y=[2, 2, 2]).numpy())
        assert np.abs(model(x, 6, y=[0, 0, 0]).numpy() - a).max() > 1e-6
    assert np.abs(a - b).max() > 1e-4


# ---------------------------------------------------------------- classifier
def test_classifier_shapes_and_gradcheck():
    manual_seed(7)
    model = MNISTClassifier()
    x = np.random.default_rng(7).standard_normal((3, 1, 28, 28)).astype(np.float32)
    assert model(Tensor(x)).shape == (3, 10)
    feats = model.features(Tensor(x))
    assert feats.shape == (3, 128) and (feats.numpy() >= 0).all()
    model.to(np.float64)
    x64 = Tensor(x[:1].astype(np.float64))
    # conv1's bias: its gradient runs back through every layer.
    assert gradcheck(lambda b: model(x64), [model.conv1.bias])


@pytest.mark.slow
def test_classifier_reaches_98_percent_on_mnist_in_one_epoch(mnist_dir):
    from tinydiff.data.mnist import load_mnist
    from tinydiff.models import classifier_accuracy, fit_classifier

    manual_seed(0)
    model = MNISTClassifier()
    fit_classifier(model, *load_mnist("train", data_dir=mnist_dir), epochs=1, progress=False)
    assert classifier_accuracy(model, *load_mnist("test", data_dir=mnist_dir)) >= 0.98
