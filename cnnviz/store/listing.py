"""What a listing of files on disk returns: the entries it could read, and the ones it left out and why."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Skipped:
    """One run folder or checkpoint that a listing left out because it cannot be read."""

    name: str
    path: Path
    reason: str  # plain words: what is wrong with it

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


class Listing(list, Generic[T]):
    """A plain list of the readable entries, plus `skipped`: a damaged file never hides the good ones."""

    def __init__(self, entries: list[T] = (), skipped: list[Skipped] = ()) -> None:
        super().__init__(entries)
        self.skipped: list[Skipped] = list(skipped)


def skipped_note(skipped: list[Skipped], noun: str = "run", limit: int = 3) -> str:
    """One short line naming the first `limit` skipped entries ("" when none)."""
    if not skipped:
        return ""
    n = len(skipped)
    head = f"1 {noun} left out because it cannot be read" if n == 1 else f"{n} {noun}s left out because they cannot be read"
    more = f"; and {n - limit} more (see the server log)" if n > limit else ""
    return f"{head}: {'; '.join(str(s) for s in skipped[:limit])}{more}"


__all__ = ["Listing", "Skipped", "skipped_note"]
