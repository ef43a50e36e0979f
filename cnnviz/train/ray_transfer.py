"""A run folder's trip back from a Ray actor: packed on the node that trained it, unpacked atomically into the app's
runs folder under the same run id, and the events' paths pointed at that local copy. No ray here (plain files).

The copy is taken after every epoch (so a lost node still leaves the curves so far, as a crashed local worker does)
and once more at the end, with the checkpoint. The node's "training" mark never travels: a mark of another machine's
process reads as alive for ever; the app marks its copy as its own while the remote run trains.
"""
from __future__ import annotations

import io
import os
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ..store.run_state import MARKER, end_training, mark_training
from .events import Event, Finished, RunStarted, Stopped

CHUNK = 8 << 20  # bytes per message: a large checkpoint travels in pieces, none a burden on a small object store
INCOMING = ".deleting-"  # hidden; the start-up clean-up removes such a folder if the server died in mid-copy


def pack_folder(folder: Path, chunk: int = CHUNK) -> Iterator[bytes]:
    """The folder's files (not hidden temp files, not the training mark) as an uncompressed tar, in pieces of `chunk`
    bytes; checkpoints are already dense, so compression would cost time and save little."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(Path(folder).rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and not path.is_symlink() and rel.name != MARKER and not rel.name.startswith("."):
                tar.add(path, arcname=str(rel), recursive=False)
    data = buf.getvalue()
    for start in range(0, max(1, len(data)), chunk):
        yield data[start:start + chunk]


def unpack_folder(data: bytes, dest: Path, *, training: bool) -> Path:
    """Make `dest` the folder packed in `data`, atomically for readers (they see the previous copy or this one).
    `training`: the run goes on remotely, so the copy is marked as written by this process until the final one."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    incoming = dest.with_name(f"{INCOMING}{dest.name}-in-{secrets.token_hex(3)}")
    try:
        incoming.mkdir()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            tar.extractall(incoming, filter="data")  # no absolute paths, links out of the folder or device files
        (incoming / MARKER).unlink(missing_ok=True)
        if training:
            mark_training(incoming)  # before the swap: the copy never shows without its mark
        old = dest.with_name(f"{INCOMING}{dest.name}-old-{secrets.token_hex(3)}")
        if dest.exists():
            os.rename(dest, old)  # a folder cannot be renamed over a full one: move the old copy aside first
        os.rename(incoming, dest)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    finally:
        end_training(incoming, None)  # forget the temporary name (the mark file itself moved with the folder)
    if training:
        mark_training(dest)
    else:
        end_training(dest, None)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def local_path(remote: str | None, remote_dir: str, local_dir: Path) -> str | None:
    """A file of the remote run folder, as the local copy names it (None stays None)."""
    if not remote:
        return remote
    try:
        return str(local_dir / Path(remote).relative_to(remote_dir))
    except ValueError:  # not inside the run folder (no such case today): the name alone
        return str(local_dir / Path(remote).name)


def localized(ev: Event, remote_dir: str, local_dir: Path) -> Event:
    """The event with its run folder and checkpoint paths pointing at the local copy."""
    if isinstance(ev, RunStarted) and ev.run_dir:
        return replace(ev, run_dir=str(local_dir))
    if isinstance(ev, (Finished, Stopped)) and ev.checkpoint:
        return replace(ev, checkpoint=local_path(ev.checkpoint, remote_dir, local_dir))
    return ev


def without_copy(ev: Event, why: str) -> Event:
    """The end event when the run folder could not be copied back: no checkpoint here, and why."""
    note = f"the run folder could not be copied back from the Ray cluster ({why})"
    if isinstance(ev, Finished):
        return replace(ev, checkpoint=None, warning=f"{ev.warning}; {note}" if ev.warning else note)
    if isinstance(ev, Stopped):
        return replace(ev, checkpoint=None, message=f"{ev.message}; {note}")
    return ev


__all__ = ["CHUNK", "local_path", "localized", "pack_folder", "unpack_folder", "without_copy"]
