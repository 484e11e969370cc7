"""``python -m engine.cli``: the same as the ``omsflow`` console script."""

from __future__ import annotations

from engine.cli.app import main

if __name__ == "__main__":
    main()
