"""Small files written so that a crash at any moment leaves either the old file or the new one.

``write_atomic(path, data)`` writes a temporary file beside ``path``, flushes and fsyncs it, and
renames it over ``path`` (``os.replace`` is atomic on POSIX and Windows). Used for loss.csv when
it must be rewritten and for config.json; checkpoints do the same in ``autograd.serialization``.
"""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Replace ``path`` by a file holding ``data``, atomically; returns the path."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    # O_EXCL: never clobber anything; mode 0o666 minus the umask like any new file (mkstemp's
    # 0o600 would make loss.csv and config.json private after their first rewrite).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sync(f) -> None:
    """Flush a file object and make its contents durable (rows written before a checkpoint must
    survive any crash after the checkpoint appears)."""
    f.flush()
    if hasattr(f, "fileno"):  # the loss log of a distributed rank other than 0 is no file
        os.fsync(f.fileno())


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that writes of ``path`` left behind when killed mid-write
    (``.NAME.<random>.tmp`` beside it, as written here and by ``autograd.serialization.save``);
    returns what was removed. Call it only when no other process is writing ``path``."""
    path = Path(path)
    pattern = re.compile(r"\." + re.escape(path.name) + r"\.[A-Za-z0-9_]+\.tmp")
    removed = []
    for p in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        if pattern.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", name)
