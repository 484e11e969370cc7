"""The due-timer index ends with the id: (status, due_at, id).

A timer claim orders by (due_at, id). With (status, due_at) alone PostgreSQL read every due
timer that shares the oldest instant, joined each to its case and sorted them by id, to return
64: deadlines counted in days end at a local midnight, so a catch-up's timers share instants by
the thousand, and a catch-up of 100,000 timers due at one instant took a query of ~0.75 s per
batch (quadratic in the timers due). With the id in the index the claim reads its rows off it
in order and stops at the limit (0.8 ms). SQLite's index already ended with the rowid.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the new index first: a claim never runs without one
    op.create_index("ix_deadlines_status_due_at_id", "deadlines", ["status", "due_at", "id"])
    op.drop_index("ix_deadlines_status_due_at", table_name="deadlines")


def downgrade() -> None:
    op.create_index("ix_deadlines_status_due_at", "deadlines", ["status", "due_at"])
    op.drop_index("ix_deadlines_status_due_at_id", table_name="deadlines")
