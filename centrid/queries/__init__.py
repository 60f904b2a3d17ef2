"""Typed access to the tables: every function returns pydantic rows.

Nothing here decides who may see what: each query runs inside the request's
transaction, as the caller's role, and RLS and grants answer that.
"""
