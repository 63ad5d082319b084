"""One poll of a batch job: the ``GET`` of its resource, read as plain JSON (``core.jobs``).

A Gemini API poll goes straight through the loop's shared aiohttp session (``loop_session``): the
same request the SDK sends (the client's own base URL, API version and headers, the key among
them), its errors the SDK's own (``errors.APIError.raise_for_async_response``). The SDK's request
path around it (retry wrapper, options merge, request and response objects) doubles a poll's CPU,
~0.2 ms more, which a triggerer polling ten thousand jobs can't spare. Vertex AI polls keep the
SDK's path, which refreshes their credentials.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from google import genai
from google.genai import errors

from gemini_batch_provider.hooks.connection import POLL_OPTIONS, POLL_TIMEOUT_MS, loop_session

_POLL_TIMEOUT = aiohttp.ClientTimeout(total=POLL_TIMEOUT_MS / 1000)


def job_path(client: genai.Client, name: str) -> str:
    """The resource path to GET: Vertex AI's rebuilt from the client's project and location and
    the job id, as the SDK does (the service names jobs by project number)."""
    if not client.vertexai:
        return name
    return f"projects/{client._api_client.project}/locations/{client._api_client.location}/" \
           f"batchPredictionJobs/{name.rsplit('/', 1)[-1]}"


def get_operation(client: genai.Client, name: str) -> dict[str, Any]:
    """The job's resource, with the sync client; raises the SDK's ``errors.APIError``."""
    response = client._api_client.request("get", job_path(client, name), {}, POLL_OPTIONS)
    return json.loads(response.body or "{}")


async def aget_operation(client: genai.Client, name: str) -> dict[str, Any]:
    """The job's resource, with the async client (on the running loop); raises the SDK's
    ``errors.APIError``, or aiohttp's errors and ``TimeoutError`` after ``POLL_TIMEOUT_MS``."""
    if client.vertexai:
        response = await client.aio._api_client.async_request("get", job_path(client, name), {})
        return json.loads(response.body or "{}")
    options = client.aio._api_client._http_options
    url = f"{str(options.base_url).rstrip('/')}/{options.api_version}/{name}"
    async with loop_session().get(url, headers=options.headers, timeout=_POLL_TIMEOUT) as response:
        await errors.APIError.raise_for_async_response(response)
        return json.loads(await response.read() or b"{}")
