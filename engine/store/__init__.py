"""Persistence: SQLAlchemy tables, repository, unit of work, Alembic migrations."""
