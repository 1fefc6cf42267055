"""Alembic migrations of the mediastore catalog (installed as ``mediastore._migrations``)."""
