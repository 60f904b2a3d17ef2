"""Supabase's `auth.users`, as far as our foreign keys need to know it.

This class is not registered with the app, so auto migrations never try to
create or alter it: the auth shim migration creates it only where it is
missing, and on Supabase the real one is used untouched.
"""

from piccolo.columns import JSONB, UUID, Text, Timestamptz
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table


class AuthUser(Table, tablename="users", schema="auth"):
    id = UUID(primary_key=True)
    email = Text(null=True, default=None)
    raw_user_meta_data = JSONB(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow(), null=True)
