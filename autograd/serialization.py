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
import math
import os
import struct
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
# Bounds on what a file may make us do before it is known to be good. Every array member must be
# stored uncompressed (tinydiff never writes compressed members), so no member can claim more
# bytes than the file holds, and each one's .npy header must agree with the metadata (dtype,
# shape, hence size) before a byte of its data is read: memory is bounded by the file's size.
MAX_META_BYTES = 16 << 20     # the metadata JSON; a large UNet's is ~100 KB
MAX_META_DEPTH = 100          # JSON nesting; a training checkpoint's is ~20
MAX_NPY_HEADER = 10_000       # NumPy's own default bound on a .npy header
_REFUSED_KINDS = "OV"         # object (pickle) and void/structured dtypes

_PICKLE_MAGIC = (b"\x80", )   # a pickle stream starts with PROTO (0x80)
_NPY_MAGIC = b"\x93NUMPY"


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of [ and { in a JSON text, not counting brackets inside strings."""
    import re
    stripped = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', raw)
    a = numpy.frombuffer(stripped, dtype=numpy.uint8)
    step = (numpy.isin(a, (ord("["), ord("{"))).astype(numpy.int64)
            - numpy.isin(a, (ord("]"), ord("}"))).astype(numpy.int64))
    return int(numpy.cumsum(step).max(initial=0))


def _what_is_it(head: bytes) -> str:
    if head.startswith(_NPY_MAGIC):
        return "it holds a single .npy array, not an .npz archive"
    if head[:1] in _PICKLE_MAGIC:
        return "it looks like a pickle file, which tinydiff never loads (it could run code)"
    return "not a zip archive (truncated, corrupt, or another kind of file)"


def _expected(name: str, entry: Any, fail: Any) -> tuple[numpy.dtype, tuple[int, ...], str]:
    """The dtype, shape and digest the metadata declares for array ``name``, checked for sanity."""
    try:
        dtype = numpy.dtype(entry["dtype"])
        shape = tuple(entry["shape"])
        digest = entry["sha256"]
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(f"bad metadata for array {name!r}: {type(exc).__name__}: {exc}") from None
    if dtype.kind in _REFUSED_KINDS or dtype.hasobject:
        raise fail(f"array {name!r} has dtype {dtype.str}, which tinydiff never stores (pickle or "
                   f"structured data)")
    if not all(type(n) is int and n >= 0 for n in shape) or len(shape) > 32:
        raise fail(f"bad metadata for array {name!r}: shape {entry['shape']!r}")
    if not isinstance(digest, str) or len(digest) != 64:
        raise fail(f"bad metadata for array {name!r}: sha256 {digest!r}")
    return dtype, shape, digest


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dtype: numpy.dtype,
                 shape: tuple[int, ...], fail: Any) -> numpy.ndarray:
    """One .npy member, after its header matched (dtype, shape and exact payload size)."""
    name = info.filename[:-4]
    try:
        with zf.open(info) as fp:  # a ZipExtFile: a buffered reader, so readinto exists
            reader: Any = fp
            version = numpy.lib.format.read_magic(fp)
            readers = {(1, 0): numpy.lib.format.read_array_header_1_0,
                       (2, 0): numpy.lib.format.read_array_header_2_0}
            if version not in readers:
                raise ValueError(f"unknown .npy version {version}")
            h_shape, fortran, h_dtype = readers[version](fp, max_header_size=MAX_NPY_HEADER)
            if h_dtype != dtype or tuple(h_shape) != shape:
                raise fail(f"array {name!r} has dtype {h_dtype.str} and shape {tuple(h_shape)}, "
                           f"metadata says {dtype.str} and {shape}")
            nbytes = math.prod(shape) * dtype.itemsize
            if info.file_size - fp.tell() != nbytes:
                raise fail(f"array {name!r}: its member holds {info.file_size - fp.tell()} data "
                           f"bytes, its shape and dtype need {nbytes}")
            data = bytearray(nbytes)   # writable, like numpy.load's arrays
            view, got = memoryview(data), 0
            while got < nbytes:
                n = reader.readinto(view[got:got + (1 << 24)])
                if not n:
                    raise ValueError("the member ends early")
                got += n
            if fp.read(1):
                raise ValueError("the member runs on")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        # ValueError's text from NumPy may suggest allow_pickle=True; we never relay that.
        why = "CRC mismatch" if "CRC" in str(exc) else type(exc).__name__
        raise fail(f"cannot read member {name!r} (damaged: {why})") from None
    a = numpy.frombuffer(data, dtype=dtype)
    return a.reshape(shape[::-1]).T if fortran else a.reshape(shape)


def load(path: str | os.PathLike) -> Any:
    """Read a checkpoint written by ``save``; arrays come back as NumPy arrays.

    Raises FileNotFoundError for a missing file, and CheckpointError (naming the file) for a
    truncated file, a zip CRC error, a non-tinydiff or pickle-bearing archive, bad metadata,
    an unknown format version, or an array whose dtype, shape or SHA-256 differs from what
    was saved. Before reading any array it checks, in this order: every member is stored
    uncompressed and lies within the file; the metadata member is at most MAX_META_BYTES and
    nested at most MAX_META_DEPTH deep; the members are exactly those the metadata lists; each
    member's .npy header agrees with the metadata's dtype and shape. So a crafted file costs at
    most about its own size in memory.
    """
    path = os.fspath(path)

    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: {why}")

    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise fail(f"cannot open: {exc.strerror or exc}") from None
    with f:
        head = f.read(8)
        f.seek(0)
        size = os.fstat(f.fileno()).st_size
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, IndexError, struct.error):
            raise fail(f"not a readable .npz archive: {_what_is_it(head)}") from None
        with zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise fail("not a tinydiff checkpoint: the archive lists a member twice")
            members: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise fail(f"not a tinydiff checkpoint: member {info.filename!r} is not a .npy array")
                if info.compress_type != zipfile.ZIP_STORED:
                    raise fail(f"member {info.filename!r} is compressed; tinydiff checkpoints store "
                               f"members uncompressed (to convert: unzip it and zip it again with "
                               f"'zip -0')")
                if info.file_size != info.compress_size or info.header_offset + info.compress_size > size:
                    raise fail(f"member {info.filename!r} claims {info.file_size} bytes, more than "
                               f"the file holds (truncated or crafted)")
                members[info.filename[:-4]] = info

            if META_KEY not in members:
                listed = sorted(members)
                raise fail(f"not a tinydiff checkpoint: no {META_KEY!r} metadata member "
                           f"(members: {listed[:5]}{' ...' if len(listed) > 5 else ''})")
            meta_info = members[META_KEY]
            if meta_info.file_size > MAX_META_BYTES + MAX_NPY_HEADER:
                raise fail(f"bad metadata: {meta_info.file_size} bytes, more than the "
                           f"{MAX_META_BYTES} allowed")
            n_meta = meta_info.file_size - 128  # a v1.0 .npy header of a 1-D uint8 array is 128 bytes
            try:
                raw = _read_member(zf, meta_info, numpy.dtype(numpy.uint8), (n_meta,), fail)
            except CheckpointError as exc:
                raise fail(f"bad metadata: {str(exc).removeprefix(f'{path}: ')}") from None
            text = raw.tobytes()
            if _json_depth(text) > MAX_META_DEPTH:
                raise fail(f"bad metadata: JSON nested deeper than {MAX_META_DEPTH} levels")
            try:
                meta = json.loads(text.decode("utf-8"))
                if not isinstance(meta, dict):
                    raise ValueError("metadata is not a JSON object")
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise fail(f"bad metadata: {exc}") from None
            if meta.get("format") != FORMAT:
                raise fail(f"not a tinydiff checkpoint: metadata format is {meta.get('format')!r}")
            if type(meta.get("version")) is not int or meta["version"] != VERSION:
                raise fail(f"unsupported checkpoint format version {meta.get('version')!r} "
                           f"(this code reads version {VERSION})")
            declared = meta.get("arrays")
            if not isinstance(declared, dict) or "tree" not in meta:
                raise fail("bad metadata: missing 'arrays' or 'tree'")
            names_in_zip = set(members) - {META_KEY}
            if names_in_zip != set(declared):
                extra, missing = sorted(names_in_zip - set(declared)), sorted(set(declared) - names_in_zip)
                raise fail(f"archive members do not match the metadata (unlisted: {extra[:5]}, "
                           f"missing: {missing[:5]})")

            expected = {name: _expected(name, entry, fail) for name, entry in declared.items()}
            arrays: dict[str, numpy.ndarray] = {}
            for name, (dtype, shape, digest) in expected.items():
                a = _read_member(zf, members[name], dtype, shape, fail)
                if _sha256(a) != digest:
                    raise fail(f"array {name!r} fails its SHA-256 check: its contents were changed after saving")
                arrays[name] = a
    try:
        return _decode(meta["tree"], arrays)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise fail(f"bad metadata tree: {type(exc).__name__}: {exc}") from None
