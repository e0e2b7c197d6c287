"""Persistence: every statement (by table group), the one connection pool and its gate, the
calendar-day's lock, the SQLAlchemy models, the embedded PostgreSQL and the YAML loader."""
