"""Field types the request and response models share.

Each type carries its own rule (no NUL characters, 32-bit integers, exact
money, RFC 3339 timestamps, 384 finite floats...), so bad input is a
per-field 422 before any SQL runs and the OpenAPI schema states the same
rule. Whether a caller may write a field is not decided here: grants and
RLS decide.
"""

from __future__ import annotations

import datetime
import math
import re
import uuid
from decimal import Decimal
from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from centrid.schema.tables.documents import EMBEDDING_DIMENSIONS


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


MAX_JSON_DEPTH = 64


def _json_no_nul(value: Any) -> Any:
    """jsonb cannot hold \\u0000 at any depth; and we bound the depth, well
    under what the JSON encoder and the database accept (iteratively, so a
    hostile document cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, dict):
                for key in item:
                    _no_nul(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return value


def _representable_timestamp(value: datetime.datetime) -> datetime.datetime:
    """Timestamps must convert to UTC within Python's and PostgreSQL's range."""
    if value.tzinfo is None:
        raise ValueError("must include a timezone offset")
    try:
        return value.astimezone(datetime.timezone.utc)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc


# The schema says it too (ECMA-262 pattern), so clients and fuzzers know.
_NO_NUL = {"pattern": "^[^\\u0000]*$"}
Text = Annotated[str, Field(json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
NonEmptyText = Annotated[str, Field(min_length=1, json_schema_extra=_NO_NUL), AfterValidator(_no_nul)]
Json = Annotated[Any, AfterValidator(_json_no_nul)]
def _json_integer(value: Any) -> Any:
    """A JSON integer: 3, or 3.0 (JSON Schema counts an integral number as an
    integer, and JSON does not tell them apart); never a string or a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


# The Field first: constraints placed after a validator vanish from the schema.
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1), BeforeValidator(_json_integer)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=2**31 - 1), BeforeValidator(_json_integer)]
PositiveInt32 = Annotated[int, Field(gt=0, le=2**31 - 1), BeforeValidator(_json_integer)]
Limit = Annotated[int, Field(ge=1, le=100), BeforeValidator(_json_integer)]  # a page or top-k size
_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}")


def _rfc3339_text(value: Any) -> Any:
    """An RFC 3339 date-time, as the schema says (`format: date-time`):
    not a bare number (pydantic would read it as Unix time) nor a date."""
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


Timestamp = Annotated[datetime.datetime, AfterValidator(_representable_timestamp), BeforeValidator(_rfc3339_text)]
OwnerId = Annotated[
    uuid.UUID,
    Field(
        description="The owner. Taken from the token for an authenticated caller; "
        "a service_role caller names it (required when its token has no sub)."
    ),
]

# Money is numeric(14,6): exact, at most 8 digits before the point and 6
# after. A JSON number arrives as a float (orjson), whose shortest repr is
# the decimal text the client sent for anything numeric(14,6) can hold.
MONEY_DIGITS, MONEY_PLACES = 14, 6
MONEY_MAX = Decimal("99999999.999999")


def _money_from_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a number")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        # A double a few ulps from a 6-place decimal denotes that decimal
        # (arithmetic on the client's side, e.g. 87878482120083 * 1e-06);
        # anything further off has more than 6 places and is refused below.
        nearest = round(value, MONEY_PLACES)
        if abs(value - nearest) <= 4 * math.ulp(value):
            value = nearest
        return Decimal(repr(value))
    return Decimal(value)


def _exact_decimal_text(value: Decimal) -> orjson.Fragment:
    """The value as a JSON number, digit for digit (no float on the way):
    orjson writes the fragment as is. Trailing zeros of the scale go."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return orjson.Fragment(text)


MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_money_from_number),
    Field(ge=0, max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": float(MONEY_MAX),
            "multipleOf": 0.000001,
            "description": "Exact money: at most 8 digits before the decimal point and 6 after.",
        }
    ),
]
# Serialized only through centrid.api.http.json_response (orjson).
Money = Annotated[
    Decimal,
    PlainSerializer(_exact_decimal_text, return_type=Any),
    WithJsonSchema({"type": "number"}),
]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


# A field the client may leave out (the database default or the row's
# current value applies) but may not set to null: its column is NOT NULL.
# Explicit null is then a per-field 422 here, never PostgreSQL's not-null
# message; the OpenAPI schema says "optional, not nullable".
OMITTED: Any = Field(default=None)


# An element of pgvector's `vector` is a 4-byte float.
VECTOR_ELEMENT_MAX = 3.4028234663852886e38
# strict: a boolean or a numeric string is not a number here.
EmbeddingElement = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-VECTOR_ELEMENT_MAX, le=VECTOR_ELEMENT_MAX)
]
Embedding = Annotated[
    list[EmbeddingElement],
    Field(
        min_length=EMBEDDING_DIMENSIONS,
        max_length=EMBEDDING_DIMENSIONS,
        description=f"Exactly {EMBEDDING_DIMENSIONS} finite numbers (compared by cosine distance).",
    ),
]
