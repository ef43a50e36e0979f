"""Whose runs a user sees: the shared ones and their own, so students on one server do not see each other's work.

Shared: checkpoints/ (shipped, or saved by name), runs/<id> (trained from the command line, or shared on purpose).
Own: runs/users/<digest>/<id>, trained in the web app. The digest is a hash of the workspace key (a random token
kept by the browser, or the login name), so a key never becomes a path and one folder name does not reveal another's.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from .checkpoints import CheckpointEntry, CheckpointError, list_checkpoints, named_checkpoint, safe_name
from .listing import Listing
from .paths import runs_dir
from .run_reader import STATE_NOTES, RunRecord, list_runs, read_run, run_path

USERS = "users"  # runs/users/<digest>/: the web app's private runs
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


class WorkspaceError(ValueError):
    """A run that is not in this workspace, or cannot be shared; the message says which and why."""


class UnreadableRun(WorkspaceError):
    """A run that is there but cannot be read (a damaged or foreign file); the message names the file and the problem."""


@dataclass(frozen=True)
class Workspace:
    """One user's view of the runs: the shared ones, plus their own when `key` is set (None: shared only)."""

    key: str | None = None

    @classmethod
    def new(cls) -> Workspace:
        """A fresh private workspace (random key)."""
        return cls(secrets.token_hex(16))

    @classmethod
    def from_token(cls, token: object) -> Workspace | None:
        """The workspace of a token made by `new()` (as a browser keeps it); None for anything else."""
        return cls(token) if isinstance(token, str) and _TOKEN.match(token) else None

    @classmethod
    def for_login(cls, username: str) -> Workspace:
        """The workspace of a logged-in user: the same on every device and after a restart."""
        return cls(f"login:{username}")

    @property
    def token(self) -> str | None:
        """The key when it is a browser token (what the browser stores), else None."""
        return self.key if self.key and _TOKEN.match(self.key) else None

    @property
    def own_root(self) -> Path | None:
        """The folder of this user's runs, None for the shared-only view."""
        if self.key is None:
            return None
        return runs_dir() / USERS / hashlib.sha256(self.key.encode()).hexdigest()[:24]

    @property
    def runs_root(self) -> Path:
        """Where this user's new runs are written."""
        return self.own_root or runs_dir()

    def roots(self) -> list[Path]:
        """Run folders this user sees: the shared runs, then their own."""
        return [runs_dir()] + ([self.own_root] if self.own_root else [])

    def checkpoints(self) -> Listing[CheckpointEntry]:
        """Checkpoints this user may open: shipped, shared and their own."""
        return list_checkpoints(self.roots())

    def find_checkpoint(self, name: str) -> Path | None:
        """The file of checkpoint `name` if this user may open it, found without listing (and reading) every
        checkpoint: checkpoints/<name>.pt first (saved by name, else shipped), then the shared runs, then their own."""
        try:
            name = safe_name(name)
        except CheckpointError:
            return None
        candidates = [root / name / "model.pt" for root in self.roots()]
        return named_checkpoint(name) or next((p for p in candidates if p.is_file()), None)

    def runs(self) -> Listing[RunRecord]:
        """Runs this user may replay, newest first; `.skipped` names the ones that cannot be read."""
        return list_runs(self.roots())

    def owns(self, path: Path) -> bool:
        """True for a file or folder inside this user's own runs."""
        own = self.own_root
        return own is not None and Path(path).resolve().is_relative_to(own.resolve())

    def find_run(self, run_id: str) -> RunRecord:
        """A run this user sees, by id (own runs first: a private id never resolves to someone else's)."""
        for root in reversed(self.roots()):
            try:
                path = run_path(str(run_id), root)
            except ValueError as exc:
                raise WorkspaceError(str(exc)) from None
            if (path / "config.json").is_file():
                try:
                    return read_run(path)
                except (OSError, ValueError) as exc:  # damaged or foreign: the listings skip it too
                    raise UnreadableRun(f"run {run_id!r} cannot be read: {exc}") from None
        raise WorkspaceError(f"no run called {run_id!r} here; refresh the list")

    def share(self, run_id: str) -> Path:
        """Move one of this user's runs to runs/<id>, where every user sees it; returns the new folder."""
        record = self.find_run(run_id)
        if not self.owns(record.dir):
            raise WorkspaceError(f"run {run_id!r} is already shared")
        if record.state == "training":
            raise WorkspaceError(f"run {run_id!r} is still training; share it once it has finished or was stopped")
        if record.checkpoint is None:
            raise WorkspaceError(f"run {run_id!r} has no saved weights to share ({STATE_NOTES.get(record.state, 'none')})")
        target = run_path(record.run_id)
        if target.exists():
            raise WorkspaceError(f"a shared run called {run_id!r} already exists")
        os.replace(record.dir, target)  # one rename: the run is either private or shared, never half of each
        return target

    def check_deletable(self, record: RunRecord) -> None:
        """WorkspaceError unless `record` is one of this user's own runs and has stopped training."""
        if not self.owns(record.dir):
            raise WorkspaceError(f"run {record.run_id!r} is shared with everyone; only the server's owner can remove it")
        if record.state == "training":
            raise WorkspaceError(f"run {record.run_id!r} is still training: stop it in the Train tab first, then "
                                 "delete it")

    def delete(self, run_id: str) -> None:
        """Remove one of this user's own runs (shared runs are the lecturer's to remove, on disk; a run that still
        trains is refused)."""
        record = self.find_run(run_id)
        self.check_deletable(record)
        doomed = record.dir.with_name(f".deleting-{record.dir.name}")
        os.replace(record.dir, doomed)  # gone from every menu at once, even while the files are being removed
        shutil.rmtree(doomed, ignore_errors=True)


__all__ = ["USERS", "UnreadableRun", "Workspace", "WorkspaceError"]
