"""The Files API: resumable uploads, get, list, delete and download of ``files/<id>``."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from .state import State
from .wire import ApiError, json_response, not_found, page, read_body


async def upload_start(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    meta = (await read_body(request)).get("file") or {}
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
        raise not_found("upload")
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
        raise not_found(f"files/{file_id}")
    return state.store.files[file_id]


async def file_get(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    return json_response(_file(state, match["id"]))


async def file_delete(request: web.Request, state: State, match: re.Match[str]) -> web.Response:
    _file(state, match["id"])
    state.store.delete_file(match["id"])
    return json_response({})


async def file_list(request: web.Request, state: State, _: re.Match[str]) -> web.Response:
    return page(request, state, list(state.store.files.values()), "files")


async def file_download(request: web.Request, state: State, match: re.Match[str]) -> web.StreamResponse:
    _file(state, match["id"])
    return web.FileResponse(state.store.file_path(match["id"]), headers={"Content-Type": "application/octet-stream"})
