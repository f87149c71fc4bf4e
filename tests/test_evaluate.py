"""Evaluation: toy metrics against an independent sliced-W2 quadrature, FID identities, the
classifier cache (trained once, then loaded strictly), and the MNIST report on tiny models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from autograd.serialization import CheckpointError, load, save
from tinydiff import evaluate
from tinydiff.data.toy2d import sample_toy2d
from tinydiff.run import TrainConfig, sample_checkpoint
from tinydiff.train import Trainer

TINY_MLP = {"name": "mlp", "data_dim": 2, "hidden_dim": 32, "num_layers": 2, "time_embed_dim": 16}


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    cfg = TrainConfig.toy2d("8gaussians", model=dict(TINY_MLP), steps=30, batch_size=128, timesteps=50,
                            warmup_steps=5, out_dir=str(out), progress=False)
    Trainer(cfg).train()
    return out / "checkpoint.npz"


def sliced_w2_quadrature(x: np.ndarray, y: np.ndarray, angles: int = 720) -> float:
    """Sliced W2 of two equal-size 2D samples by a deterministic quadrature over the half circle
    (theta and theta + pi give the same 1D distance), instead of random directions."""
    theta = (np.arange(angles) + 0.5) * np.pi / angles
    dirs = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    px, py = np.sort(x @ dirs.T, axis=0), np.sort(y @ dirs.T, axis=0)
    return float(np.sqrt(np.mean((px - py) ** 2)))


# --------------------------------------------------------------------------- toy 2D

def test_toy_metrics_agree_with_a_quadrature_and_sit_at_the_floor_for_data():
    data = sample_toy2d("moons", 1500, 123)
    m = evaluate.toy2d_metrics(data, "moons", seed=4, repeats=3)
    draws = evaluate.reference_draws("moons", 1500, seed=4, repeats=3)
    expected = np.mean([sliced_w2_quadrature(data, ref) for ref, _ in draws])
    floor = np.mean([sliced_w2_quadrature(perfect, ref) for ref, perfect in draws])
    # 1000 random directions against a 720-angle quadrature: a few percent apart at most
    assert m.sw == pytest.approx(expected, rel=0.05)
    assert m.sw_floor == pytest.approx(floor, rel=0.05)
    assert m.sw_floor_range[0] <= m.sw_floor <= m.sw_floor_range[1]
    # Fresh data is a perfect model: within the floor's own spread (measured 0.8-1.8 at n=1500-10000)
    assert 0.5 < m.sw_ratio < 2.0
    assert abs(m.mmd2) < 5e-3 and abs(m.mmd2_floor) < 5e-3


def test_toy_metrics_see_a_wrong_distribution():
    m = evaluate.toy2d_metrics(sample_toy2d("circles", 1500, 0), "moons", repeats=2)
    assert m.sw_ratio > 5 and m.mmd2 > 20 * abs(m.mmd2_floor)


def test_evaluate_toy_checkpoint_matches_a_recomputation(toy_checkpoint, tmp_path, capsys):
    args = dict(sampler="ddim", steps=10, n=600, seed=2, out=str(tmp_path / "m.json"))
    result = evaluate.evaluate_checkpoint(toy_checkpoint.parent, **args)   # a run folder works too
    printed = capsys.readouterr().out
    assert "data-vs-data floor" in printed and "ratio" in printed
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["sw"] == pytest.approx(result["sw"]) and saved["step"] == 30
    # The same samples again, scored independently
    samples, _ = sample_checkpoint(toy_checkpoint, 600, sampler="ddim", steps=10, seed=2, batch_size=600)
    draws = evaluate.reference_draws("8gaussians", 600, seed=2, repeats=evaluate.TOY_REPEATS)
    expected = np.mean([sliced_w2_quadrature(samples.samples.astype(np.float64), ref) for ref, _ in draws])
    assert result["sw"] == pytest.approx(expected, rel=0.05)
    assert result["sw_ratio"] == pytest.approx(result["sw"] / result["sw_floor"])
    assert result["sw_ratio"] > 2         # 30 steps of a tiny MLP are far from the data


def test_evaluate_toy_draws_pool_independent_draws(toy_checkpoint, capsys):
    result = evaluate.evaluate_checkpoint(toy_checkpoint, sampler="ddim", steps=5, n=400, seed=3,
                                          draws=3, speed=False)
    assert "3 draws (seeds 3-5)" in capsys.readouterr().out
    # Each draw re-sampled with its own seed and scored by the quadrature against its own references
    sw, floor = [], []
    for seed in (3, 4, 5):
        samples, _ = sample_checkpoint(toy_checkpoint, 400, sampler="ddim", steps=5, seed=seed,
                                       batch_size=400)
        refs = evaluate.reference_draws("8gaussians", 400, seed=seed, repeats=evaluate.TOY_REPEATS)
        sw.append(np.mean([sliced_w2_quadrature(samples.samples.astype(np.float64), r) for r, _ in refs]))
        floor.append(np.mean([sliced_w2_quadrature(p, r) for r, p in refs]))
    assert result["draws"] == 3 and len(result["draw_sw_ratios"]) == 3
    # Draw k is exactly the single-draw evaluation at seed + k (its samples and its references)
    singles = [evaluate.evaluate_checkpoint(toy_checkpoint, sampler="ddim", steps=5, n=400,
                                            seed=seed, speed=False) for seed in (3, 4, 5)]
    for k, single in enumerate(singles):
        assert result["draw_sw_ratios"][k] == pytest.approx(single["sw_ratio"], rel=1e-9)
        assert result["draw_sw"][k] == pytest.approx(single["sw"], rel=1e-9)
        assert result["draw_sw_floor"][k] == pytest.approx(single["sw_floor"], rel=1e-9)
    # ... and the pooled figures are the means over all of them, not one draw's
    assert result["sw"] == pytest.approx(np.mean([d["sw"] for d in singles]), rel=1e-9)
    assert result["sw_floor"] == pytest.approx(np.mean([d["sw_floor"] for d in singles]), rel=1e-9)
    assert result["sw"] == pytest.approx(np.mean(sw), rel=0.05)
    assert result["sw_floor"] == pytest.approx(np.mean(floor), rel=0.05)
    assert result["sw_ratio"] == pytest.approx(result["sw"] / result["sw_floor"])
    with pytest.raises(ValueError, match="draws must be an int >= 1"):
        evaluate.evaluate_checkpoint(toy_checkpoint, draws=0)


# --------------------------------------------------------------------------- FID and digit metrics

def test_fid_of_identical_features_is_zero_and_of_a_shift_is_its_square():
    f = np.random.default_rng(0).standard_normal((500, 8))
    assert evaluate.digit_metrics(np.eye(10)[np.zeros(500, int)], f, f).fid == pytest.approx(0.0, abs=1e-6)
    shift = np.arange(8) * 0.1
    # Same covariance: the trace terms cancel and FID is |mu1 - mu2|^2 exactly.
    assert evaluate.digit_metrics(np.eye(10)[np.zeros(500, int)], f + shift, f).fid == \
        pytest.approx(float(shift @ shift), rel=1e-6)


def test_digit_metrics_histogram_confidence_and_agreement():
    # 4 images: two confident 3s, a 7 at 0.5, a 1 at 0.7.
    probs = np.full((4, 10), 0.0)
    probs[0, 3], probs[1, 3] = 1.0, 1.0
    probs[2, 7], probs[2, 1] = 0.5, 0.5 - 1e-9
    probs[3, 1], probs[3, 2] = 0.7, 0.3
    m = evaluate.digit_metrics(probs, labels=[3, 3, 7, 2])
    assert m.histogram[3] == 0.5 and m.histogram[7] == 0.25 and m.histogram[1] == 0.25
    assert sum(m.histogram) == pytest.approx(1.0)
    assert m.mean_confidence == pytest.approx((1 + 1 + 0.5 + 0.7) / 4)
    assert m.label_agreement == 0.75 and m.fid is None
    assert evaluate.balanced_labels(23).tolist() == [i % 10 for i in range(23)]


# --------------------------------------------------------------------------- classifier cache

def test_classifier_path_honours_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert evaluate.classifier_path() == tmp_path / "tinydiff" / "mnist_classifier.npz"
    assert evaluate.classifier_path(tmp_path / "mine.npz") == tmp_path / "mine.npz"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")      # ignored, per the XDG spec
    assert "relative" not in str(evaluate.classifier_path())


def test_classifier_is_trained_once_then_loaded_strictly(monkeypatch, tmp_path, mnist_dir):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    real_train = evaluate.train_classifier

    def small_train(data_dir=None, progress=True):
        calls.append(data_dir)
        return real_train(data_dir=data_dir, epochs=1, subset=64, progress=False)

    monkeypatch.setattr(evaluate, "train_classifier", small_train)
    first, info = evaluate.get_classifier(data_dir=mnist_dir, progress=False)
    path = tmp_path / "tinydiff" / "mnist_classifier.npz"
    assert calls == [mnist_dir] and path.is_file()
    assert info["train_images"] == 64 and 0.0 <= info["test_accuracy"] <= 1.0
    second, info2 = evaluate.get_classifier(data_dir=mnist_dir, progress=False)
    assert calls == [mnist_dir] and info2 == info                    # loaded, not trained again
    x = np.random.default_rng(0).uniform(-1, 1, (5, 1, 28, 28)).astype(np.float32)
    f1, p1 = evaluate.classify(first, x)
    f2, p2 = evaluate.classify(second, x)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)
    assert f1.shape == (5, 128) and np.allclose(p1.sum(1), 1.0)

    # A file missing one weight is refused, naming itself, instead of loading half a classifier.
    state = load(path)
    del state["state"]["head.bias"]
    bad = tmp_path / "bad.npz"
    save(state, bad)
    with pytest.raises(CheckpointError, match="bad.npz"):
        evaluate.load_classifier(bad)
    save({"kind": "something else"}, bad)
    with pytest.raises(CheckpointError, match="not an MNIST classifier"):
        evaluate.load_classifier(bad)


# --------------------------------------------------------------------------- MNIST report

def test_evaluate_mnist_checkpoint_reports_everything(monkeypatch, tmp_path, mnist_dir, capsys):
    """A 2-step tiny class-conditional UNet and a tiny classifier: every number is produced and
    consistent (histogram sums to 1, confidence in [0.1, 1], bits/dim positive and finite)."""
    from tinydiff.data import mnist as mnist_module
    from tinydiff.models import MNISTClassifier

    model = {"name": "unet", "in_channels": 1, "out_channels": 1, "model_channels": 8,
             "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [],
             "dropout": 0.0, "image_size": 28}
    cfg = TrainConfig.mnist(model=model, steps=2, batch_size=8, timesteps=8, warmup_steps=1,
                            out_dir=str(tmp_path / "run"), data_dir=str(mnist_dir), progress=False)
    Trainer(cfg).train()
    clf = tmp_path / "clf.npz"
    evaluate.save_classifier(MNISTClassifier(), {"test_accuracy": 0.1}, clf)
    real_load = mnist_module.load_mnist
    monkeypatch.setattr(mnist_module, "load_mnist",                # 200 test images keep it quick
                        lambda split, **kw: tuple(a[:200] for a in real_load(split, **kw)))
    args = dict(n=12, steps=2, classifier=str(clf), data_dir=mnist_dir, bpd_n=4,
                speed=False, progress=False, guidance=2.0)
    result = evaluate.evaluate_checkpoint(tmp_path / "run" / "checkpoint.npz", **args)
    assert result["mode"].startswith("class-conditional") and result["guidance"] == 2.0
    assert len(result["histogram"]) == 10 and sum(result["histogram"]) == pytest.approx(1.0)
    assert 0.1 <= result["mean_confidence"] <= 1.0
    assert 0.0 <= result["label_agreement"] <= 1.0 and np.isfinite(result["fid"])
    assert 0 <= result["fid_floor"] < result["fid"]     # real digits beat a 2-step model
    assert result["bpd"]["n"] == 4 and 0 < result["bpd"]["bpd"] < np.inf
    assert "FID" in capsys.readouterr().out
    args.update(unconditional=True, bpd_n=0, speed=True)
    monkeypatch.setattr(evaluate, "SPEED_RUNS", (("ddpm", None, 2), ("ddim", 3, 2)))
    result = evaluate.evaluate_checkpoint(tmp_path / "run", **args)
    assert result["mode"].startswith("unconditional") and result["label_agreement"] is None
    assert "bpd" not in result
    assert list(result["images_per_second"]) == ["DDPM (8 steps), batch 2", "DDIM (3 steps, eta=0), batch 2"]
    assert all(v > 0 for v in result["images_per_second"].values())
