"""Application data of the five OMS application types: validation, changes, examples, keys.

The functions live in ``engine.applications.core`` (a few in ``.fields``) and are loaded from
there on first use: building the pydantic models behind them takes a tenth of a second or
more, and a timer worker, which steps cases without new data, or a CLI command that only reads
never needs them.
``from engine.applications import validate_application`` works as it always did; engine
modules that should stay light import the package and call ``applications.<name>`` instead.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

MODEL_NAMES: tuple[str, ...] = (
    "restore",
    "new_issue",
    "child_link",
    "replacement",
    "paper_duplicate",
)

if TYPE_CHECKING:
    from engine.applications.core import (
        REASON_PRIORITY,
        application_model,
        diff_fields,
        example_application,
        flatten,
        json_schema,
        merge_changes,
        subject_key,
        validate_application,
        validate_changes,
    )
    from engine.applications.fields import (
        RULES,
        PolicyFormat,
        classify_policy_number,
        detect_policy_format,
    )

_IN_FIELDS = frozenset({"RULES", "PolicyFormat", "classify_policy_number", "detect_policy_format"})


def __getattr__(name: str) -> Any:
    # checked first: the import machinery and tools probe modules for names they lack, and
    # such a probe must neither load the models nor recurse into this hook
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = "fields" if name in _IN_FIELDS else "core"
    value = getattr(importlib.import_module(f"engine.applications.{home}"), name)
    globals()[name] = value  # found directly from now on, without this hook
    return value


__all__ = [
    "MODEL_NAMES",
    "REASON_PRIORITY",
    "RULES",
    "PolicyFormat",
    "application_model",
    "classify_policy_number",
    "detect_policy_format",
    "diff_fields",
    "example_application",
    "flatten",
    "json_schema",
    "merge_changes",
    "subject_key",
    "validate_application",
    "validate_changes",
]
