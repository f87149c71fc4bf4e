"""A corpus of crafted checkpoints (defect 8 of issue 11), generated here: every one is refused
with a CheckpointError naming the file and the reason, and none costs more than a few MB of
memory (tracemalloc), however many gigabytes it claims. A flipped bit anywhere is refused or
changes nothing."""
from __future__ import annotations

import io
import json
import random
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

from autograd.serialization import META_KEY, CheckpointError, load, save
from tinydiff.checkpoint import load_checkpoint
from tinydiff.train import Trainer, TrainConfig

MEMORY_BOUND = 24 << 20   # bytes of traced allocation allowed while refusing a file
TINY_MLP = {"name": "mlp", "data_dim": 2, "hidden_dim": 16, "num_layers": 1, "time_embed_dim": 8}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real 2-step training checkpoint (about 60 KB)."""
    out = tmp_path_factory.mktemp("good")
    Trainer(TrainConfig.toy2d("moons", steps=2, batch_size=16, timesteps=30, model=TINY_MLP,
                              out_dir=str(out), progress=False, warmup_steps=1)).train()
    return out / "checkpoint.npz"


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def write_zip(path, items: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in items.items():
            zf.writestr(name, data)


def npy(a: np.ndarray, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def meta_of(items) -> dict:
    return json.loads(np.load(io.BytesIO(items[META_KEY + ".npy"])).tobytes())


def with_meta(items, meta) -> dict:
    return {**items, META_KEY + ".npy": npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))}


def refused(path, match: str, loader=load) -> str:
    """Load ``path`` under tracemalloc: CheckpointError naming it and ``match``, bounded memory."""
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as exc:
            loader(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(exc.value)
    assert msg.startswith(str(path)), msg
    assert match in msg, msg
    assert "allow_pickle" not in msg
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MiB to refuse {path.name}: {msg}"
    return msg


# --------------------------------------------------------------------------- the corpus

def crafted(good, tmp_path):
    """(name, path, expected fragment of the message): each crafted from the good checkpoint."""
    items = members(good)
    meta = meta_of(items)
    first = next(k for k in items if k != META_KEY + ".npy")
    out = []

    def add(name, match, data=None, zip_items=None, compression=zipfile.ZIP_STORED):
        path = tmp_path / f"{name}.npz"
        if data is not None:
            path.write_bytes(data)
        else:
            write_zip(path, zip_items, compression)
        out.append((name, path, match))

    raw = good.read_bytes()
    for label, cut in (("10", 10), ("half", len(raw) // 2), ("end", len(raw) - 30)):
        add(f"truncated-{label}", "", data=raw[:cut])
    add("extra-member", "unlisted: ['extra']", zip_items={**items, "extra.npy": npy(np.zeros(3))})
    add("missing-member", "missing:", zip_items={k: v for k, v in items.items() if k != first})
    add("not-npy-member", "is not a .npy array", zip_items={**items, "../evil.sh": b"rm -rf /"})
    add("dotdot-name", "unlisted: ['../../etc/x']",
        zip_items={**items, "../../etc/x.npy": npy(np.zeros(1))})
    evil = np.empty(1, dtype=object)
    evil[0] = "x"
    add("pickled-member", "", zip_items={**items, first: npy(evil, allow_pickle=True)})
    add("deflated", "is compressed", zip_items=items, compression=zipfile.ZIP_DEFLATED)
    # A 1.5 GB claim: a deflated member of zeros whose headers say 1.5e9 bytes.
    add("zip-bomb", "is compressed", zip_items={**items, first: b"\0" * 100_000},
        compression=zipfile.ZIP_DEFLATED)
    bomb = bytearray((tmp_path / "zip-bomb.npz").read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = bomb.find(sig)
        while i >= 0:
            bomb[i + off:i + off + 4] = struct.pack("<I", 1_500_000_000)
            i = bomb.find(sig, i + 4)
    (tmp_path / "zip-bomb.npz").write_bytes(bytes(bomb))
    # 10^12 float64 declared by both the metadata and the member's .npy header.
    huge = dict(meta, arrays={**meta["arrays"], first[:-4]: {"dtype": "<f8", "shape": [10**12],
                                                             "sha256": "0" * 64}})
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**12,)})
    add("huge-shape", "need 8000000000000", zip_items=with_meta({**items, first: header.getvalue()
                                                               + b"\0" * 64}, huge))
    add("huge-shape-meta-only", "metadata says <f8 and (1000000000000,)",
        zip_items=with_meta(items, huge))
    add("object-dtype-meta", "never stores", zip_items=with_meta(items, dict(
        meta, arrays={**meta["arrays"], first[:-4]: {"dtype": "|O", "shape": [1], "sha256": "0" * 64}})))
    deep = b"[" * 200_000 + b"]" * 200_000
    add("deep-json", "nested deeper than", zip_items={**items, META_KEY + ".npy":
                                                      npy(np.frombuffer(deep, np.uint8))})
    add("meta-not-json", "bad metadata", zip_items={**items, META_KEY + ".npy":
                                                    npy(np.frombuffer(b"\xff{", np.uint8))})
    add("meta-float", "bad metadata", zip_items={**items, META_KEY + ".npy": npy(np.zeros(3))})
    add("no-meta", "no '__tinydiff__' metadata member",
        zip_items={k: v for k, v in items.items() if k != META_KEY + ".npy"})
    add("a-npy-file", "single .npy array", data=npy(np.zeros(4)))
    add("a-pickle", "pickle file", data=b"\x80\x04\x95" + b"\0" * 40)
    add("empty", "", data=b"")
    add("member-past-eof", "", data=raw[:-200] + raw[-22:])
    return out


CASES = ["truncated-10", "truncated-half", "truncated-end", "extra-member", "missing-member",
         "not-npy-member", "dotdot-name", "pickled-member", "deflated", "zip-bomb", "huge-shape",
         "huge-shape-meta-only", "object-dtype-meta", "deep-json", "meta-not-json", "meta-float",
         "no-meta", "a-npy-file", "a-pickle", "empty", "member-past-eof"]


@pytest.fixture(scope="module")
def corpus(good, tmp_path_factory):
    cases = crafted(good, tmp_path_factory.mktemp("corpus"))
    return {name: (path, match) for name, path, match in cases}


@pytest.mark.parametrize("name", CASES)
def test_every_crafted_checkpoint_is_refused_cheaply(corpus, name):
    assert sorted(corpus) == sorted(CASES)
    refused(*corpus[name])


def test_a_config_bomb_is_refused_before_building_the_model(good, tmp_path):
    # hidden_dim 12000 beside weights of width 16 would build a 12000-wide MLP (GBs) first.
    from tinydiff.checkpoint import save_checkpoint
    from tinydiff.run import load_run
    state = load_checkpoint(good)
    for field, value in (("hidden_dim", 12000), ("num_layers", 10**6)):
        bad = {k: v for k, v in state.items() if k not in ("kind", "version")}
        bad["config"] = dict(state["config"], model=dict(state["config"]["model"], **{field: value}))
        path = tmp_path / f"config-{field}.npz"
        save_checkpoint(bad, path)
        refused(path, "model config does not fit its weights", loader=load_run)
        refused(path, "model config does not fit its weights", loader=Trainer.resume)


def test_flipped_bits_are_refused_or_change_nothing(good, tmp_path):
    raw = good.read_bytes()
    reference = load(good)
    rng = random.Random(11)
    path = tmp_path / "flipped.npz"
    for _ in range(60):
        data = bytearray(raw)
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        try:
            state = load(path)
        except CheckpointError as exc:
            assert str(exc).startswith(str(path)) and "allow_pickle" not in str(exc)
            continue
        # Only bytes nobody reads (zip timestamps, ...) may change without an error.
        assert json.dumps(_plain(state)) == json.dumps(_plain(reference)), f"byte {i}"


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [str(x.dtype), x.shape, x.tobytes().hex()]
    if isinstance(x, np.generic):
        return repr(x)
    return x


def test_checkpoints_written_before_the_new_loader_still_load(good, tmp_path):
    # The format did not change: a file written by numpy's own zip writer (stored members, as
    # every earlier version wrote) loads, and so does one with a version-2.0 .npy header.
    items = members(good)
    path = tmp_path / "rezipped.npz"
    write_zip(path, items)
    assert json.dumps(_plain(load(path))) == json.dumps(_plain(load(good)))
    save({"w": np.arange(3.0)}, path)
    assert load(path)["w"].tolist() == [0.0, 1.0, 2.0]


def test_a_classifier_file_with_a_config_bomb_is_refused(tmp_path):
    from tinydiff import evaluate
    from tinydiff.models import MNISTClassifier
    path = tmp_path / "clf.npz"
    evaluate.save_classifier(MNISTClassifier(), {"test_accuracy": 0.1}, path)
    state = load(path)
    state["config"] = dict(state["config"], feature_dim=10**6)   # a 3136 x 10^6 layer: 12 GB
    save(state, path)
    refused(path, "its config does not fit its weights", loader=evaluate.load_classifier)
