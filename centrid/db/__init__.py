"""Reaching PostgreSQL: the engine and its DSN, the embedded server, the request
pool, and the migration runner."""
