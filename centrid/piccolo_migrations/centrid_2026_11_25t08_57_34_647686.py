from centrid.db.migrations import SerializedMigrationManager as MigrationManager
from centrid.db.migrations import sql_step
from piccolo.columns.column_types import Numeric
from piccolo.columns.column_types import Real

ID = "2026-11-25T08:57:34:647686"
VERSION = "1.38.0"
DESCRIPTION = "usage_events.cost: real -> numeric(14,6), keeping every row"

# Piccolo runs raw SQL before its own column changes, so the type change is
# done here in full, in the order PostgreSQL needs: the check constraint is
# re-created so it compares numerics (one written for `real` keeps a float
# cast in its stored expression), and the column gets the default a fresh
# Numeric(default=None) column has. Piccolo's alter_column below then finds
# the type already in place; it is kept so its schema snapshot stays right.
# A stored cost beyond numeric(14,6) makes the migration fail (and leave
# nothing) rather than silently change a ledger value.
FORWARDS_SQL = """
ALTER TABLE usage_events DROP CONSTRAINT usage_events_cost_check;
ALTER TABLE usage_events ALTER COLUMN cost TYPE numeric(14, 6) USING cost::numeric(14, 6);
ALTER TABLE usage_events ALTER COLUMN cost SET DEFAULT NULL;
ALTER TABLE usage_events ADD CONSTRAINT usage_events_cost_check CHECK (cost IS NULL OR cost >= 0);
"""

BACKWARDS_SQL = """
ALTER TABLE usage_events DROP CONSTRAINT usage_events_cost_check;
ALTER TABLE usage_events ALTER COLUMN cost TYPE real USING cost::real;
ALTER TABLE usage_events ALTER COLUMN cost SET DEFAULT NULL;
ALTER TABLE usage_events ADD CONSTRAINT usage_events_cost_check CHECK (cost IS NULL OR cost >= 0);
"""


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="centrid", description=DESCRIPTION
    )

    manager.add_raw(sql_step(FORWARDS_SQL))
    manager.add_raw_backwards(sql_step(BACKWARDS_SQL))

    manager.alter_column(
        table_class_name="UsageEvent",
        tablename="usage_events",
        column_name="cost",
        db_column_name="cost",
        params={"digits": (14, 6)},
        # "default": None (hand-added) tells Piccolo the old default can be
        # cast, so it keeps the DEFAULT NULL a fresh table has instead of
        # dropping it (drift would see the difference).
        old_params={"digits": None, "default": None},
        column_class=Numeric,
        old_column_class=Real,
        schema=None,
    )

    return manager
