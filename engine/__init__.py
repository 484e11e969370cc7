"""omsflow: the back-office case engine for Russian OMS policy applications.

The public names are imported lazily, so that importing the pure core (``engine.machines``)
does not pull in the store or the scheduler.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.api import CaseView, Engine, StepOutcome
    from engine.clock import Clock, SystemClock
    from engine.machines.compiled import Actor

__all__ = ["Actor", "CaseView", "Clock", "Engine", "StepOutcome", "SystemClock"]

_HOMES = {
    "Engine": "engine.api",
    "CaseView": "engine.api",
    "StepOutcome": "engine.api",
    "Clock": "engine.clock",
    "SystemClock": "engine.clock",
    "Actor": "engine.machines.compiled",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
