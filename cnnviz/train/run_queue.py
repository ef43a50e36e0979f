"""The training queue of a shared server: one run trains at a time, the others wait first come, first served.

Our own queue rather than Gradio's: Gradio's queue size counts every waiting event (predictions too), so it cannot cap
waiting *runs*, and a waiting run should show its place in line and be cancellable like a running one.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field


class QueueFull(RuntimeError):
    """Too many runs are already waiting (or this user already has one); the message says so and what to do."""


@dataclass(frozen=True, eq=False)
class Ticket:
    """One run's place in the queue; compared by identity."""

    number: int
    owner: str | None = None  # whose run (a workspace key): one user's runs are counted together
    joined: float = field(default_factory=time.monotonic)


def _runs(n: int) -> str:
    """'1 run is' / '2 runs are'."""
    return f"{n} run is" if n == 1 else f"{n} runs are"


class RunQueue:
    """A FIFO line of tickets: the first one may train, the rest wait; `join` refuses when too many wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: list[Ticket] = []
        self._numbers = itertools.count(1)

    def join(self, max_waiting: int, owner: str | None = None, max_per_owner: int | None = None) -> Ticket:
        """A ticket at the end of the line, or QueueFull when `max_waiting` runs already wait behind the current one, or
        when `owner` already has `max_per_owner` runs training or waiting (None: no per-user cap)."""
        with self._cond:
            own = sum(t.owner == owner for t in self._line) if owner is not None else 0
            if max_per_owner is not None and own >= max_per_owner:
                mine = "a run" if own == 1 else f"{own} runs"
                raise QueueFull(f"you already have {mine} training or waiting on this server (in another tab or window?) "
                                f"and it allows {max_per_owner} per user; stop it there or wait until it ends")
            if len(self._line) > max_waiting:  # the first ticket trains; the others wait
                raise QueueFull(f"the training queue is full ({_runs(len(self._line) - 1)} waiting, this server allows "
                                f"{max_waiting}); try again when a run has finished")
            ticket = Ticket(next(self._numbers), owner)
            self._line.append(ticket)
            return ticket

    def position(self, ticket: Ticket) -> int | None:
        """How many runs are ahead (0: its turn), or None once it left."""
        with self._cond:
            return self._line.index(ticket) if ticket in self._line else None

    def next_after(self, ticket: Ticket) -> Ticket | None:
        """The run waiting right behind `ticket`, None when nobody waits behind it (or it left)."""
        with self._cond:
            if ticket not in self._line:
                return None
            i = self._line.index(ticket) + 1
            return self._line[i] if i < len(self._line) else None

    def wait_turn(self, ticket: Ticket, cancel: threading.Event, poll: float = 0.1) -> bool:
        """Block until `ticket` is first in line (True) or `cancel` is set while waiting (False)."""
        with self._cond:
            while self._line[0] is not ticket:
                if cancel.is_set():
                    return False
                self._cond.wait(poll)  # woken by leave(); the timeout re-checks `cancel`
            return True

    def leave(self, ticket: Ticket) -> None:
        """Give up the place (finished, failed or cancelled); the next run may start."""
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
                self._cond.notify_all()

    def __len__(self) -> int:
        """Runs training or waiting."""
        with self._cond:
            return len(self._line)
