"""Noise predictors eps_theta(x_t, t[, y]) and the MNIST classifier used to judge samples.

Every model records its constructor arguments in ``model.config`` (a JSON-friendly dict with a
``"name"``), so a checkpoint can store the config beside the weights and ``build_model(config)``
can rebuild the same architecture before loading them.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from autograd import nn
from tinydiff.models.classifier import MNISTClassifier, classifier_accuracy, fit_classifier
from tinydiff.models.embeddings import timestep_embedding
from tinydiff.models.mlp import MLPDenoiser
from tinydiff.models.unet import UNet, count_parameters

MODELS: Mapping[str, type[nn.Module]] = MappingProxyType(
    {"mlp": MLPDenoiser, "unet": UNet, "classifier": MNISTClassifier})


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """A freshly initialised model of ``config["name"]`` ('mlp', 'unet' or 'classifier'), built
    with the rest of ``config`` as constructor arguments (as in ``model.config``)."""
    if "name" not in config:
        raise ValueError(f"build_model: config needs a 'name' (one of {sorted(MODELS)}), got keys "
                         f"{sorted(config)}")
    name = config["name"]
    if name not in MODELS:
        raise ValueError(f"build_model: unknown model name {name!r}; expected one of {sorted(MODELS)}")
    kwargs = {k: v for k, v in config.items() if k != "name"}
    try:
        return MODELS[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"build_model: bad arguments for {name!r}: {exc}") from exc


__all__ = ["MLPDenoiser", "UNet", "MNISTClassifier", "build_model", "count_parameters",
           "timestep_embedding", "fit_classifier", "classifier_accuracy", "MODELS"]
