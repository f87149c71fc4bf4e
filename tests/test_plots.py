"""Figures: each writes a real image file, and the figure holds what it claims to show.

Each test captures the matplotlib Figure on its way to disk (``plots._save`` is wrapped) and
checks its content against quantities computed independently here: the forward-process
points against q(x_t | x_0) written from the betas, the quiver against a model whose score is
known in closed form, the smoothed loss against a direct weighted sum.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tinydiff import plots
from tinydiff.data.toy2d import sample_toy2d
from tinydiff.diffusion import GaussianDiffusion
from tinydiff.schedules import make_beta_schedule

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch):
    """The Figure objects saved during the test, in order."""
    saved = []
    original = plots._save

    def capture(fig, path, dpi=110):
        saved.append(fig)
        return original(fig, path, dpi)

    monkeypatch.setattr(plots, "_save", capture)
    return saved


def _image(path) -> np.ndarray:
    data = open(path, "rb").read()
    assert data[:8] == PNG and len(data) > 2000
    return np.asarray(Image.open(path))


def _scatter_offsets(ax) -> list[np.ndarray]:
    return [c.get_offsets().data for c in ax.collections if hasattr(c, "get_offsets")]


def test_show_forward_toy_panels_follow_q(tmp_path, figures):
    T, seed = 40, 3
    path = plots.show_forward("moons", tmp_path / "f.png", schedule="linear", timesteps=T, seed=seed, n=500)
    _image(path)
    fig = figures[0]
    axes = fig.axes
    assert len(axes) == 5
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["t = 0 (data)", "t = 10", "t = 20",
                                                              "t = 30", "t = 40"]
    # Recompute x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps from the betas, with the same draws.
    rng = np.random.default_rng(seed)
    x0 = sample_toy2d("moons", 500, rng).astype(np.float64)
    eps = rng.standard_normal(x0.shape)
    abar = np.cumprod(1.0 - np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T))
    for ax, t in zip(axes, [0, 10, 20, 30, 40]):
        expected = x0 if t == 0 else np.sqrt(abar[t - 1]) * x0 + np.sqrt(1 - abar[t - 1]) * eps
        np.testing.assert_allclose(_scatter_offsets(ax)[0], expected, rtol=1e-6, atol=1e-6)
        assert f"{1.0 if t == 0 else abar[t - 1]:.3f}" in ax.get_title()


def test_show_forward_mnist_shows_digits_dissolving(tmp_path, figures, mnist_dir):
    path = plots.show_forward("mnist", tmp_path / "m.png", schedule="cosine", timesteps=100,
                              data_dir=mnist_dir, n=3)
    _image(path)
    axes = figures[0].axes
    assert len(axes) == 5
    columns = [ax.get_images()[0].get_array() for ax in axes]
    assert all(c.shape == (3 * 30 + 2, 32) for c in columns)      # 3 digits, 2 px padding
    clean, noisy = columns[0], columns[-1]
    # A clean MNIST digit is mostly black background; at t = T half the pixels are above mid-grey.
    assert np.mean(clean < 0.05) > 0.5 and 0.3 < np.mean(noisy > 0.5) < 0.7


def test_trajectories_draw_every_step_of_the_chosen_paths(tmp_path, figures):
    from matplotlib.collections import LineCollection
    rng = np.random.default_rng(0)
    steps, n = 6, 50
    trajectory = list(np.cumsum(rng.standard_normal((steps + 1, n, 2)), axis=0))
    path = plots.save_trajectories(trajectory, tmp_path / "t.png", reference=rng.standard_normal((30, 2)),
                                   n_paths=10)
    _image(path)
    fig = figures[0]
    assert len(fig.axes) == 2                      # the plot and its time colour bar
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1
    segments = lines[0].get_segments()
    assert len(segments) == steps * 10
    pick = np.linspace(0, n - 1, 10).astype(int)
    # The first step's segments start at x_T and the last step's end at x_0, for the chosen paths.
    np.testing.assert_allclose([s[0] for s in segments[:10]], trajectory[0][pick])
    np.testing.assert_allclose([s[1] for s in segments[-10:]], trajectory[-1][pick])


def test_direction_field_points_along_the_known_score(tmp_path, figures):
    """A model predicting eps = x_t is the exact denoiser for data at the origin... of a sort:
    its score -x / sqrt(1 - abar) points at the origin, with size |x| / sqrt(1 - abar)."""
    diffusion = GaussianDiffusion(make_beta_schedule("linear", 100))
    path = plots.save_direction_field(lambda x, t: x, diffusion, tmp_path / "d.png", ts=[5, 50],
                                      dataset="8gaussians", grid=6, lim=2.0)
    _image(path)
    fig = figures[0]
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 2 and "t = 6" in panels[0].get_title()
    from matplotlib.quiver import Quiver
    for ax, t in zip(panels, [5, 50]):
        q = [c for c in ax.collections if isinstance(c, Quiver)][0]
        xy = q.XY
        np.testing.assert_allclose(np.stack([q.U, q.V], 1), -xy / np.linalg.norm(xy, axis=1, keepdims=True),
                                   rtol=1e-5)
        size = np.linalg.norm(xy, axis=1) / np.sqrt(1 - diffusion.alphas_cumprod[t])
        np.testing.assert_allclose(q.get_array(), np.log10(size), rtol=1e-5)


def test_smooth_curve_is_a_debiased_weighted_mean():
    v = np.random.default_rng(1).standard_normal(40)
    w = 0.9
    s = plots.smooth_curve(v, w)
    for k in (0, 5, 39):
        weights = w ** np.arange(k, -1, -1)
        assert s[k] == pytest.approx(np.sum(weights * v[:k + 1]) / np.sum(weights))
    np.testing.assert_allclose(plots.smooth_curve(np.full(10, 3.0), 0.99), 3.0)


def test_loss_curves_from_loss_csv(tmp_path, figures):
    rows = ["step,loss,lr,grad_norm,time"] + [f"{i},{1.0 / i},0.001,1.0,{i * 0.5}" for i in range(1, 201)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "loss.csv").write_text("\n".join(rows) + "\n")
    path = plots.save_loss_curves({"a": run, "b": run / "loss.csv"}, tmp_path / "loss.png")
    _image(path)
    ax = figures[0].axes[0]
    assert len(ax.get_lines()) == 4                       # raw and smoothed per run
    assert ax.get_yscale() == "log"
    raw = ax.get_lines()[0].get_ydata()
    np.testing.assert_allclose(raw, 1.0 / np.arange(1, 201))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("a: ") and "step 200" in labels[0] and "(1.7 min)" in labels[0]


def test_digit_grid_and_strip(tmp_path, figures):
    images = np.linspace(-1, 1, 20 * 784, dtype=np.float32).reshape(20, 1, 28, 28)
    path = plots.save_digit_grid(images, tmp_path / "g.png", nrow=10, title="digits",
                                 row_labels=["0", "1"])
    _image(path)
    ax = figures[0].axes[0]
    assert ax.get_title() == "digits"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1"]
    assert ax.get_images()[0].get_array().shape == (2 * 30 + 2, 10 * 30 + 2)
    path = plots.save_denoising_strip(list(images[:4]), [100, 50, 10, 0], tmp_path / "s.png",
                                      x0_predictions=list(images[4:8]))
    _image(path)
    fig = figures[1]
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:4]] == ["t = 100", "t = 50", "t = 10", "t = 0"]
    np.testing.assert_allclose(fig.axes[5].get_images()[0].get_array(), (images[5, 0] + 1) / 2)


@pytest.mark.parametrize("shape", [(30, 2), (4, 1, 28, 28)], ids=["points", "digits"])
def test_reverse_gif_has_one_frame_per_step_and_holds_the_last(tmp_path, shape):
    trajectory = [np.random.default_rng(i).standard_normal(shape).astype(np.float32) for i in range(7)]
    path = plots.save_reverse_gif(trajectory, tmp_path / "r.gif", frames=4, fps=4, nrow=2)
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        durations = []
        for k in range(gif.n_frames):
            gif.seek(k)
            durations.append(gif.info["duration"])
    # x_T, two states between, x_0, then x_0 held for 1 s (Pillow merges frames that quantise
    # identically, so how the held second splits into frames varies; the total does not)
    assert durations[:3] == [250, 250, 250]
    assert sum(durations) == 250 * (4 + 4)
