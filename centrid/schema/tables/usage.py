"""`usage_events`: the billing ledger. Insert-only, written by the service.

No role gets UPDATE or DELETE, so a recorded event can only disappear with
its user (ON DELETE CASCADE, run by the table owner).
"""

from piccolo.columns import JSONB, UUID, Integer, Numeric, Text
from piccolo.constraints import Check
from piccolo.table import Table

from centrid.schema.security import ANON, AUTHENTICATED, Grant, Index, TableSecurity, owned_by_caller, service_grants
from centrid.schema.tables.columns import created_at, owner


class UsageEvent(Table, tablename="usage_events"):
    id = UUID(primary_key=True)
    user_id = owner(index=False)
    event_type = Text(null=False, default=None, index=True)
    tokens_used = Integer(null=True, default=None)
    # Money is exact: numeric, never a float (DESIGN.md).
    cost = Numeric(digits=(14, 6), null=True, default=None)
    metadata = JSONB(null=True, default=None)
    created_at = created_at()

    usage_events_tokens_used_check = Check(
        "tokens_used IS NULL OR tokens_used >= 0")
    usage_events_cost_check = Check("cost IS NULL OR cost >= 0")


USAGE_SECURITY = TableSecurity(
    table=UsageEvent,
    owned_by=owned_by_caller(),
    writable=(),
    grants=(
        Grant(ANON, ("SELECT",)),
        Grant(AUTHENTICATED, ("SELECT",)),
        *service_grants(insert_only=True),
    ),
    owner_default="user_id",
    touch_updated_at=False,
    indexes=(
        Index("usage_events_user_created_idx", "(user_id, created_at DESC, id DESC)"),
        Index("usage_events_user_type_created_idx", "(user_id, event_type, created_at DESC)"),
    ),
)
