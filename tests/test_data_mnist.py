"""MNIST: IDX parsing, validation, where files come from, and the (mocked) verified download.

No test uses the network: `_open_url` is replaced for every test (by default with one that fails
the test), the cache is a temp folder via XDG_CACHE_HOME, and TINYDIFF_DATA is unset.
"""
from __future__ import annotations

import gzip
import io
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from tinydiff.data import mnist
from tinydiff.data.mnist import (IMAGE_MAGIC, LABEL_MAGIC, MNIST_MIRRORS, MNISTError,
                                 default_cache_dir, load_mnist, load_mnist_uint8, read_idx)

TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TINYDIFF_DATA", raising=False)

    def no_network(url, timeout):
        raise AssertionError(f"test tried to reach the network: {url}")
    monkeypatch.setattr(mnist, "_open_url", no_network)


@pytest.fixture
def cache() -> Path:
    return default_cache_dir()


@pytest.fixture(scope="module")
def train(mnist_dir):
    return load_mnist("train", data_dir=mnist_dir, progress=False)


@pytest.fixture(scope="module")
def test_split(mnist_dir):
    return load_mnist("test", data_dir=mnist_dir, progress=False)


def _idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _copy_gz(src: Path, dst: Path, names=TEST_FILES) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def _decompressed(src: Path, dst: Path, names=TEST_FILES) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / name.removesuffix(".gz")).write_bytes(gzip.decompress((src / name).read_bytes()))
    return dst


class FakeResponse(io.BytesIO):
    """What `_open_url` returns: a readable context manager with headers."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _server(mnist_dir: Path, log: list[str], corrupt: bool = False, failing_mirrors=()):
    def open_url(url, timeout):
        log.append(url)
        if any(url.startswith(m) for m in failing_mirrors):
            raise urllib.error.URLError("connection refused")
        data = (mnist_dir / url.rsplit("/", 1)[1]).read_bytes()
        if corrupt:
            data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
        return FakeResponse(data)
    return open_url


# --------------------------------------------------------------------------- the real files

def test_train_split(train):
    x, y = train
    assert x.shape == (60_000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (60_000,) and y.dtype == np.int64
    assert x.min() == -1.0 and x.max() == 1.0
    # Exactly the 256 grey levels mapped affinely: (x + 1) * 127.5 is an integer.
    levels = (x[:100].astype(np.float64) + 1) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    assert y[0] == 5
    counts = np.bincount(y, minlength=10)
    assert counts.size == 10 and counts.min() > 5000 and counts.max() < 7000


def test_test_split(test_split):
    x, y = test_split
    assert x.shape == (10_000, 1, 28, 28) and y.shape == (10_000,)
    assert y[0] == 7 and set(np.unique(y)) == set(range(10))
    assert -1 <= x.min() < x.max() <= 1


def test_uint8_and_float_agree(mnist_dir, test_split):
    u, y = load_mnist_uint8("test", data_dir=mnist_dir)
    assert u.dtype == np.uint8 and u.shape == (10_000, 28, 28) and u.flags.writeable
    np.testing.assert_array_equal(test_split[0][:, 0], u.astype(np.float32) / 127.5 - 1)
    np.testing.assert_array_equal(test_split[1], y)


def test_gz_and_decompressed_give_identical_arrays(mnist_dir, tmp_path, test_split):
    raw = _decompressed(mnist_dir, tmp_path / "raw")
    x, y = load_mnist("test", data_dir=raw)
    np.testing.assert_array_equal(x, test_split[0])
    np.testing.assert_array_equal(y, test_split[1])
    np.testing.assert_array_equal(read_idx(raw / "t10k-labels-idx1-ubyte"),
                                  read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz"))


def test_env_var_folder_or_its_mnist_subfolder(mnist_dir, tmp_path, monkeypatch, test_split):
    monkeypatch.setenv("TINYDIFF_DATA", str(mnist_dir))
    np.testing.assert_array_equal(load_mnist("test")[1], test_split[1])
    root = tmp_path / "data"
    _copy_gz(mnist_dir, root / "mnist")
    monkeypatch.setenv("TINYDIFF_DATA", str(root))
    np.testing.assert_array_equal(load_mnist("test")[1], test_split[1])


def test_data_dir_wins_over_env_var(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYDIFF_DATA", str(tmp_path / "does-not-exist"))
    assert load_mnist("test", data_dir=mnist_dir)[0].shape[0] == 10_000


# --------------------------------------------------------------------------- bad local files

def test_corrupt_gz_is_named_by_its_checksum(mnist_dir, tmp_path):
    folder = _copy_gz(mnist_dir, tmp_path / "bad")
    path = folder / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[2000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(MNISTError, match="t10k-labels-idx1-ubyte.gz.*SHA256 mismatch"):
        load_mnist("test", data_dir=folder)


def test_truncated_decompressed_file_says_expected_and_found(mnist_dir, tmp_path):
    folder = _decompressed(mnist_dir, tmp_path / "raw")
    path = folder / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(MNISTError) as exc:
        load_mnist("test", data_dir=folder)
    msg = str(exc.value)
    assert str(path) in msg and "truncated" in msg and "10000" in msg and "9990" in msg


def test_decompressed_file_checked_against_SHA256SUMS(mnist_dir, tmp_path):
    folder = _decompressed(mnist_dir, tmp_path / "raw")
    (folder / "SHA256SUMS").write_text("0" * 64 + "  t10k-images-idx3-ubyte\n")
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte.*SHA256 mismatch"):
        load_mnist("test", data_dir=folder)


def test_header_count_must_match_split(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        _idx_bytes(np.zeros((3, 28, 28), np.uint8), IMAGE_MAGIC))
    (folder / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(3, np.uint8), LABEL_MAGIC))
    with pytest.raises(MNISTError, match="expected 10000 x 28 x 28"):
        load_mnist("test", data_dir=folder)


def test_missing_data_dir_says_how_to_fix(tmp_path):
    with pytest.raises(MNISTError) as exc:
        load_mnist("test", data_dir=tmp_path / "nope")
    msg = str(exc.value)
    assert str(tmp_path / "nope") in msg and "--data-dir" in msg and "TINYDIFF_DATA" in msg


def test_folder_without_the_files(tmp_path):
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte"):
        load_mnist("test", data_dir=tmp_path)


def test_unknown_split():
    with pytest.raises(ValueError, match="train, test"):
        load_mnist("validation")


# --------------------------------------------------------------------------- read_idx itself

def test_read_idx_roundtrip_raw_and_gz(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    (tmp_path / "a").write_bytes(_idx_bytes(a, IMAGE_MAGIC))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(a, IMAGE_MAGIC)))
    np.testing.assert_array_equal(read_idx(tmp_path / "a", IMAGE_MAGIC), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz", IMAGE_MAGIC), a)


def test_wrong_magic(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(_idx_bytes(np.zeros(4, np.uint8), LABEL_MAGIC))
    with pytest.raises(MNISTError, match=f"labels.*magic number {LABEL_MAGIC}.*expected {IMAGE_MAGIC}"):
        read_idx(path, IMAGE_MAGIC)
    path.write_bytes(struct.pack(">I", 0x00000D01) + struct.pack(">I", 1) + b"\0" * 4)  # float32
    with pytest.raises(MNISTError, match="magic"):
        read_idx(path)


def test_truncated_gz_and_trailing_bytes(tmp_path):
    blob = gzip.compress(_idx_bytes(np.arange(200, dtype=np.uint8), LABEL_MAGIC))
    (tmp_path / "cut.gz").write_bytes(blob[:-12])
    with pytest.raises(MNISTError, match="cut.gz.*truncated"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "long").write_bytes(_idx_bytes(np.arange(5, dtype=np.uint8), LABEL_MAGIC) + b"x")
    with pytest.raises(MNISTError, match="long.*trailing.*5 data bytes.*found 6"):
        read_idx(tmp_path / "long")
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(MNISTError, match="tiny.*truncated"):
        read_idx(tmp_path / "tiny")


# --------------------------------------------------------------------------- cache and download

def test_cache_dir_honours_xdg(monkeypatch, tmp_path):
    assert default_cache_dir() == tmp_path / "xdg" / "tinydiff" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == Path.home() / ".cache" / "tinydiff" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "tinydiff" / "mnist"


def test_offline_without_files_says_how_to_fix(cache):
    with pytest.raises(MNISTError) as exc:
        load_mnist("test", download=False)
    msg = str(exc.value)
    assert "--data-dir" in msg and "TINYDIFF_DATA" in msg and str(cache) in msg


def test_download_failure_names_every_url_tried(monkeypatch, mnist_dir, cache):
    log: list[str] = []
    monkeypatch.setattr(mnist, "_open_url", _server(mnist_dir, log, failing_mirrors=MNIST_MIRRORS))
    with pytest.raises(MNISTError) as exc:
        load_mnist("test", progress=False)
    msg = str(exc.value)
    for mirror in MNIST_MIRRORS:
        assert mirror + TEST_FILES[0] in msg
    assert "TINYDIFF_DATA" in msg and "--data-dir" in msg
    assert log == [m + TEST_FILES[0] for m in MNIST_MIRRORS]
    assert list(cache.iterdir()) == []


def test_download_with_checksum_mismatch_leaves_nothing(monkeypatch, mnist_dir, cache):
    monkeypatch.setattr(mnist, "_open_url", _server(mnist_dir, [], corrupt=True))
    with pytest.raises(MNISTError, match="(?s)t10k-images-idx3-ubyte.gz.*SHA256 mismatch"):
        load_mnist("test", progress=False)
    assert list(cache.iterdir()) == []   # neither the file nor a temporary .part


def test_download_lands_in_cache_and_is_reused_offline(monkeypatch, mnist_dir, cache, test_split):
    log: list[str] = []
    monkeypatch.setattr(mnist, "_open_url", _server(mnist_dir, log))
    x, y = load_mnist("test", progress=True)
    assert log == [MNIST_MIRRORS[0] + name for name in TEST_FILES]
    assert sorted(p.name for p in cache.iterdir()) == sorted(TEST_FILES)
    np.testing.assert_array_equal(x, test_split[0])

    def no_network(url, timeout):
        raise AssertionError("the cached files should have been used")
    monkeypatch.setattr(mnist, "_open_url", no_network)
    np.testing.assert_array_equal(load_mnist("test", download=False)[1], y)


def test_download_falls_back_to_the_next_mirror(monkeypatch, mnist_dir, cache):
    """The first mirror refuses; the second one dies mid-stream once, then serves."""
    log: list[str] = []
    good = _server(mnist_dir, log, failing_mirrors=MNIST_MIRRORS[:1])
    broken = {"left": 1}

    class Dying(FakeResponse):
        def read(self, size=-1):
            if self.tell() > 500:
                raise ConnectionResetError("peer reset")
            return super().read(min(size, 256))

    def open_url(url, timeout):
        response = good(url, timeout)
        if url.startswith(MNIST_MIRRORS[1]) and broken["left"]:
            broken["left"] -= 1
            return Dying(response.getvalue())
        return response

    monkeypatch.setattr(mnist, "_open_url", open_url)
    with pytest.raises(MNISTError, match="peer reset"):
        load_mnist("test", progress=False)
    assert list(cache.iterdir()) == []
    assert load_mnist("test", progress=False)[1][0] == 7
    assert log[-2:] == [MNIST_MIRRORS[0] + TEST_FILES[1], MNIST_MIRRORS[1] + TEST_FILES[1]]


def test_corrupt_cached_file_says_delete_and_rerun(mnist_dir, cache):
    _copy_gz(mnist_dir, cache)
    path = cache / TEST_FILES[0]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte.gz.*delete it and re-run"):
        load_mnist("test", download=False)
