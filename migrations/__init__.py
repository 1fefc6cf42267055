"""Alembic migrations of the mediastore catalog (``alembic.ini`` at the repo root points here)."""
