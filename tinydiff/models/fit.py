"""Does a saved model config fit the weights saved beside it? Checked before building anything.

A checkpoint carries its config and its weights; ``build_model(config)`` allocates what the config
says, whatever the weights are. A crafted 2 MB checkpoint whose config says ``hidden_dim`` 12000
would make us allocate gigabytes before ``load_state_dict`` noticed the mismatch. So
``config_misfit(config, shapes)`` compares the config with the weights' shapes (which the loader
has already bounded by the file's size) and returns why they disagree, or None:

- ``mlp``: every parameter's shape follows from the config; they must all match.
- ``unet``: the stem, time embedding and label embedding shapes follow from model_channels,
  in_channels and num_classes; the widest level (model_channels x max(channel_mult)) must be a
  dimension some weight has, and the blocks the config asks for cannot outnumber the weights.
- other models: their sizes are bounded by the widest weight, or the count of weights.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Shapes = Mapping[str, tuple[int, ...]]


def _mlp_shapes(cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """MLPDenoiser's parameters (tinydiff/models/mlp.py) as a function of its config."""
    classes = cfg.get("num_classes")
    in_dim = cfg["data_dim"] + cfg["time_embed_dim"] + (classes + 1 if classes is not None else 0)
    if cfg.get("input_embed_dim") is not None:  # Fourier features: input_embed_dim per coordinate
        in_dim += cfg["data_dim"] * cfg["input_embed_dim"]
    widths = [in_dim] + [cfg["hidden_dim"]] * cfg["num_layers"]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        shapes[f"layers.{i}.weight"], shapes[f"layers.{i}.bias"] = (b, a), (b,)
    shapes["out.weight"], shapes["out.bias"] = (cfg["data_dim"], cfg["hidden_dim"]), (cfg["data_dim"],)
    return shapes


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        return [i for v in value for i in _ints(v)]
    return []


def config_misfit(config: Mapping[str, Any], shapes: Shapes) -> str | None:
    """Why ``config`` cannot be the architecture of weights with these ``shapes``, or None."""
    widest = max((max(s) for s in shapes.values() if s), default=0)
    name = config.get("name")
    try:
        if name == "mlp":
            if not isinstance(config.get("num_layers"), int) or config["num_layers"] > len(shapes):
                return f"num_layers {config.get('num_layers')!r} but only {len(shapes)} weights"
            expect = _mlp_shapes(config)
            for key, shape in expect.items():
                if key not in shapes:
                    return f"the config needs weight {key!r}, which is missing"
                if tuple(shapes[key]) != shape:
                    return f"weight {key!r} has shape {tuple(shapes[key])}, the config implies {shape}"
            return None
        if name == "unet":
            mc, classes = config["model_channels"], config.get("num_classes")
            expect = {"input_blocks.0.0.weight": (mc, config["in_channels"], 3, 3),
                      "time_embed.0.weight": (4 * mc, mc)}
            if classes is not None:
                expect["label_emb.weight"] = (classes + 1, 4 * mc)
            for key, shape in expect.items():
                if key not in shapes or tuple(shapes[key]) != shape:
                    return (f"weight {key!r} has shape {tuple(shapes.get(key, ())) or 'none'}, the "
                            f"config implies {shape}")
            top = mc * max(config["channel_mult"])
            if top > widest:
                return f"its widest level has {top} channels, but no weight is wider than {widest}"
            blocks = config["num_res_blocks"] * len(config["channel_mult"])
            if blocks > len(shapes):
                return f"it asks for {blocks} residual blocks, but there are {len(shapes)} weights"
            return None
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed model config ({type(exc).__name__}: {exc})"
    bound = max(widest, len(shapes))
    for v in _ints([v for k, v in config.items() if k != "name"]):
        if v > bound:
            return f"a size of {v} in the model config exceeds every weight's dimensions ({bound})"
    return None
