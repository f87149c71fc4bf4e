"""Defect 7 of issue 11: corrupt MNIST files that loaded. Compression is recognised by its magic
bytes, not the file name; SHA256SUMS names are normalised; decompression is bounded by the IDX
header's declared size, so a gzip bomb is refused after reading a few KB, not 400 MB."""
from __future__ import annotations

import gzip
import shutil
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from tinydiff.data.mnist import LABEL_MAGIC, MNISTError, load_mnist, read_idx


def _idx(a: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">I{a.ndim}I", magic, *a.shape) + a.tobytes()


def test_gzip_under_the_raw_name_is_checked_against_the_reference(mnist_dir, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        shutil.copy(mnist_dir / f"{name}.gz", folder / name)   # intact gzip, raw name: loads
    images, _ = load_mnist("test", data_dir=folder, progress=False)
    assert images.shape == (10000, 1, 28, 28)
    raw = bytearray(gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()))
    raw[16:16 + 100 * 784] = b"\xff" * (100 * 784)               # 100 images overwritten white
    (folder / "t10k-images-idx3-ubyte").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte: SHA256 mismatch"):
        load_mnist("test", data_dir=folder, progress=False)


def test_sha256sums_with_dot_slash_names_is_not_ignored(mnist_dir, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    (folder / "SHA256SUMS").write_text("0" * 64 + "  ./t10k-images-idx3-ubyte\n")
    with pytest.raises(MNISTError, match="t10k-images-idx3-ubyte: SHA256 mismatch"):
        load_mnist("test", data_dir=folder, progress=False)
    (folder / "SHA256SUMS").write_text("0" * 64 + " *./t10k-labels-idx1-ubyte\n")
    with pytest.raises(MNISTError, match="t10k-labels-idx1-ubyte: SHA256 mismatch"):
        load_mnist("test", data_dir=folder, progress=False)


def _bomb(header: bytes, size: int) -> bytes:
    """A gzip stream of ``header`` followed by ``size`` zero bytes, compressed ~1000:1."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts, chunk = [c.compress(header)], b"\0" * (1 << 20)
    for _ in range(size >> 20):
        parts.append(c.compress(chunk))
    return b"".join(parts) + c.flush()


def _peak(fn) -> int:
    """Peak bytes traced while ``fn`` runs (it must raise MNISTError)."""
    tracemalloc.start()
    try:
        with pytest.raises(MNISTError) as exc:
            fn()
        return tracemalloc.get_traced_memory()[1], str(exc.value)
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_refused_without_decompressing_it(tmp_path):
    bomb = _bomb(struct.pack(">II", LABEL_MAGIC, 10), 200 << 20)   # 200 KB -> 200 MB
    path = tmp_path / "labels"   # no reference checksum for this name: only the bound stops it
    path.write_bytes(bomb)
    peak, msg = _peak(lambda: read_idx(path, LABEL_MAGIC))
    assert "labels: decompresses to more than the 10 data bytes its IDX header declares" in msg
    assert peak < 5 << 20, f"peak {peak / 2**20:.1f} MiB"
    # Under MNIST's raw name, the reference checksum of the .gz refuses it even sooner.
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bomb)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((10000, 28, 28), np.uint8), 2051))
    peak, msg = _peak(lambda: load_mnist("test", data_dir=tmp_path, progress=False))
    assert "t10k-labels-idx1-ubyte: 203" in msg and "more than the 10008" in msg and peak < 20 << 20


def test_a_header_declaring_gigabytes_is_refused_within_a_bounded_read(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(_bomb(struct.pack(">IIII", 2051, 2**31, 28, 28), 8 << 20))
    peak, msg = _peak(lambda: read_idx(path, 2051))
    assert "images: truncated" in msg and peak < 30 << 20   # about the 8 MB it holds, not 1.6 TB
    load = lambda: load_mnist("test", data_dir=tmp_path, progress=False)  # noqa: E731
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.zeros(10000, np.uint8), LABEL_MAGIC))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + struct.pack(">III", 2**31, 28, 28))
    assert "expected 10000 x 28 x 28" in _peak(load)[1] or "truncated" in _peak(load)[1]
