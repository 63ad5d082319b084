"""The emulator's HTTP surface: the Gemini Developer API endpoints the google-genai SDK calls.

Paths are matched on their tail, so any ``base_url`` path prefix and the API versions ``v1``,
``v1beta``, ``v1alpha`` or none all work (see reference/gemini-wire-protocol.md, section 0).
Every success is HTTP 200 with a JSON body; every error is Google's ``{"error": {code, message,
status}}`` with ``Content-Type: application/json``, which the SDK turns into ``errors.APIError``.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from . import model as synthetic
from .batches import BatchRunner, QuotaExceeded, RowErrors, operation
from .faults import FaultConfig, Faults
from .quota import Quota
from .store import Store, new_id
from .vertex import VertexRunner

Handler = Callable[[web.Request, "State", re.Match[str]], Awaitable[web.StreamResponse]]

_VERSION = r"(?:/v1|/v1beta|/v1alpha|/v1beta1)?"
_MODELS = [
    "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-3-flash-preview",
    "gemini-3-pro-preview", "gemini-embedding-001",
]


@dataclass
class EmulatorConfig:
    """How the emulator behaves.

    ``api_keys``: the keys it accepts; empty means any non-empty key. ``batch_pending_s`` and
    ``batch_running_s``: seconds a batch job spends in PENDING and RUNNING. ``data_dir``: where file
    contents are kept (a temporary folder when None). ``page_size``: the default list page size.
    ``rpm``/``tpm``: requests and tokens per minute per key and model for ``generateContent``
    (None: unlimited), enforced over a sliding ``quota_window_s``; over quota it answers 429
    RESOURCE_EXHAUSTED with ``RetryInfo`` and ``Retry-After``. ``faults``: latency and injected
    faults of ``generateContent``. ``batch_row_errors``: rows of batch jobs answered with an error.
    ``batch_outcome``: how new batch jobs end (``succeed``, ``fail``, ``expire``, ``stall``).
    ``batch_output_fault``: what befalls a batch job's output file (``none``, ``malformed``: some
    lines are not JSON, ``truncated``: it ends a third of the way short, in the middle of a line).
    ``max_enqueued_tokens``: estimated tokens of a model's unfinished batch jobs at most (None: no
    limit); ``max_file_bytes``: the largest upload (2 GB, as the Files API). ``gcs_endpoint``: the
    Cloud Storage (emulator) that Vertex AI batch prediction jobs read from and write to.
    """

    api_keys: frozenset[str] = frozenset()
    batch_pending_s: float = 1.0
    batch_running_s: float = 2.0
    data_dir: Path | None = None
    page_size: int = 50
    rpm: int | None = None
    tpm: int | None = None
    quota_window_s: float = 60.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    batch_row_errors: RowErrors = field(default_factory=RowErrors)
    batch_outcome: str = "succeed"
    batch_output_fault: str = "none"
    max_enqueued_tokens: int | None = None
    max_file_bytes: int = 2 * 1024**3
    gcs_endpoint: str | None = None


@dataclass
class State:
    config: EmulatorConfig
    store: Store
    batches: BatchRunner
    base_url: str
    quota: Quota
    faults: Faults
    vertex: VertexRunner
    counters: Counter[str] = field(default_factory=Counter)
    _tmp: Any = field(default=None, repr=False)

    def read_file(self, uri: str) -> bytes:
        """A ``fileData`` part's content: a ``gs://`` object (Vertex AI), else a Files API file."""
        return self.vertex.read_gcs(uri) if uri.startswith("gs://") else self.store.read_file(uri)


STATE = web.AppKey("state", State)


class ApiError(Exception):
    """An error answered in Google's format."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _json(body: Any) -> web.Response:
    return web.Response(text=json.dumps(body), content_type="application/json")


def _not_found(name: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{name} is not found.")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received: expected an object.")
    return body


def _page(request: web.Request, state: State, items: list[Any], field_name: str) -> web.Response:
    size = int(request.query.get("pageSize") or state.config.page_size)
    start = int(request.query.get("pageToken") or 0)
    body: dict[str, Any] = {}
    if items[start : start + size]:
        body[field_name] = items[start : start + size]
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return _json(body)


def _model_name(name: str) -> str:
    """``models/<name>`` for a model the emulator serves; any other name is answered 404, as the API does."""
    if name not in _MODELS:
        raise _not_found(f"models/{name}")
    return f"models/{name}"


# --- Files API ---------------------------------------------------------------------------------


async def upload_start(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    meta = (await _body(request)).get("file") or {}
    size = int(request.headers.get("X-Goog-Upload-Header-Content-Length") or meta.get("size_bytes") or 0)
    if size > state.config.max_file_bytes:
        raise ApiError(400, "INVALID_ARGUMENT", f"The file ({size} bytes) is larger than the limit of "
                       f"{state.config.max_file_bytes} bytes.")
    upload = state.store.start_upload(
        {
            "display_name": meta.get("display_name") or meta.get("displayName"),
            "mime_type": meta.get("mime_type") or meta.get("mimeType")
            or request.headers.get("X-Goog-Upload-Header-Content-Type") or "application/octet-stream",
            "name": meta.get("name"),
        }
    )
    state.counters["uploads"] += 1
    url = f"{state.base_url}/upload/v1beta/files?upload_id={upload.id}&upload_protocol=resumable"
    # aiohttp clients look this header up case-sensitively: it must be spelled exactly so.
    return web.Response(text="", headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})


async def upload_chunk(request: web.Request, state: State) -> web.Response:
    upload = state.store.uploads.get(request.query["upload_id"])
    if upload is None:
        raise _not_found("upload")
    offset = int(request.headers.get("X-Goog-Upload-Offset", upload.received))
    if offset != upload.received:
        raise ApiError(400, "INVALID_ARGUMENT", f"offset {offset} != bytes received {upload.received}")
    with upload.path.open("ab") as out:
        async for chunk in request.content.iter_chunked(1 << 20):
            out.write(chunk)
            upload.sha256.update(chunk)
            upload.received += len(chunk)

    if "finalize" not in request.headers.get("X-Goog-Upload-Command", ""):
        return web.Response(text="", headers={"X-Goog-Upload-Status": "active"})
    del state.store.uploads[upload.id]
    file_id = (upload.meta["name"] or "").removeprefix("files/") or upload.id
    resource = state.store.add_file(
        file_id, upload.path, display_name=upload.meta["display_name"], mime_type=upload.meta["mime_type"],
        sha256=upload.sha256.digest(), source="UPLOADED", base_url=state.base_url,
    )
    return web.Response(
        text=json.dumps({"file": resource}), content_type="application/json",
        headers={"X-Goog-Upload-Status": "final"},
    )


def _file(state: State, file_id: str) -> dict[str, Any]:
    if file_id not in state.store.files:
        raise _not_found(f"files/{file_id}")
    return state.store.files[file_id]


async def file_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    return _json(_file(state, match["id"]))


async def file_delete(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    _file(state, match["id"])
    state.store.delete_file(match["id"])
    return _json({})


async def file_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return _page(request, state, list(state.store.files.values()), "files")


async def file_download(request: web.Request, state: State, match: re.Match[str]) -> web.StreamResponse:
    _file(state, match["id"])
    return web.FileResponse(state.store.file_path(match["id"]), headers={"Content-Type": "application/octet-stream"})


# --- Models ------------------------------------------------------------------------------------


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
    }


def _method_of(model: str, method: str) -> None:
    """Answer 400 for a method the model does not have (an embedding model generates no text)."""
    if method not in _model_resource(model.removeprefix("models/"))["supportedGenerationMethods"]:
        raise ApiError(400, "INVALID_ARGUMENT", f"{model} does not support {method}.")


async def model_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return _page(request, state, [_model_resource(m) for m in _MODELS], "models")


async def model_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    return _json(_model_resource(_model_name(match["model"]).removeprefix("models/")))


async def generate_content(request: web.Request, state: State, match: re.Match[str]) -> web.StreamResponse:
    started = time.monotonic()
    model = _model_name(match["model"])
    _method_of(model, "generateContent")
    body = await _body(request)
    try:
        answer = synthetic.generate(body, model, state.read_file)
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    return await _answer_online(request, state, model, answer, answer["usageMetadata"]["totalTokenCount"], started)


async def batch_embed_contents(request: web.Request, state: State, match: re.Match[str]) -> web.StreamResponse:
    """``batchEmbedContents``, the online embeddings call of the SDK's ``models.embed_content``:
    ``{"requests": [EmbedContentRequest]}`` in, ``{"embeddings": [ContentEmbedding]}`` out."""
    started = time.monotonic()
    model = _model_name(match["model"])
    _method_of(model, "embedContent")
    requests = (await _body(request)).get("requests")
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
                         started: float) -> web.StreamResponse:
    """An online call's answer, after the quotas and the injected faults had their say."""
    key = request.headers.get("x-goog-api-key") or request.query.get("key", "")
    wait = state.quota.admit(key, model, tokens)
    if wait > 0:
        state.counters["429"] += 1
        return _quota_exceeded(wait)
    fault = state.faults.draw()
    await state.faults.delay(fault, started)
    state.counters[fault or "ok"] += 1
    if fault == "reset":
        assert request.transport is not None
        request.transport.abort()  # the client sees the connection dropped, with no response
        return web.Response()
    if fault in ("500", "503"):
        status = "INTERNAL" if fault == "500" else "UNAVAILABLE"
        raise ApiError(int(fault), status, "An injected fault of the emulator.")
    return _json(answer)


def _quota_exceeded(wait: float) -> web.Response:
    """429 as the Gemini API sends it: ``RetryInfo.retryDelay`` in the body and ``Retry-After``."""
    body = {"error": {
        "code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Resource has been exhausted (e.g. check quota).",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{wait:.3f}s"}],
    }}
    return web.Response(status=429, text=json.dumps(body), content_type="application/json",
                        headers={"Retry-After": str(math.ceil(wait))})


async def count_tokens(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    _model_name(match["model"])
    body = await _body(request)
    request_body = body.get("generateContentRequest") or body
    try:
        return _json({"totalTokens": synthetic.count_tokens(synthetic.request_text(request_body))})
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None


# --- Batches -----------------------------------------------------------------------------------


async def batch_create(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    """``batchGenerateContent`` or ``asyncBatchEmbedContent`` (the route's ``method``)."""
    model = _model_name(match["model"])
    _method_of(model, match["method"])
    spec = (await _body(request)).get("batch")
    if not isinstance(spec, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "The request needs a 'batch' object.")
    kind = "embed" if match["method"] == "asyncBatchEmbedContent" else "generate"
    try:
        batch = state.batches.create(model, spec, kind)
    except QuotaExceeded as exc:
        state.counters["429"] += 1
        return _quota_exceeded(exc.retry_after)
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    except KeyError as exc:
        raise ApiError(400, "INVALID_ARGUMENT", f"Input file {exc.args[0]} does not exist.") from None
    return _json(operation(batch))


def _batch(state: State, batch_id: str) -> Any:
    if batch_id not in state.store.batches:
        raise _not_found(f"batches/{batch_id}")
    return state.store.batches[batch_id]


async def batch_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    return _json(operation(_batch(state, match["id"])))


async def batch_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return _page(request, state, [operation(b) for b in state.store.batches.values()], "operations")


async def batch_cancel(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    state.batches.cancel(_batch(state, match["id"]))
    return _json({})


async def batch_delete(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    state.batches.delete(_batch(state, match["id"]))
    return _json({})


# --- Vertex AI batch prediction -----------------------------------------------------------------


def _vertex_job(state: State, job_id: str) -> Any:
    if job_id not in state.vertex.jobs:
        raise _not_found(f"batchPredictionJobs/{job_id}")
    return state.vertex.jobs[job_id]


async def vertex_create(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    try:
        job = state.vertex.create(match["project"], match["location"], await _body(request))
    except synthetic.InvalidRequest as exc:
        raise ApiError(400, "INVALID_ARGUMENT", str(exc)) from None
    return _json(job.resource)


async def vertex_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    return _json(_vertex_job(state, match["id"]).resource)


async def vertex_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return _page(request, state, [job.resource for job in state.vertex.jobs.values()], "batchPredictionJobs")


async def vertex_cancel(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    state.vertex.cancel(_vertex_job(state, match["id"]))
    return _json({})


async def vertex_delete(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    job = _vertex_job(state, match["id"])
    state.vertex.cancel(job)
    del state.vertex.jobs[job.id]
    return _json({"name": f"{job.resource['name']}/operations/{new_id()}", "done": True,
                  "response": {"@type": "type.googleapis.com/google.protobuf.Empty"}})


# --- OAuth --------------------------------------------------------------------------------------


async def oauth_token(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    """Google's token endpoint as a service-account key's ``token_uri`` reaches it: a JWT-bearer
    grant in, an access token out (the assertion's signature is not checked)."""
    form = await request.post()
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("assertion"):
        return web.json_response({"error": "invalid_grant", "error_description": "a JWT-bearer assertion is needed"},
                                 status=400)
    return web.json_response({"access_token": f"emulator-token-{new_id()}", "expires_in": 3600,
                              "token_type": "Bearer"})


# Routes matched on the tail of the path, first match wins; (method, pattern, handler, needs key).
_ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = [
    (m, re.compile(p + "$"), h, auth)
    for m, p, h, auth in [
        ("POST", r"^/token", oauth_token, False),
        ("POST", r"/upload" + _VERSION + r"/files", upload_start, True),
        ("GET", r"(?:/download)?" + _VERSION + r"/files/(?P<id>[a-z0-9-]+):download", file_download, True),
        ("GET", _VERSION + r"/files/(?P<id>[a-z0-9-]+)", file_get, True),
        ("DELETE", _VERSION + r"/files/(?P<id>[a-z0-9-]+)", file_delete, True),
        ("GET", _VERSION + r"/files", file_list, True),
        ("GET", _VERSION + r"/models", model_list, True),
        ("GET", _VERSION + r"/models/(?P<model>[\w.-]+)", model_get, True),
        ("POST", _VERSION + r"/models/(?P<model>[\w.-]+):generateContent", generate_content, True),
        ("POST", _VERSION + r"/models/(?P<model>[\w.-]+):countTokens", count_tokens, True),
        ("POST", _VERSION + r"/models/(?P<model>[\w.-]+):(?P<method>batchGenerateContent|asyncBatchEmbedContent)",
         batch_create, True),
        ("POST", _VERSION + r"/models/(?P<model>[\w.-]+):batchEmbedContents", batch_embed_contents, True),
        ("POST", _VERSION + r"/batches/(?P<id>[a-z0-9-]+):cancel", batch_cancel, True),
        ("GET", _VERSION + r"/batches/(?P<id>[a-z0-9-]+)", batch_get, True),
        ("DELETE", _VERSION + r"/batches/(?P<id>[a-z0-9-]+)", batch_delete, True),
        ("GET", _VERSION + r"/batches", batch_list, True),
        ("POST", r"/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/batchPredictionJobs", vertex_create,
         True),
        ("POST", r"/batchPredictionJobs/(?P<id>[\w-]+):cancel", vertex_cancel, True),
        ("GET", r"/batchPredictionJobs/(?P<id>[\w-]+)", vertex_get, True),
        ("DELETE", r"/batchPredictionJobs/(?P<id>[\w-]+)", vertex_delete, True),
        ("GET", r"/batchPredictionJobs", vertex_list, True),
    ]
]


def _check_key(request: web.Request, config: EmulatorConfig) -> None:
    if request.headers.get("Authorization", "").removeprefix("Bearer ").strip():
        return  # Vertex AI: an OAuth access token, as /token hands out
    if "/projects/" in request.path:
        raise ApiError(401, "UNAUTHENTICATED", "Request is missing required authentication credential.")
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        raise ApiError(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers. Please use an API key.")
    if config.api_keys and key not in config.api_keys:
        raise ApiError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")


async def dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        # Upload chunks go to the URL the start call returned; like the real service, they carry
        # no API key (the upload id stands for it).
        if request.method == "POST" and "upload_id" in request.query:
            return await upload_chunk(request, state)
        for method, pattern, handler, needs_key in _ROUTES:
            match = pattern.search(request.path)
            if match and method == request.method:
                if needs_key:
                    _check_key(request, state.config)
                return await handler(request, state, match)
        raise ApiError(404, "NOT_FOUND", f"{request.method} {request.path} is not an emulated endpoint.")
    except ApiError as exc:
        body = {"error": {"code": exc.code, "message": exc.message, "status": exc.status}}
        return web.Response(status=exc.code, text=json.dumps(body), content_type="application/json")


def create_app(config: EmulatorConfig, base_url: str) -> web.Application:
    """The aiohttp application; ``base_url`` is where clients reach it (used in upload URLs)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    tmp = None
    if config.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gemini-emulator-")
        data_dir = Path(tmp.name)
    else:
        data_dir = config.data_dir
    store = Store(data_dir)
    runner = BatchRunner(store, pending_s=config.batch_pending_s, running_s=config.batch_running_s,
                         base_url=base_url, row_errors=config.batch_row_errors, outcome=config.batch_outcome,
                         output_fault=config.batch_output_fault,
                         max_enqueued_tokens=config.max_enqueued_tokens)
    quota = Quota(config.rpm, config.tpm, config.quota_window_s)
    vertex = VertexRunner(gcs_endpoint=config.gcs_endpoint, pending_s=config.batch_pending_s,
                          running_s=config.batch_running_s, row_errors=config.batch_row_errors,
                          outcome=config.batch_outcome)
    app[STATE] = State(config=config, store=store, batches=runner, base_url=base_url, quota=quota,
                       faults=Faults(config.faults), vertex=vertex, _tmp=tmp)

    async def shutdown(app: web.Application) -> None:
        await runner.tasks.close()
        await vertex.tasks.close()
        if tmp is not None:
            tmp.cleanup()

    async def startup(app: web.Application) -> None:
        runner.resume()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
