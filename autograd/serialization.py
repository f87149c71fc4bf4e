"""Checkpoints: nested dicts of arrays and plain values in a pickle-free, verified .npz file.

``save(state, path)`` accepts a (possibly nested) structure of dicts (str or int keys), lists,
tuples, arrays (NumPy or CuPy; stored as NumPy), Tensors (stored as their array), NumPy
scalars, and Python numbers, strings, bools and None. It writes an ordinary .npz archive:

* every array is one member named by its path with '/' between keys, e.g.
  ``model/blocks.0.conv.weight`` (so ``numpy.load(path)['model/...']`` reads it directly);
* one member, ``__tinydiff__``, holds UTF-8 JSON: the format name and version, the structure
  with each array replaced by a reference to its member, and each array's dtype, shape and
  SHA-256.

Nothing is pickled: arrays are written with ``allow_pickle=False`` (object arrays are refused)
and read back the same way, so loading a file never runs code from it.

The write is atomic: the archive goes to a temporary file in the same directory, is flushed
and fsync'ed, and only then renamed over ``path`` (``os.replace``), so a crash mid-write
leaves the previous checkpoint intact. ``load`` checks the zip CRCs, the metadata, and every
array's dtype, shape and SHA-256, and raises ``CheckpointError`` naming the file and the
problem rather than returning damaged weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from typing import Any

import numpy

from autograd.backend import to_numpy
from autograd.tensor import Tensor, is_array

FORMAT = "tinydiff-checkpoint"
VERSION = 1
META_KEY = "__tinydiff__"


class CheckpointError(Exception):
    """A file that is not a readable, intact tinydiff checkpoint; the message says which and why."""


# ---------------------------------------------------------------------------- encoding
# The structure is JSON in which every container is tagged, so nothing is ambiguous:
#   {"dict": [[key, value], ...]}   (keys keep their type, str or int, and their order)
#   {"list": [...]}   {"tuple": [...]}
#   {"array": member}   {"scalar": member}   (a NumPy scalar, stored as a 0-d array)
# and JSON null/true/false/numbers/strings stand for themselves.

def _sha256(a: numpy.ndarray) -> str:
    """Digest of the array's bytes in C order (no copy for a C-contiguous array)."""
    flat = numpy.ascontiguousarray(a).reshape(-1)
    # (An ndarray has the buffer protocol; NumPy's type stubs say so only for Python >= 3.12.)
    return hashlib.sha256(memoryview(flat.view(numpy.uint8))).hexdigest()  # type: ignore[arg-type]


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, numpy.ndarray] = {}
        self.info: dict[str, dict[str, Any]] = {}

    def _member(self, path: list[str]) -> str:
        base = "/".join(path) or "array"
        name, n = base, 0
        while name in self.arrays or name == META_KEY:  # e.g. keys that contain '/'
            n += 1
            name = f"{base}~{n}"
        return name

    def _add_array(self, a: numpy.ndarray, path: list[str]) -> str:
        if a.dtype.hasobject:
            raise TypeError(f"save: array at {'/'.join(path) or '<root>'!r} has dtype object, which "
                            f"needs pickle; store numbers, strings or bytes instead")
        name = self._member(path)
        self.arrays[name] = a
        self.info[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": _sha256(a)}
        return name

    def encode(self, value: Any, path: list[str]) -> Any:
        if isinstance(value, Tensor):
            value = value.data
        if is_array(value):
            return {"array": self._add_array(to_numpy(value), path)}
        if isinstance(value, numpy.generic):  # before float: numpy.float64 is a float
            return {"scalar": self._add_array(numpy.asarray(value), path)}
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(f"save: dict keys must be str or int, got {k!r} at "
                                    f"{'/'.join(path) or '<root>'!r}")
                items.append([k, self.encode(v, path + [str(k)])])
            return {"dict": items}
        if isinstance(value, (list, tuple)):
            tag = "list" if isinstance(value, list) else "tuple"
            return {tag: [self.encode(v, path + [str(i)]) for i, v in enumerate(value)]}
        raise TypeError(f"save: cannot store a {type(value).__name__} at {'/'.join(path) or '<root>'!r}; "
                        f"supported: dict, list, tuple, arrays, Tensors, numbers, str, bool, None")


def _decode(node: Any, arrays: dict[str, numpy.ndarray]) -> Any:
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise ValueError(f"malformed node {node!r}")
    (tag, payload), = node.items()
    if tag == "dict":
        return {k: _decode(v, arrays) for k, v in payload}
    if tag == "list":
        return [_decode(v, arrays) for v in payload]
    if tag == "tuple":
        return tuple(_decode(v, arrays) for v in payload)
    if tag == "array":
        return arrays[payload]
    if tag == "scalar":
        return arrays[payload][()]
    raise ValueError(f"unknown tag {tag!r}")


# ---------------------------------------------------------------------------- writing
def _write_npz(f: Any, arrays: dict[str, numpy.ndarray]) -> None:
    """The .npz layout ``numpy.savez`` writes (one ``name.npy`` member per array, uncompressed),
    written directly so that any name works (``savez(**arrays)`` would reject a key 'file')
    and so that pickling is disabled explicitly."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", mode="w", force_zip64=True) as member:
                numpy.lib.format.write_array(member, numpy.asanyarray(a), allow_pickle=False)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(state: Any, path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` (exactly that name; no suffix is added) atomically."""
    path = os.fspath(path)
    enc = _Encoder()
    tree = enc.encode(state, [])
    meta = {"format": FORMAT, "version": VERSION, "tree": tree, "arrays": enc.info}
    arrays = dict(enc.arrays)
    arrays[META_KEY] = numpy.frombuffer(json.dumps(meta).encode("utf-8"), dtype=numpy.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    # O_EXCL: never clobber anything; mode 0o666 minus the umask, like any newly created file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


# ---------------------------------------------------------------------------- reading
def load(path: str | os.PathLike) -> Any:
    """Read a checkpoint written by ``save``; arrays come back as NumPy arrays.

    Raises FileNotFoundError for a missing file, and CheckpointError (naming the file) for a
    truncated file, a zip CRC error, a non-tinydiff or pickle-bearing archive, bad metadata,
    an unknown format version, or an array whose dtype, shape or SHA-256 differs from what
    was saved.
    """
    path = os.fspath(path)

    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: {why}")

    try:
        npz = numpy.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise fail(f"not a readable .npz archive (truncated or corrupt?): {type(exc).__name__}: {exc}") from None
    if not isinstance(npz, numpy.lib.npyio.NpzFile):
        raise fail("not a tinydiff checkpoint: it holds a single .npy array, not an .npz archive")
    with npz:
        def read(name: str) -> numpy.ndarray:
            try:
                return npz[name]
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
                raise fail(f"cannot read member {name!r}: {type(exc).__name__}: {exc}") from None

        if META_KEY not in npz.files:
            raise fail(f"not a tinydiff checkpoint: no {META_KEY!r} metadata member "
                       f"(members: {sorted(npz.files)[:5]}{' ...' if len(npz.files) > 5 else ''})")
        raw = read(META_KEY)
        try:
            if raw.dtype != numpy.uint8 or raw.ndim != 1:
                raise ValueError(f"metadata member has dtype {raw.dtype} and shape {raw.shape}, "
                                 f"expected 1-D uint8")
            meta = json.loads(raw.tobytes().decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("metadata is not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise fail(f"bad metadata: {exc}") from None
        if meta.get("format") != FORMAT:
            raise fail(f"not a tinydiff checkpoint: metadata format is {meta.get('format')!r}")
        if type(meta.get("version")) is not int or meta["version"] != VERSION:
            raise fail(f"unsupported checkpoint format version {meta.get('version')!r} "
                       f"(this code reads version {VERSION})")
        info = meta.get("arrays")
        if not isinstance(info, dict) or "tree" not in meta:
            raise fail("bad metadata: missing 'arrays' or 'tree'")
        members = set(npz.files) - {META_KEY}
        if members != set(info):
            extra, missing = sorted(members - set(info)), sorted(set(info) - members)
            raise fail(f"archive members do not match the metadata (unlisted: {extra}, missing: {missing})")

        arrays: dict[str, numpy.ndarray] = {}
        for name, expect in info.items():
            a = read(name)
            try:
                dtype, shape, digest = expect["dtype"], tuple(expect["shape"]), expect["sha256"]
            except (KeyError, TypeError):
                raise fail(f"bad metadata for array {name!r}: {expect!r}") from None
            if a.dtype.str != dtype or a.shape != shape:
                raise fail(f"array {name!r} has dtype {a.dtype.str} and shape {a.shape}, "
                           f"metadata says {dtype} and {shape}")
            if _sha256(a) != digest:
                raise fail(f"array {name!r} fails its SHA-256 check: its contents were changed after saving")
            arrays[name] = a
        try:
            return _decode(meta["tree"], arrays)
        except (ValueError, KeyError, TypeError) as exc:
            raise fail(f"bad metadata tree: {type(exc).__name__}: {exc}") from None
