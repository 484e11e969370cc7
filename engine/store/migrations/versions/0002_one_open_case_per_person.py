"""One open case per person and type, enforced by a partial unique index.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_cases_open_subject_type",
        "cases",
        ["subject_key", "type"],
        unique=True,
        sqlite_where=sa.text("is_open"),
        postgresql_where=sa.text("is_open"),
    )


def downgrade() -> None:
    op.drop_index("uq_cases_open_subject_type", table_name="cases")
