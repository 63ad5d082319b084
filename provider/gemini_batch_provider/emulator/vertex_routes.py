"""Vertex AI: ``batchPredictionJobs`` (create, get, list, cancel, delete) and the OAuth token
endpoint a service-account key's ``token_uri`` reaches."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from . import model as synthetic
from .state import State
from .store import new_id
from .wire import ApiError, json_response, not_found, page, read_body


def _vertex_job(state: State, job_id: str) -> Any:
    if job_id not in state.vertex.jobs:
        raise not_found(f"batchPredictionJobs/{job_id}")
    return state.vertex.jobs[job_id]


async def vertex_create(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    try:
        job = state.vertex.create(match["project"], match["location"], await read_body(request))
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    return json_response(job.resource)


async def vertex_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    return json_response(_vertex_job(state, match["id"]).resource)


async def vertex_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return page(request, state, [job.resource for job in state.vertex.jobs.values()], "batchPredictionJobs")


async def vertex_cancel(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    state.vertex.cancel(_vertex_job(state, match["id"]))
    return json_response({})


async def vertex_delete(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    job = _vertex_job(state, match["id"])
    state.vertex.cancel(job)
    del state.vertex.jobs[job.id]
    return json_response({"name": f"{job.resource['name']}/operations/{new_id()}", "done": True,
                  "response": {"@type": "type.googleapis.com/google.protobuf.Empty"}})


async def oauth_token(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    """Google's token endpoint as a service-account key's ``token_uri`` reaches it: a JWT-bearer
    grant in, an access token out (the assertion's signature is not checked)."""
    form = await request.post()
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("assertion"):
        return web.json_response({"error": "invalid_grant", "error_description": "a JWT-bearer assertion is needed"},
                                 status=400)
    return web.json_response({"access_token": f"emulator-token-{new_id()}", "expires_in": 3600,
                              "token_type": "Bearer"})
