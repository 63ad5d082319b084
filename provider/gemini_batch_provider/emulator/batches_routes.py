"""Gemini API batches: ``batchGenerateContent`` / ``asyncBatchEmbedContent``, and get, list,
cancel and delete of ``batches/<id>``, each answered as the long-running Operation the SDK reads."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from . import model as synthetic
from .batches import QuotaExceeded, operation
from .models_routes import method_of, model_name
from .state import State
from .wire import ApiError, json_response, not_found, page, quota_exceeded, read_body


async def batch_create(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    """``batchGenerateContent`` or ``asyncBatchEmbedContent`` (the route's ``method``)."""
    model = model_name(match["model"])
    method_of(model, match["method"])
    spec = (await read_body(request)).get("batch")
    if not isinstance(spec, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "The request needs a 'batch' object.")
    kind = "embed" if match["method"] == "asyncBatchEmbedContent" else "generate"
    try:
        batch = state.batches.create(model, spec, kind)
    except QuotaExceeded as exc:
        state.counters["429"] += 1
        return quota_exceeded(exc.retry_after)
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    except KeyError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"Input file {exc.args[0]} does not exist.") from None
    return json_response(operation(batch))


def _batch(state: State, batch_id: str) -> Any:
    if batch_id not in state.store.batches:
        raise not_found(f"batches/{batch_id}")
    return state.store.batches[batch_id]


async def batch_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    await asyncio.sleep(state.config.batch_get_latency_s)
    return json_response(operation(_batch(state, match["id"])))


async def batch_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return page(request, state, [operation(b) for b in state.store.batches.values()], "operations")


async def batch_cancel(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    state.batches.cancel(_batch(state, match["id"]))
    return json_response({})


async def batch_delete(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    state.batches.delete(_batch(state, match["id"]))
    return json_response({})
