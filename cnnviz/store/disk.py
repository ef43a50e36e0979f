"""Write failures in words a student can act on: a full disk says so, whichever layer (Python or torch) noticed."""
from __future__ import annotations

import errno
import re
from pathlib import Path

from .atomic import TEMP_NAME

FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # no space left; over the disk quota: one remedy
# torch's C++ zip writer (inline_container.cc) reports a short write as "unexpected pos" or "file write failed"
# instead of an OSError; on a local disk that is the disk filling up mid-write.
_TORCH_WRITE_FAILED = ("inline_container", "PytorchStreamWriter", "unexpected pos", "file write failed")
_TORCH_FULL = ("No space left", "unexpected pos", "file write failed", "Disk quota")


def is_torch_write_error(exc: BaseException) -> bool:
    """True for the RuntimeError torch.save raises when it cannot write its file."""
    return isinstance(exc, RuntimeError) and any(s in str(exc) for s in _TORCH_WRITE_FAILED)


def as_os_error(exc: RuntimeError) -> OSError:
    """torch's write failure as the OSError it stands for (ENOSPC when its text points at a full disk)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    short = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", text)[:160]  # the C++ source line means nothing to a student
    if any(s in text for s in _TORCH_FULL):
        return OSError(errno.ENOSPC, f"No space left on device (torch.save stopped: {short})")
    return OSError(errno.EIO, f"torch.save could not write the file ({short})")


def is_disk_full(exc: BaseException) -> bool:
    """True when `exc` means the disk (or the user's quota) is full."""
    if isinstance(exc, OSError) and exc.errno in FULL:
        return True
    return is_torch_write_error(exc) and any(s in str(exc) for s in _TORCH_FULL)


def _shown(filename: object) -> str:
    """The file a student knows: an atomic write's temp file (.<name>-<pid>-<random>.tmp) shows as <name>."""
    path = Path(str(filename))
    m = TEMP_NAME.match(path.name)
    return str(path.with_name(path.name[1:m.start("pid") - 1])) if m else str(path)


def write_problem(exc: BaseException) -> str:
    """What went wrong, for a message: 'the disk is full: ...' when it is, else the error's own text."""
    if is_torch_write_error(exc):
        exc = as_os_error(exc)
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in detail:
        detail += f": {_shown(exc.filename)}"
    detail = detail or type(exc).__name__
    return f"the disk is full: {detail}" if is_disk_full(exc) else detail


__all__ = ["as_os_error", "is_disk_full", "is_torch_write_error", "write_problem"]
