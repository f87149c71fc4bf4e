"""Checkpoints: exact round trips, atomic writes, and loud failures on damaged or foreign files."""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from autograd import Tensor, serialization
from autograd.serialization import CheckpointError, load, save


def sample_state():
    rng = np.random.default_rng(0)
    return {
        "model": {
            "blocks.0.conv.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
            "blocks.0.conv.bias": rng.normal(size=4).astype(np.float32),
            "table": rng.normal(size=(5, 2)),                          # float64 stays float64
            "half": rng.normal(size=3).astype(np.float16),
            "counts": np.arange(6, dtype=np.int64).reshape(2, 3),
            "mask": np.array([True, False, True]),
            "bytes": np.frombuffer(b"\x00\xff\x10", dtype=np.uint8),
            "scalar0d": np.array(2.5, dtype=np.float32),
            "empty": np.zeros((0, 3), dtype=np.float32),
            "transposed": np.arange(12, dtype=np.float32).reshape(3, 4).T,  # not C-contiguous
            "big_endian": np.arange(3, dtype=">f4"),
        },
        "optimizer": {"state": {0: {"step": 3, "exp_avg": np.ones(2, np.float32)}},
                      "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.999), "nesterov": False, "params": [0]}]},
        "step": 12345678901234567890,  # bigger than int64
        "loss": float("nan"), "best": float("inf"), "tiny": 5e-324,
        "name": "ddpm-ünet ✓", "notes": None, "flags": [True, False],
        "np_scalar": np.float32(0.1), "np_int": np.int64(7),
        "a/b": np.ones(1), "a": {"b": np.zeros(1)},  # the same member path twice
        "file": np.ones(2), "__tinydiff__": np.ones(1),  # names that would clash with savez or the metadata
        "nested_list": [np.arange(2), {"x": (1, 2.5, "s")}],
    }


def assert_same(got, want, path="root"):
    assert type(got) is type(want), (path, type(got), type(want))
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for k in want:
            assert_same(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{path}/{i}")
    elif isinstance(want, (np.ndarray, np.generic)):
        assert got.dtype == want.dtype and got.shape == want.shape, path
        np.testing.assert_array_equal(got, want, err_msg=path)
    elif isinstance(want, float) and np.isnan(want):
        assert np.isnan(got), path
    else:
        assert got == want, path


def test_round_trip_preserves_structure_types_and_dtypes(tmp_path):
    state = sample_state()
    save(state, tmp_path / "ck.npz")
    back = load(tmp_path / "ck.npz")
    assert_same(back, state)
    assert back["model"]["counts"].flags.writeable


def test_file_is_a_plain_npz_with_readable_member_names(tmp_path):
    save({"model": {"fc.weight": np.eye(2)}}, tmp_path / "ck.npz")
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["__tinydiff__", "model/fc.weight"]
        np.testing.assert_array_equal(z["model/fc.weight"], np.eye(2))
        meta = json.loads(z["__tinydiff__"].tobytes())
    assert meta["format"] == "tinydiff-checkpoint" and meta["version"] == 1


def test_tensors_and_exact_path(tmp_path):
    save({"w": Tensor(np.arange(3.0), requires_grad=True)}, tmp_path / "weights.ckpt")
    assert os.listdir(tmp_path) == ["weights.ckpt"]  # no suffix added, no temp file left
    np.testing.assert_array_equal(load(tmp_path / "weights.ckpt")["w"], np.arange(3.0))


def test_device_arrays_are_stored_as_numpy(xp, tmp_path):
    save({"w": xp.arange(4, dtype=xp.float32)}, tmp_path / "ck.npz")
    w = load(tmp_path / "ck.npz")["w"]
    assert type(w) is np.ndarray and w.dtype == np.float32


@pytest.mark.parametrize("bad,match", [({"obj": np.array([{}, 1], dtype=object)}, "pickle"),
                                       ({"s": {1, 2}}, "set"), ({(1, 2): 3}, "keys"), ({"c": 1j}, "complex")])
def test_unsupported_values_are_refused_and_write_nothing(tmp_path, bad, match):
    with pytest.raises(TypeError, match=match):
        save(bad, tmp_path / "ck.npz")
    assert os.listdir(tmp_path) == []


def test_module_and_optimizer_round_trip(tmp_path):
    from autograd import nn, optim
    from autograd.random import manual_seed

    def build():
        return nn.Sequential(nn.Linear(3, 8), nn.SiLU(), nn.Linear(8, 2))
    manual_seed(1)
    model = build()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    for _ in range(2):
        opt.zero_grad()
        (model(x) ** 2).mean().backward()
        opt.step()
    save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "ck.npz")

    manual_seed(2)  # different init: everything must come from the file
    model2 = build()
    opt2 = optim.Adam(model2.parameters(), lr=1.0)
    ck = load(tmp_path / "ck.npz")
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["opt"])
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        (m(x) ** 2).mean().backward()
        o.step()
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        assert q.data.dtype == np.float32
    assert opt2.param_groups[0]["lr"] == 1e-2


# ---------------------------------------------------------------------------- atomicity
def test_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    save({"w": np.arange(5.0)}, path)
    before = path.read_bytes()

    def crashing_writer(f, arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt  # the process is interrupted mid-write

    monkeypatch.setattr(serialization, "_write_npz", crashing_writer)
    with pytest.raises(KeyboardInterrupt):
        save({"w": np.zeros(5)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ck.npz"]  # the partial temp file was removed
    np.testing.assert_array_equal(load(path)["w"], np.arange(5.0))


def test_crash_before_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    save({"w": np.arange(5.0)}, path)

    def failing_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(serialization.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save({"w": np.zeros(5)}, path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load(path)["w"], np.arange(5.0))
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_new_file_is_complete_before_it_appears(tmp_path, monkeypatch):
    """The final name must only ever be reached by rename, after fsync of the full file."""
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(serialization.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(serialization.os, "replace",
                        lambda a, b: (calls.append(("replace", os.path.dirname(a) == os.path.dirname(b))),
                                      real_replace(a, b))[1])
    save({"w": np.ones(3)}, tmp_path / "ck.npz")
    assert calls[0] == "fsync" and calls[1] == ("replace", True)


# ---------------------------------------------------------------------------- damaged and foreign files
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0.5, 0.98, 0.0])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "ck.npz"
    save(sample_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=str(path).replace("\\", "\\\\")):
        load(path)


def test_flipped_byte_in_array_payload_fails_the_crc(tmp_path):
    path = tmp_path / "ck.npz"
    weights = np.full(256, 7.0, dtype=np.float32)
    save({"w": weights}, path)
    data = bytearray(path.read_bytes())
    at = data.find(weights.tobytes())
    assert at > 0
    data[at + 100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC"):
        load(path)


def rewrite_members(path, replace):
    """Rebuild the archive with some members replaced by new .npy bytes: a consistent zip
    (valid CRCs) whose array no longer matches the metadata, as a deliberate edit would be."""
    with zipfile.ZipFile(path) as zin:
        members = {name: zin.read(name) for name in zin.namelist()}
    members.update(replace)
    with zipfile.ZipFile(path, "w") as zout:
        for name, blob in members.items():
            zout.writestr(name, blob)


def npy_bytes(a, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_changed_array_with_valid_crc_fails_the_sha256_check(tmp_path):
    path = tmp_path / "ck.npz"
    w = np.arange(10, dtype=np.float32)
    save({"model": {"w": w}}, path)
    tampered = w.copy()
    tampered[3] += 1e-3
    rewrite_members(path, {"model/w.npy": npy_bytes(tampered)})
    with pytest.raises(CheckpointError, match=r"'model/w'.*SHA-256"):
        load(path)


def test_changed_dtype_or_shape_is_reported(tmp_path):
    path = tmp_path / "ck.npz"
    save({"w": np.zeros(4, np.float32)}, path)
    rewrite_members(path, {"w.npy": npy_bytes(np.zeros(4, np.float64))})
    with pytest.raises(CheckpointError, match="dtype"):
        load(path)


class Sentinel:
    """Unpickling this records that code from the file ran."""
    ran = []

    def __reduce__(self):
        return (Sentinel.ran.append, ("unpickled",))


def test_pickled_member_is_refused_without_running_it(tmp_path):
    path = tmp_path / "ck.npz"
    save({"w": np.zeros(2)}, path)
    evil = np.empty(1, dtype=object)
    evil[0] = Sentinel()
    rewrite_members(path, {"w.npy": npy_bytes(evil, allow_pickle=True)})
    with pytest.raises(CheckpointError, match="pickle"):
        load(path)
    assert Sentinel.ran == []


def test_plain_pickle_npz_is_refused(tmp_path):
    path = tmp_path / "ck.npz"
    np.savez(path, obj=np.array([Sentinel()], dtype=object))
    with pytest.raises(CheckpointError, match="not a tinydiff checkpoint"):
        load(path)
    assert Sentinel.ran == []


def test_pickle_file_is_refused(tmp_path):
    import pickle
    path = tmp_path / "ck.npz"
    path.write_bytes(pickle.dumps(Sentinel()))
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        load(path)
    assert Sentinel.ran == []


def test_foreign_files_are_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(CheckpointError, match="no '__tinydiff__' metadata"):
        load(tmp_path / "plain.npz")
    np.save(tmp_path / "single.npy", np.ones(2))
    with pytest.raises(CheckpointError, match="single .npy"):
        load(tmp_path / "single.npy")
    (tmp_path / "random.bin").write_bytes(os.urandom(100))
    with pytest.raises(CheckpointError, match="random.bin"):
        load(tmp_path / "random.bin")


def meta_of(path):
    with np.load(path) as z:
        return json.loads(z["__tinydiff__"].tobytes())


@pytest.mark.parametrize("edit,match", [
    (lambda m: {**m, "version": 2}, "version 2"),
    (lambda m: {**m, "format": "other"}, "format is 'other'"),
    (lambda m: {k: v for k, v in m.items() if k != "arrays"}, "missing 'arrays'"),
    (lambda m: {**m, "arrays": {}}, "do not match the metadata"),
    (lambda m: {**m, "tree": {"bogus": 1}}, "bad metadata tree"),
])
def test_bad_metadata(tmp_path, edit, match):
    path = tmp_path / "ck.npz"
    save({"w": np.zeros(2)}, path)
    meta = edit(meta_of(path))
    rewrite_members(path, {"__tinydiff__.npy": npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8))})
    with pytest.raises(CheckpointError, match=match):
        load(path)


def test_unparsable_metadata(tmp_path):
    path = tmp_path / "ck.npz"
    save({"w": np.zeros(2)}, path)
    rewrite_members(path, {"__tinydiff__.npy": npy_bytes(np.frombuffer(b"{not json", np.uint8))})
    with pytest.raises(CheckpointError, match="bad metadata"):
        load(path)
