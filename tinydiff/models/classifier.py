"""A small CNN that classifies MNIST digits, to judge generated samples.

    x (B, 1, 28, 28) in [-1, 1]
    -> conv 3x3, 1 -> 32, ReLU, avg-pool 2   -> (B, 32, 14, 14)
    -> conv 3x3, 32 -> 64, ReLU, avg-pool 2  -> (B, 64, 7, 7)
    -> flatten, linear 3136 -> 128, ReLU     -> features (B, 128)
    -> linear 128 -> 10                      -> logits

The 128 penultimate features play, for MNIST, the part Inception's pool features play in FID;
the logits give the class-accuracy and Inception-Score style metrics.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

import autograd.functional as F
from autograd import nn, no_grad
from autograd.backend import to_device
from autograd.tensor import Tensor


class MNISTClassifier(nn.Module):
    """``forward(x) -> logits (B, num_classes)``, ``features(x) -> (B, feature_dim)``."""

    def __init__(self, num_classes: int = 10, feature_dim: int = 128) -> None:
        super().__init__()
        self.config = {"name": "classifier", "num_classes": num_classes, "feature_dim": feature_dim}
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 7 * 7, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def get_config(self) -> dict[str, Any]:
        return dict(self.config)

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"MNISTClassifier: x must have shape (B, 1, 28, 28), got {x.shape}")
        h = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        h = F.avg_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _device_of(model: nn.Module) -> str:
    return next(iter(model.parameters())).device


def fit_classifier(model: MNISTClassifier, images: Any, labels: Any, epochs: int = 1,
                   batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                   progress: bool = True) -> list[float]:
    """Train with Adam on the mean cross-entropy; returns the loss of every step.

    ``images`` (N, 1, 28, 28) float32 in [-1, 1] and ``labels`` (N,) integers, as host arrays
    (``tinydiff.data.mnist.load_mnist``); each batch is moved to the model's device. ``seed``
    fixes the order of the examples.

    Why these defaults, measured: benchmarks/results/tinydiff-measurements.md#the-judging-classifiers-defaults.
    """
    from autograd.optim import Adam  # here, not at the top: evaluation alone needs no optimizer

    images, labels = np.asarray(images, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"fit_classifier: {images.shape[0]} images but {labels.shape[0]} labels")
    device, rng = _device_of(model), np.random.default_rng(seed)
    optimizer = Adam(model.parameters(), lr=lr)
    model.train()
    losses: list[float] = []
    steps = epochs * (-(-len(images) // batch_size))
    with tqdm(total=steps, desc="classifier", disable=not progress) as bar:
        for _ in range(epochs):
            order = rng.permutation(len(images))
            for start in range(0, len(images), batch_size):
                idx = order[start:start + batch_size]
                x = Tensor(to_device(images[idx], device))
                y = Tensor(to_device(labels[idx], device))
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    model.eval()
    return losses


@no_grad()
def classifier_accuracy(model: MNISTClassifier, images: Any, labels: Any,
                        batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose arg-max logit is the label (model in eval mode)."""
    device = _device_of(model)
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = Tensor(to_device(np.asarray(images[start:start + batch_size], dtype=np.float32), device))
        pred = model(x).data.argmax(axis=1)
        correct += int((pred == to_device(np.asarray(labels[start:start + batch_size]), device)).sum())
    return correct / len(images)
