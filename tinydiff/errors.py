"""Turning any exception that reaches the command line into one or two lines for the user.

``describe(exc)`` is what ``tinydiff`` prints after ``tinydiff: error:``. tinydiff's own errors
(and a library's ValueError naming an option or file) are shown as they are; an OSError names the
file and the system's reason; a MemoryError says which knobs make the work smaller; anything else
is shown by type and first line, marked as a likely bug to report with ``--debug``, which (like
``TINYDIFF_DEBUG=1``) prints the full traceback instead.
"""
from __future__ import annotations

import errno
import os

from tinydiff.cli_checks import option_message

DEBUG_ENV_VAR = "TINYDIFF_DEBUG"
MAX_CHARS = 400   # of a message that did not come from tinydiff itself


def debug_requested(flag: bool) -> bool:
    """``--debug`` was given, or the environment variable is set to anything but '', '0'."""
    return flag or os.environ.get(DEBUG_ENV_VAR, "") not in ("", "0")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= MAX_CHARS else line[:MAX_CHARS] + " ..."


def describe(exc: BaseException) -> str:
    """The message for ``exc``: short, naming the file or option where the exception does."""
    if isinstance(exc, MemoryError):
        what = _first_line(str(exc)) or "an allocation failed"
        return (f"out of memory ({what}); try a smaller --batch-size, --n or model, or free "
                f"memory")
    if isinstance(exc, OSError) and exc.strerror and not _is_tinydiff(exc):
        where = f" {exc.filename}" if exc.filename else ""
        hint = ""
        if exc.errno == errno.ENOSPC:
            hint = "; free some space and retry (files already written, such as the last checkpoint, are intact)"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "; choose a place you may write to"
        return (f"cannot use{where}: {exc.strerror}{hint}" if where else
                f"{exc.strerror} (while reading or writing a file){hint}")
    text = option_message(str(exc).strip())
    if _is_tinydiff(exc) or isinstance(exc, (ValueError, TypeError, FloatingPointError)):
        return text or type(exc).__name__
    return (f"{type(exc).__name__}: {_first_line(text)} (unexpected: please report it, with the "
            f"traceback that --debug prints)")


def _is_tinydiff(exc: BaseException) -> bool:
    """Raised by tinydiff's own code with a message written for users (not an OSError's errno)."""
    module = type(exc).__module__ or ""
    return module.startswith(("tinydiff", "autograd")) or isinstance(exc, FileNotFoundError) and not exc.strerror
