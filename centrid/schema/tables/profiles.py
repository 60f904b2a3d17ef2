"""`user_profiles`: one per auth user, created by a trigger on auth.users.

A user may rename themself; plan, counters and subscription belong to
billing (service_role).
"""

from piccolo.columns import UUID, Integer, Text
from piccolo.constraints import Check
from piccolo.table import Table

from centrid.schema.security import Grant, TableSecurity, owned_by_caller, owner_policies, service_grants
from centrid.schema.tables.columns import created_at, owner, updated_at

PLAN_TYPES = ("free", "pro", "enterprise")
SUBSCRIPTION_STATUSES = ("active", "cancelled", "expired")


class UserProfile(Table, tablename="user_profiles"):
    id = UUID(primary_key=True)
    user_id = owner(unique=True, index=False)
    name = Text(null=True, default=None)
    plan_type = Text(default="free", null=False)
    usage_count = Integer(default=0, null=False)
    subscription_status = Text(default="active", null=False)
    created_at = created_at()
    updated_at = updated_at()

    user_profiles_plan_type_check = Check("plan_type IN ('free', 'pro', 'enterprise')")
    user_profiles_subscription_status_check = Check(
        "subscription_status IN ('active', 'cancelled', 'expired')")
    user_profiles_usage_count_check = Check("usage_count >= 0")


PROFILE_SECURITY = TableSecurity(
    table=UserProfile,
    # No INSERT (the auth.users trigger creates profiles) and no DELETE
    # (deleting the auth user cascades).
    policies=owner_policies("user_profiles", owned_by_caller(), writable=("UPDATE",)),
    grants=(
        Grant("anon", ("SELECT",)),
        Grant("authenticated", ("SELECT",)),
        Grant("authenticated", ("UPDATE",), columns=("name",)),
        *service_grants(),
    ),
    owner_default="user_id",
)
