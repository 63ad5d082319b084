"""Models: list and get, ``generateContent``, ``batchEmbedContents`` (online embeddings) and
``countTokens``; online calls pass the quotas and the injected faults first."""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from . import model as synthetic
from .media import media_of
from .state import State
from .wire import ApiError, json_response, not_found, page, quota_exceeded, read_body

# The model ids the Gemini API serves (https://ai.google.dev/gemini-api/docs/models, 2026-11). A
# retired id (gemini-3-pro-preview, shut down for gemini-3.1-pro-preview) is answered 404, as the API does.
MODELS = [
    "gemini-3.1-pro-preview", "gemini-3-flash-preview", "gemini-3.1-flash-lite-preview", "gemini-3.1-flash-lite",
    "gemini-3.1-flash-image-preview", "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
    "gemini-embedding-001",
]


def model_name(name: str) -> str:
    """``models/<name>`` for a model the emulator serves; any other name is answered 404, as the API does."""
    if name not in MODELS:
        raise not_found(f"models/{name}")
    return f"models/{name}"


def _is_embedding(model: str) -> bool:
    return "embedding" in model


def _model_resource(name: str) -> dict[str, Any]:
    if _is_embedding(name):
        return {"name": f"models/{name}", "baseModelId": name, "displayName": name, "version": "001",
                "inputTokenLimit": 2048, "outputTokenLimit": 1,
                "supportedGenerationMethods": ["embedContent", "countTokens", "asyncBatchEmbedContent"]}
    return {
        "name": f"models/{name}", "baseModelId": name, "displayName": name, "version": "001",
        "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "batchGenerateContent"],
        "thinking": name in synthetic.DEFAULT_THINKING_CAP,
    }


def method_of(model: str, method: str) -> None:
    """Answer 400 for a method the model does not have (an embedding model generates no text)."""
    if method not in _model_resource(model.removeprefix("models/"))["supportedGenerationMethods"]:
        raise ApiError(400, "INVALID_ARGUMENT", f"{model} does not support {method}.")


async def model_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return page(request, state, [_model_resource(m) for m in MODELS], "models")


async def model_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    return json_response(_model_resource(model_name(match["model"]).removeprefix("models/")))


async def generate_content(request: web.Request, state: State, match: re.Match[str]) -> web.StreamResponse:
    started = time.monotonic()
    model = model_name(match["model"])
    method_of(model, "generateContent")
    body = await read_body(request)
    try:
        tier = state.tiers.serving(state.tiers.requested(body))
        answer = synthetic.generate(body, model, state.read_file)
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    answer["usageMetadata"]["serviceTier"] = tier
    return await _answer_online(request, state, model, answer, answer["usageMetadata"]["totalTokenCount"], started,
                                tier)


async def batch_embed_contents(request: web.Request, state: State, match: re.Match[str]) -> web.StreamResponse:
    """``batchEmbedContents``, the online embeddings call of the SDK's ``models.embed_content``:
    ``{"requests": [EmbedContentRequest]}`` in, ``{"embeddings": [ContentEmbedding]}`` out."""
    started = time.monotonic()
    model = model_name(match["model"])
    method_of(model, "embedContent")
    requests = (await read_body(request)).get("requests")
    if not isinstance(requests, list) or not requests:
        raise ApiError(400, "INVALID_ARGUMENT", "requests must be a non-empty list of EmbedContentRequest.")
    try:
        embeddings = [synthetic.embed(item)["embedding"] for item in requests]
        tokens = sum(synthetic.count_tokens(synthetic.request_text({"contents": [r.get("content")]}))
                     for r in requests)
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    return await _answer_online(request, state, model, {"embeddings": embeddings}, tokens, started)


async def _answer_online(request: web.Request, state: State, model: str, answer: dict[str, Any], tokens: int,
                         started: float, tier: str = "STANDARD") -> web.StreamResponse:
    """An online call's answer, after the quotas, the service tier and the injected faults had
    their say."""
    key = request.headers.get("x-goog-api-key") or request.query.get("key", "")
    wait = state.quota.admit(key, model, tokens)
    if wait > 0:
        state.counters["429"] += 1
        return quota_exceeded(wait)
    if state.tiers.shed(tier):
        state.counters["shed"] += 1
        raise ApiError(503, "UNAVAILABLE", "The model is overloaded: this Flex request was shed. Please try again "
                                           "later.")
    fault = state.faults.draw()
    await state.faults.delay(fault, started + state.tiers.extra_latency(tier))
    state.counters[fault or "ok"] += 1
    if fault == "reset":
        assert request.transport is not None
        request.transport.abort()  # the client sees the connection dropped, with no response
        return web.Response()
    if fault in ("500", "503"):
        status = "INTERNAL" if fault == "500" else "UNAVAILABLE"
        raise ApiError(int(fault), status, "An injected fault of the emulator.")
    response = json_response(answer)
    response.headers["x-gemini-service-tier"] = tier.lower()
    return response


async def count_tokens(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    model = model_name(match["model"])
    body = await read_body(request)
    request_body = body.get("generateContentRequest") or body
    try:
        media = media_of(request_body.get("contents"), state.read_file)
        return json_response({"totalTokens": synthetic.count_prompt(request_body, model, len(media))})
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
