"""The training queue of a shared server: one run trains at a time, the others wait first come, first served.

Our own queue rather than Gradio's: Gradio's queue size counts every waiting event (predictions too), so it cannot cap
waiting *runs*, and a waiting run should show its place in line and be cancellable like a running one.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass


class QueueFull(RuntimeError):
    """Too many runs are already waiting; the message says so and what to do."""


@dataclass(frozen=True, eq=False)
class Ticket:
    """One run's place in the queue; compared by identity."""

    number: int


class RunQueue:
    """A FIFO line of tickets: the first one may train, the rest wait; `join` refuses when too many wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._line: list[Ticket] = []
        self._numbers = itertools.count(1)

    def join(self, max_waiting: int) -> Ticket:
        """A ticket at the end of the line, or QueueFull when `max_waiting` runs already wait behind the current one."""
        with self._cond:
            if len(self._line) > max_waiting:  # the first ticket trains; the others wait
                raise QueueFull(f"the training queue is full ({len(self._line) - 1} runs are waiting, this server allows "
                                f"{max_waiting}); try again when a run has finished")
            ticket = Ticket(next(self._numbers))
            self._line.append(ticket)
            return ticket

    def position(self, ticket: Ticket) -> int | None:
        """How many runs are ahead (0: its turn), or None once it left."""
        with self._cond:
            return self._line.index(ticket) if ticket in self._line else None

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
