"""The caller's profile, and any profile for service_role.

`user_id = auth.uid()` below names *which* row is "mine"; whether the caller
may see or change it is still RLS's and the column grants' decision.
"""

from __future__ import annotations

from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from starlette.requests import Request
from starlette.responses import Response

from centrid.api import models
from centrid.api.http import Endpoint, caller_of, json_response, parse_body
from centrid.errors import not_found, unauthorized
from centrid.queries.rows import select_one, update_where
from centrid.schema.tables import UserProfile
from centrid.schema import roles


def _mine(request: Request) -> Combinable:
    if caller_of(request).role == roles.ANON:
        raise unauthorized()
    return WhereRaw("user_id = auth.uid()")


def _theirs(request: Request) -> Combinable:
    clause: Combinable = UserProfile.user_id == request.path_params["user_id"]
    return clause


async def _get(where: Combinable) -> Response:
    row = await select_one(UserProfile, models.Profile, where)
    if row is None:
        raise not_found("no such profile")
    return json_response(row)


async def _patch(request: Request, where: Combinable) -> Response:
    body = await parse_body(request, models.ProfilePatch, writes=(UserProfile._meta.tablename, "UPDATE"))
    values = body.supplied()
    if not values:
        return await _get(where)
    rows = await update_where(UserProfile, values, models.Profile, where)
    if not rows:
        raise not_found("no such profile")
    return json_response(rows[0])


async def get_my_profile(request: Request) -> Response:
    return await _get(_mine(request))


async def patch_my_profile(request: Request) -> Response:
    return await _patch(request, _mine(request))


async def get_profile(request: Request) -> Response:
    return await _get(_theirs(request))


async def patch_profile(request: Request) -> Response:
    return await _patch(request, _theirs(request))


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/api/profile", get_my_profile, "The caller's profile", "profiles", response=models.Profile),
    Endpoint("PATCH", "/api/profile", patch_my_profile, "Change the caller's profile (users: name only)", "profiles",
             body=models.ProfilePatch, response=models.Profile, errors=(400, 401, 403, 404, 413, 422)),
    Endpoint("GET", "/api/profiles/{user_id:uuid}", get_profile, "A profile by user id", "profiles",
             response=models.Profile),
    Endpoint("PATCH", "/api/profiles/{user_id:uuid}", patch_profile,
             "Change a profile (plan, counters and status: service_role only)", "profiles",
             body=models.ProfilePatch, response=models.Profile, errors=(400, 401, 403, 404, 413, 422)),
]
