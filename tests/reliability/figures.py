"""Print the figures of the last reliability run: ``python -m tests.reliability.figures``.

The tests write them to ``tests/reliability/out/figures.json`` (git-ignored); ``--markdown``
prints the table docs/RELIABILITY.md carries.
"""

from __future__ import annotations

import json
import sys

from tests.reliability.conftest import FIGURES


def main(argv: list[str]) -> int:
    if not FIGURES.exists():
        print(f"no figures yet: run the battery first ({FIGURES} is missing)", file=sys.stderr)
        return 1
    figures = json.loads(FIGURES.read_text(encoding="utf-8"))
    markdown = "--markdown" in argv
    if markdown:
        print("| test | variant | figures |\n|---|---|---|")
    for test, values in sorted(figures.items()):
        variant = values.pop("variant", "?")
        text = ", ".join(f"{k} {v}" for k, v in sorted(values.items()))
        print(f"| `{test}` | {variant} | {text} |" if markdown else f"{test} [{variant}]: {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
