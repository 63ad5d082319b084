"""The emulator's HTTP surface: the Gemini Developer API and Vertex AI endpoints the google-genai
SDK calls, routed to one module per resource (files, models, batches, Vertex AI).

Paths are matched on their tail, so any ``base_url`` path prefix and the API versions ``v1``,
``v1beta``, ``v1alpha`` or none all work (see reference/gemini-wire-protocol.md, section 0).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from aiohttp import web

from .batches import BatchRunner
from .batches_routes import batch_cancel, batch_create, batch_delete, batch_get, batch_list
from .faults import Faults
from .files_routes import file_delete, file_download, file_get, file_list, upload_chunk, upload_start
from .models_routes import batch_embed_contents, count_tokens, generate_content, model_get, model_list
from .quota import Quota
from .state import STATE, EmulatorConfig, State
from .store import Store
from .tiers import Tiers
from .vertex import VertexRunner
from .vertex_routes import oauth_token, vertex_cancel, vertex_create, vertex_delete, vertex_get, vertex_list
from .wire import VERSION, ApiError, Handler

# Routes matched on the tail of the path, first match wins; (method, pattern, handler, needs key).
_ROUTES: list[tuple[str, re.Pattern[str], Handler, bool]] = [
    (m, re.compile(p + "$"), h, auth)
    for m, p, h, auth in [
        ("POST", r"^/token", oauth_token, False),
        ("POST", r"/upload" + VERSION + r"/files", upload_start, True),
        ("GET", r"(?:/download)?" + VERSION + r"/files/(?P<id>[a-z0-9-]+):download", file_download, True),
        ("GET", VERSION + r"/files/(?P<id>[a-z0-9-]+)", file_get, True),
        ("DELETE", VERSION + r"/files/(?P<id>[a-z0-9-]+)", file_delete, True),
        ("GET", VERSION + r"/files", file_list, True),
        ("GET", VERSION + r"/models", model_list, True),
        ("GET", VERSION + r"/models/(?P<model>[\w.-]+)", model_get, True),
        ("POST", VERSION + r"/models/(?P<model>[\w.-]+):generateContent", generate_content, True),
        ("POST", VERSION + r"/models/(?P<model>[\w.-]+):countTokens", count_tokens, True),
        ("POST", VERSION + r"/models/(?P<model>[\w.-]+):(?P<method>batchGenerateContent|asyncBatchEmbedContent)",
         batch_create, True),
        ("POST", VERSION + r"/models/(?P<model>[\w.-]+):batchEmbedContents", batch_embed_contents, True),
        ("POST", VERSION + r"/batches/(?P<id>[a-z0-9-]+):cancel", batch_cancel, True),
        ("GET", VERSION + r"/batches/(?P<id>[a-z0-9-]+)", batch_get, True),
        ("DELETE", VERSION + r"/batches/(?P<id>[a-z0-9-]+)", batch_delete, True),
        ("GET", VERSION + r"/batches", batch_list, True),
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
                         max_enqueued_tokens=config.max_enqueued_tokens,
                         max_concurrent_jobs=config.max_concurrent_jobs)
    quota = Quota(config.rpm, config.tpm, config.quota_window_s)
    vertex = VertexRunner(gcs_endpoint=config.gcs_endpoint, pending_s=config.batch_pending_s,
                          running_s=config.batch_running_s, row_errors=config.batch_row_errors,
                          outcome=config.batch_outcome)
    app[STATE] = State(config=config, store=store, batches=runner, base_url=base_url, quota=quota,
                       faults=Faults(config.faults), tiers=Tiers(config.tiers), vertex=vertex, _tmp=tmp)

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
