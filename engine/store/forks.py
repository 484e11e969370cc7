"""What a forked child must renew, in one registry with one hook.

A process forked from one that holds connections, locks or threads inherits them in a state
it cannot use: another process's socket or SQLite handle, a lock held by a thread it does
not have. Each such object registers here, and the child calls its ``_forked`` right after
the fork, before anything else runs in it.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class Renewable(Protocol):
    def _forked(self) -> None: ...


_LIVE: weakref.WeakSet[Renewable] = weakref.WeakSet()


def renew_after_fork(obj: Renewable) -> None:
    """Have ``obj._forked()`` called in every child forked while ``obj`` lives."""
    _LIVE.add(obj)


def _after_fork_in_child() -> None:
    for obj in list(_LIVE):
        obj._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
