"""The training queue of a shared server: one run trains per training worker (`slots`, one per device), the others wait
first come, first served; the next in line gets the first worker that comes free.

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
    """A FIFO line of tickets: the first `slots` may train, the rest wait; `join` refuses when too many wait.

    Tickets only move forward, so the ones allowed to train are always the first `slots` of the line.
    """

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"a training queue needs at least one worker, got slots={slots}")
        self.slots = slots
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
            waiting = len(self._line) - self.slots  # the first `slots` tickets train; the others wait
            if waiting >= max_waiting:
                raise QueueFull(f"the training queue is full ({_runs(waiting)} waiting, this server allows "
                                f"{max_waiting}); try again when a run has finished")
            ticket = Ticket(next(self._numbers), owner)
            self._line.append(ticket)
            return ticket

    def position(self, ticket: Ticket) -> int | None:
        """How many runs must leave before this one may train (0: its turn), or None once it left. With one worker,
        the runs ahead of it."""
        with self._cond:
            return max(0, self._line.index(ticket) - self.slots + 1) if ticket in self._line else None

    def next_after(self, ticket: Ticket) -> Ticket | None:
        """The first run waiting for a worker while `ticket` holds one; None when nobody waits (or `ticket` itself waits
        or left). With one worker, the run right behind it."""
        with self._cond:
            if ticket not in self._line or self._line.index(ticket) >= self.slots:
                return None
            return self._line[self.slots] if len(self._line) > self.slots else None

    def wait_turn(self, ticket: Ticket, cancel: threading.Event, poll: float = 0.1) -> bool:
        """Block until `ticket` is among the first `slots` in line (True) or `cancel` is set while waiting (False)."""
        with self._cond:
            while self._line.index(ticket) >= self.slots:
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
