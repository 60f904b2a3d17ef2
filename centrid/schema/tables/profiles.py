"""`user_profiles`: one per auth user, created by a trigger on auth.users.

A user may rename themself; plan, counters and subscription belong to
billing (service_role).
"""

from typing import Literal

from piccolo.columns import UUID, Integer, Text
from piccolo.constraints import Check
from piccolo.table import Table

from centrid.schema.security import ANON, AUTHENTICATED, Grant, TableSecurity, owned_by_caller, service_grants
from centrid.schema.tables.columns import created_at, one_of, owner, updated_at

# The allowed values, stated once: the CHECKs below and the API's models use them.
PlanType = Literal["free", "pro", "enterprise"]
SubscriptionStatus = Literal["active", "cancelled", "expired"]


class UserProfile(Table, tablename="user_profiles"):
    id = UUID(primary_key=True)
    user_id = owner(unique=True, index=False)
    name = Text(null=True, default=None)
    plan_type = Text(default="free", null=False)
    usage_count = Integer(default=0, null=False)
    subscription_status = Text(default="active", null=False)
    created_at = created_at()
    updated_at = updated_at()

    user_profiles_plan_type_check = one_of("plan_type", PlanType)
    user_profiles_subscription_status_check = one_of("subscription_status", SubscriptionStatus)
    user_profiles_usage_count_check = Check("usage_count >= 0")


PROFILE_SECURITY = TableSecurity(
    table=UserProfile,
    # No INSERT (the auth.users trigger creates profiles) and no DELETE
    # (deleting the auth user cascades).
    owned_by=owned_by_caller(),
    writable=("UPDATE",),
    grants=(
        Grant(ANON, ("SELECT",)),
        Grant(AUTHENTICATED, ("SELECT",)),
        Grant(AUTHENTICATED, ("UPDATE",), columns=("name",)),
        *service_grants(),
    ),
    owner_default="user_id",
)
