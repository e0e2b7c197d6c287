"""Persistence: the SQLAlchemy models, the engine, the embedded PostgreSQL."""
