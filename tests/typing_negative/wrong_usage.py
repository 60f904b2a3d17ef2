"""Deliberately wrong code: the type checker must reject every line marked
`# expect-error`. tests/test_typing.py runs mypy on this file and fails if
any marked line is accepted (that would mean type safety silently broke) or
if an unmarked line is rejected (the file itself rotted)."""

import uuid

from centrid.api import models
from centrid.queries.rows import select_one
from centrid.schema.tables import Document


async def misspelt_column() -> None:
    await Document.select(Document.filenme).run()  # expect-error


def wrong_value_type() -> None:
    models.DocumentCreate(filename=123, file_type="text/plain", file_size=1)  # expect-error


def missing_required_field() -> None:
    models.DocumentCreate(filename="a.txt", file_type="text/plain")  # expect-error


async def misspelt_row_field() -> str:
    row = await select_one(Document, models.Document, Document.id == uuid.uuid4())
    assert row is not None
    return row.filenme  # expect-error


async def wrong_row_field_type() -> int:
    row = await select_one(Document, models.Document, Document.id == uuid.uuid4())
    assert row is not None
    return row.filename  # expect-error


def correct_usage() -> models.DocumentCreate:
    return models.DocumentCreate(filename="a.txt", file_type="text/plain", file_size=1)
