"""Storage: typed SQLAlchemy models of the results schema, engines, and Alembic migrations."""
