"""Alembic migrations of the state database (a package, so setuptools ships them with `api`)."""
