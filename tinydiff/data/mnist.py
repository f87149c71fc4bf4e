"""MNIST from the original IDX files: read, validate, find locally, cache, download (verified).

Where the files come from, first match wins:

1. a local folder: the `data_dir` argument (the CLI's `--data-dir`), else the `TINYDIFF_DATA`
   environment variable. The files may sit in that folder or in its `mnist/` subfolder, as
   `.gz` or decompressed. A folder named this way must exist and hold the files; we do not
   silently fall back to downloading, since a typo in a path should be loud.
2. the cache, `$XDG_CACHE_HOME/tinydiff/mnist` (default `~/.cache/tinydiff/mnist`);
3. a download into the cache from `MNIST_MIRRORS`, tried in order.

Trust: a `.gz` file is always checked against the SHA256 hard-coded in `MNIST_SHA256`, wherever
it was found; a downloaded file only reaches its final name (by an atomic rename of a temporary
file in the cache folder) after its checksum matched. Decompressed files are checked
structurally (IDX magic, dimensions, exact payload length), and against a `SHA256SUMS` file in
their folder if it lists them (`name`, `*name` or `./name`). Compression is recognised by the
gzip magic bytes, whatever the file is called, and gzip data is always checked against the
reference SHA256; decompression stops at the size the IDX header declares (and at the split's
true size), so a small crafted file cannot make us inflate hundreds of megabytes. Nothing is ever
unpickled; arrays come from `np.frombuffer`.
"""
from __future__ import annotations

import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

DATA_ENV_VAR = "TINYDIFF_DATA"
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",        # torchvision's mirror
    "https://storage.googleapis.com/cvdf-datasets/mnist/",   # TensorFlow's mirror
)
MNIST_SHA256: MappingProxyType[str, str] = MappingProxyType({
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
})
IMAGE_MAGIC = 2051   # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
LABEL_MAGIC = 2049   # 0x00000801: unsigned bytes, 1 dimension (count)
IMAGE_SIZE = 28
DOWNLOAD_TIMEOUT_S = 60.0


class _Split(NamedTuple):
    images: str   # file name without .gz
    labels: str
    n: int        # images (and labels) in the split


_SPLITS: MappingProxyType[str, _Split] = MappingProxyType({
    "train": _Split("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": _Split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
})

_HINT_CACHE = "delete it and re-run to download it again"
_HINT_LOCAL = (f"replace it with an intact copy of the original file, or stop pointing "
               f"--data-dir / {DATA_ENV_VAR} at this folder to use the download cache instead")
_HINT_GENERIC = "replace it with an intact copy of the original file"


class MNISTError(Exception):
    """MNIST files missing, corrupt, truncated, or impossible to download; says what to do."""


# --------------------------------------------------------------------------- IDX parsing

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parse_idx(data: bytes, path: Path, expected_magic: int | None, hint: str) -> np.ndarray:
    """The uint8 array of an (already decompressed) IDX file, after checking its header."""
    if len(data) < 4:
        raise MNISTError(f"{path}: truncated: {len(data)} bytes, too short for an IDX header; {hint}")
    magic = int.from_bytes(data[:4], "big")
    # IDX magic: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions.
    if data[:2] != b"\x00\x00" or data[2] != 0x08 or (
            expected_magic is not None and magic != expected_magic):
        want = (f"{expected_magic}" if expected_magic is not None
                else f"an unsigned-byte IDX magic such as {IMAGE_MAGIC} or {LABEL_MAGIC}")
        raise MNISTError(f"{path}: wrong IDX magic number {magic} (expected {want}); not the "
                         f"right IDX file; {hint}")
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise MNISTError(f"{path}: truncated header: expected {header_len} bytes for {ndim} "
                         f"dimensions, found {len(data)}; {hint}")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    found = len(data) - header_len
    if found != expected:
        what = "truncated" if found < expected else "has extra trailing bytes"
        shape = f"{' x '.join(map(str, dims))} = " if ndim > 1 else ""
        raise MNISTError(f"{path}: {what}: header says {shape}{expected} data bytes after the "
                         f"{header_len}-byte header, found {found}; {hint}")
    # A read-only view of `data`, no copy: public entry points copy only where they must.
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header_len).reshape(dims)


GZIP_MAGIC = b"\x1f\x8b"      # a raw IDX file starts with two zero bytes instead
_MAX_IDX_HEADER = 4 + 4 * 255  # magic and up to 255 dimensions


def _declared_size(head: bytes) -> int | None:
    """Header plus payload bytes that an IDX header declares, or None if ``head`` is too short
    (or not IDX) to tell; ``_parse_idx`` then says what is wrong."""
    if len(head) < 4 or head[:2] != b"\x00\x00":
        return None
    header_len = 4 + 4 * head[3]
    if len(head) < header_len:
        return None
    dims = struct.unpack(f">{head[3]}I", head[4:header_len])
    return header_len + math.prod(dims)


def _gunzip_bounded(raw: bytes, path: Path, hint: str, max_bytes: int | None) -> bytes:
    """Decompress a gzip stream, but never more than its IDX header declares (plus one byte, to
    tell that there is more): a small 'bomb' costs a few KB, not what it would expand to."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)   # gzip framing; checks CRC32 and length
    try:
        head = d.decompress(raw, _MAX_IDX_HEADER)
        declared = _declared_size(head)
        if declared is None:
            return head
        if max_bytes is not None and declared > max_bytes:
            raise MNISTError(f"{path}: its IDX header declares {declared - (4 + 4 * head[3])} data "
                             f"bytes, more than the {max_bytes - (4 + 4 * head[3])} this file can "
                             f"hold; {hint}")
        data = head + d.decompress(d.unconsumed_tail, max(declared - len(head), 0) + 1)
        if len(data) > declared or d.decompress(d.unconsumed_tail, 1):
            payload = declared - (4 + 4 * head[3])
            raise MNISTError(f"{path}: decompresses to more than the {payload} data bytes its IDX "
                             f"header declares; {hint}")
        if not d.eof:
            raise MNISTError(f"{path}: corrupt or truncated gzip data (the stream ends early); {hint}")
        if d.unused_data:
            raise MNISTError(f"{path}: has extra bytes after its gzip stream; {hint}")
    except zlib.error as exc:
        raise MNISTError(f"{path}: corrupt or truncated gzip data ({exc}); {hint}") from exc
    return data


def _read_idx(path: Path, expected_magic: int | None, hint: str,
              sha256: str | None = None, max_bytes: int | None = None) -> np.ndarray:
    """Read, verify and parse one IDX file. Compression is told by the magic bytes, never by
    the name: gzip data under a raw name is still checked against the reference SHA256 of the
    original .gz. ``max_bytes`` bounds the decompressed size (header included)."""
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise MNISTError(f"{path}: {size} bytes, more than the {max_bytes} an MNIST file of "
                             f"this kind can take; {hint}")
        raw = path.read_bytes()
    except OSError as exc:
        raise MNISTError(f"cannot read {path}: {exc}") from exc
    gz = raw[:2] == GZIP_MAGIC
    if gz and not path.name.endswith(".gz"):
        sha256 = MNIST_SHA256.get(path.name + ".gz", sha256)
    if sha256 is not None and (got := _sha256(raw)) != sha256:
        raise MNISTError(f"{path}: SHA256 mismatch: expected {sha256}, found {got} "
                         f"({len(raw)} bytes{', gzip data' if gz else ''}); the file is corrupt "
                         f"or not the original; {hint}")
    if gz:
        raw = _gunzip_bounded(raw, path, hint, max_bytes)
    return _parse_idx(raw, path, expected_magic, hint)


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip-compressed or raw) into a uint8 array.

    The shape is the one in the header, e.g. (60000, 28, 28) for magic 2051 and (60000,) for
    2049. Raises `MNISTError` naming the file on a wrong magic (when `expected_magic` is given,
    or for non-byte IDX types), a truncated header or payload, trailing bytes, or bad gzip data.
    """
    # Copied, so callers get an ordinary writable array rather than a view of immutable bytes.
    return _read_idx(Path(path), expected_magic, _HINT_GENERIC).copy()


# --------------------------------------------------------------------------- locating files

class _Found(NamedTuple):
    path: Path
    sha256: str | None   # reference checksum to verify on read, if one is known
    hint: str            # what to tell the user if this file turns out to be bad


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/tinydiff/mnist`, or `~/.cache/tinydiff/mnist` when that is unset.

    Per the XDG spec an empty or relative `XDG_CACHE_HOME` is ignored.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tinydiff" / "mnist"


def _sums_file(folder: Path) -> dict[str, str]:
    """Checksums listed in `folder/SHA256SUMS` (sha256sum format), {} if there is none."""
    try:
        text = (folder / "SHA256SUMS").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    sums = {}
    for line in text.splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and len(parts[0]) == 64:
            # sha256sum writes '*name' for binary mode; `sha256sum ./*` writes './name'.
            name = os.path.normpath(parts[1].strip().removeprefix("*"))
            sums[name] = parts[0].lower()
    return sums


def _in_folder(folder: Path, name: str, sums: dict[str, str]) -> _Found | None:
    gz = folder / f"{name}.gz"
    if gz.is_file():
        # The hard-coded reference wins over a SHA256SUMS file that might disagree with it.
        return _Found(gz, MNIST_SHA256[gz.name], _HINT_LOCAL)
    plain = folder / name
    if plain.is_file():
        return _Found(plain, sums.get(name), _HINT_LOCAL)
    return None


def _from_local(root: Path, source: str, split: _Split) -> tuple[_Found, _Found]:
    if not root.is_dir():
        raise MNISTError(f"MNIST folder {root} (from {source}) does not exist or is not a "
                         f"folder; fix --data-dir / {DATA_ENV_VAR}, or leave both unset to use "
                         f"the cache {default_cache_dir()} and download if needed")
    for folder in (root, root / "mnist"):
        sums = _sums_file(folder)
        images, labels = _in_folder(folder, split.images, sums), _in_folder(folder, split.labels, sums)
        if images and labels:
            return images, labels
    raise MNISTError(f"MNIST folder {root} (from {source}) does not hold {split.images}[.gz] and "
                     f"{split.labels}[.gz], neither directly nor in {root / 'mnist'}; put the "
                     f"original files there, or leave --data-dir / {DATA_ENV_VAR} unset to use "
                     f"the cache {default_cache_dir()} and download if needed")


def _open_url(url: str, timeout: float):
    """Open `url` for reading (the single network entry point; tests replace it)."""
    from tinydiff import __version__  # here, not at import time: no cycle with the package init
    request = urllib.request.Request(url, headers={"User-Agent": f"tinydiff/{__version__}"})
    return urllib.request.urlopen(request, timeout=timeout)


class _ChecksumMismatch(Exception):
    pass


def _fetch_verified(url: str, dest: Path, sha256: str, progress: bool) -> None:
    """Stream `url` into a temp file beside `dest`; rename it to `dest` only if the hash matches.

    The temp file lives in the same folder so the rename is atomic: `dest` is either absent or
    complete and verified, even if we are killed mid-download or another process races us.
    """
    from tqdm import tqdm  # only needed on this path; reading local files works without it

    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp: Path | None = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, _open_url(url, DOWNLOAD_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            with tqdm(total=int(length) if length else None, unit="B", unit_scale=True,
                      desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256:
            raise _ChecksumMismatch(f"SHA256 mismatch: expected {sha256}, got "
                                    f"{digest.hexdigest()} ({size} bytes)")
        os.replace(tmp_name, dest)
        tmp = None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _download(name: str, cache: Path, progress: bool) -> None:
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MNISTError(f"cannot create the MNIST cache folder {cache}: {exc}; set "
                         f"XDG_CACHE_HOME, or pass --data-dir / set {DATA_ENV_VAR}") from exc
    failures = []
    for mirror in MNIST_MIRRORS:
        url = mirror + name
        try:
            _fetch_verified(url, cache / name, MNIST_SHA256[name], progress)
            return
        except (OSError, _ChecksumMismatch, ValueError, http.client.HTTPException) as exc:
            failures.append(f"  {url}: {exc}")
    raise MNISTError(f"could not download {name}; tried:\n" + "\n".join(failures) + "\n"
                     f"If this machine is offline, copy the original MNIST files into a folder "
                     f"and pass --data-dir DIR or set {DATA_ENV_VAR}=DIR (or put the .gz files "
                     f"in the cache {cache}).")


def _locate(split: str, data_dir: str | os.PathLike | None, download: bool,
            progress: bool) -> tuple[_Found, _Found]:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    files = _SPLITS[split]
    if data_dir is not None:
        return _from_local(Path(data_dir).expanduser(), "--data-dir / data_dir", files)
    if env := os.environ.get(DATA_ENV_VAR):
        return _from_local(Path(env).expanduser(), f"${DATA_ENV_VAR}", files)

    cache = default_cache_dir()
    names = [f"{files.images}.gz", f"{files.labels}.gz"]
    missing = [n for n in names if not (cache / n).is_file()]
    if missing and not download:
        raise MNISTError(f"MNIST {split} files {', '.join(missing)} are not in the cache {cache} "
                         f"and downloading is disabled; pass --data-dir DIR or set "
                         f"{DATA_ENV_VAR}=DIR to a folder holding the original MNIST files, or "
                         f"allow the download")
    for name in missing:
        _download(name, cache, progress)
    images, labels = (_Found(cache / n, MNIST_SHA256[n], _HINT_CACHE) for n in names)
    return images, labels


# --------------------------------------------------------------------------- loading

def _load_checked(split: str, data_dir: str | os.PathLike | None, download: bool,
                  progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read-only uint8 views of a split's images and labels, fully validated."""
    img_src, lab_src = _locate(split, data_dir, download, progress)
    files = _SPLITS[split]
    # Bounds from the split's true sizes: header + count x 28 x 28 bytes, header + count bytes.
    images = _read_idx(img_src.path, IMAGE_MAGIC, img_src.hint, img_src.sha256,
                       max_bytes=16 + files.n * IMAGE_SIZE * IMAGE_SIZE)
    labels = _read_idx(lab_src.path, LABEL_MAGIC, lab_src.hint, lab_src.sha256,
                       max_bytes=8 + files.n)
    if images.shape != (files.n, IMAGE_SIZE, IMAGE_SIZE):
        raise MNISTError(f"{img_src.path}: expected {files.n} x {IMAGE_SIZE} x {IMAGE_SIZE} "
                         f"images for the {split} split, header says "
                         f"{' x '.join(map(str, images.shape))}; {img_src.hint}")
    if labels.shape != (files.n,):
        raise MNISTError(f"{lab_src.path}: expected {files.n} labels for the {split} split, "
                         f"header says {' x '.join(map(str, labels.shape))}; {lab_src.hint}")
    if labels.max(initial=0) > 9:
        raise MNISTError(f"{lab_src.path}: labels must be digits 0-9, found {labels.max()}; "
                         f"{lab_src.hint}")
    return images, labels


def load_mnist_uint8(split: str = "train", data_dir: str | os.PathLike | None = None,
                     download: bool = True, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Raw MNIST: images uint8 (N, 28, 28), 0 = background; labels int64 (N,) in 0..9.

    Same sources and checks as `load_mnist`.
    """
    images, labels = _load_checked(split, data_dir, download, progress)
    return images.copy(), labels.astype(np.int64)


def load_mnist(split: str = "train", data_dir: str | os.PathLike | None = None,
               download: bool = True, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST `split` ("train": 60000, "test": 10000) ready for a diffusion model.

    Returns images float32 (N, 1, 28, 28) scaled from [0, 255] to [-1, 1] (0 -> -1, 255 -> 1
    exactly) and labels int64 (N,). Files are taken from `data_dir` or `$TINYDIFF_DATA`, else
    the cache, else downloaded into the cache when `download` is true, with a progress bar when
    `progress` is true; see the module docstring. Any problem raises `MNISTError` naming the
    file and what to do about it.
    """
    images, labels = _load_checked(split, data_dir, download, progress)
    out = images.astype(np.float32)[:, None]
    out /= 127.5   # 255 / 127.5 is exactly 2 in binary floating point, so the ends are exact
    out -= 1.0
    return out, labels.astype(np.int64)
