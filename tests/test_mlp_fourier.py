"""MLPDenoiser's optional Fourier features of x (input_embed_dim, input_embed_scale)."""
from __future__ import annotations

import numpy as np
import pytest

from autograd import Tensor, gradcheck
from tinydiff.models import build_model

CFG = {"name": "mlp", "data_dim": 2, "hidden_dim": 8, "num_layers": 2, "time_embed_dim": 4,
       "input_embed_dim": 6, "input_embed_scale": 3.0}


def test_features_are_per_coordinate_sinusoids():
    model = build_model(CFG)
    x = np.array([[0.3, -1.2], [2.0, 0.5]])
    h = model._input(Tensor(x), np.array([0, 7]), None).data
    # Written out coordinate by coordinate, independently of the block matrix.
    w = 10000.0 ** (-np.arange(3) / 3)
    for i in range(2):
        a = 3.0 * x[:, i:i + 1] * w
        np.testing.assert_allclose(h[:, 2 + 3 * i:5 + 3 * i], np.cos(a), rtol=1e-12)
        np.testing.assert_allclose(h[:, 8 + 3 * i:11 + 3 * i], np.sin(a), rtol=1e-12)
    np.testing.assert_array_equal(h[:, :2], x)
    assert h.shape == (2, 2 + 12 + 4)


def test_gradient_in_x_matches_finite_differences():
    model = build_model(CFG)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    x = Tensor(np.random.default_rng(0).standard_normal((3, 2)), requires_grad=True)
    assert gradcheck(lambda x: model(x, np.array([1, 50, 900])), [x], atol=1e-6, rtol=1e-4)


def test_plain_config_unchanged_and_bad_values_refused():
    plain = {k: v for k, v in CFG.items() if not k.startswith("input_embed")}
    assert "input_embed_dim" not in build_model(plain).get_config()
    assert build_model(CFG).get_config()["input_embed_dim"] == 6
    for bad in (3, 0, True):
        with pytest.raises(ValueError, match="input_embed_dim must be an even int"):
            build_model({**CFG, "input_embed_dim": bad})
    with pytest.raises(ValueError, match="input_embed_scale must be a finite number > 0"):
        build_model({**CFG, "input_embed_scale": -1.0})


def test_a_fourier_run_trains_saves_and_evaluates(tmp_path):
    from tinydiff.evaluate import toy2d_metrics
    from tinydiff.run import sample_checkpoint
    from tinydiff.train import TrainConfig, Trainer
    model = {k: v for k, v in CFG.items()}
    cfg = TrainConfig.toy2d(model=model, steps=3, batch_size=16, timesteps=30, out_dir=str(tmp_path),
                            progress=False)
    Trainer(cfg).train()
    result, _ = sample_checkpoint(tmp_path / "checkpoint.npz", 50)
    assert np.isfinite(toy2d_metrics(result.samples, "moons", repeats=1).sw)
