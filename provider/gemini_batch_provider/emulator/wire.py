"""What every handler answers with: Google's JSON bodies and errors, list pages and 429s.

Every success is HTTP 200 with a JSON body; every error is Google's ``{"error": {code, message,
status}}`` with ``Content-Type: application/json``, which the SDK turns into ``errors.APIError``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .state import State

Handler = Callable[[web.Request, State, re.Match[str]], Awaitable[web.StreamResponse]]
VERSION = r"(?:/v1|/v1beta|/v1alpha|/v1beta1)?"  # any API version, or none


class ApiError(Exception):
    """An error answered in Google's format."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def json_response(body: Any) -> web.Response:
    return web.Response(text=json.dumps(body), content_type="application/json")


def not_found(name: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{name} is not found.")


async def read_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received: expected an object.")
    return body


def page(request: web.Request, state: State, items: list[Any], field_name: str) -> web.Response:
    size = int(request.query.get("pageSize") or state.config.page_size)
    start = int(request.query.get("pageToken") or 0)
    body: dict[str, Any] = {}
    if items[start : start + size]:
        body[field_name] = items[start : start + size]
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return json_response(body)


def quota_exceeded(wait: float) -> web.Response:
    """429 as the Gemini API sends it: ``RetryInfo.retryDelay`` in the body and ``Retry-After``."""
    body = {"error": {
        "code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Resource has been exhausted (e.g. check quota).",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait:.3f}s"}],
    }}
    return web.Response(status=429, text=json.dumps(body), content_type="application/json",
                        headers={"Retry-After": str(math.ceil(wait))})
