"""Which Gemini API errors are transient: worth another try rather than a final failure.

HTTP 408, 429 and 5xx (Google's retry guidance and the SDK's own ``HttpRetryOptions`` defaults),
timeouts and connection failures. One definition for every place that retries: the trigger's polls,
the online engine, and the batch rows re-run online.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx2
from google.genai import errors

RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    """True for HTTP 408/429/5xx and transport failures of the SDK's async (aiohttp) and sync
    (httpx2, its default since google-genai 3.0) clients."""
    if isinstance(exc, errors.APIError):
        return exc.code in RETRYABLE_CODES
    # OSError covers ConnectionError and, since Python 3.11, asyncio.TimeoutError too.
    return isinstance(exc, (aiohttp.ClientError, httpx2.TransportError, asyncio.TimeoutError, OSError))


def server_retry_delay(exc: BaseException) -> float | None:
    """Seconds the server asked to wait: ``RetryInfo.retryDelay`` (e.g. ``"2.5s"``) or ``Retry-After``
    (https://ai.google.dev/gemini-api/docs/troubleshooting, error 429). The SDK reads neither."""
    if not isinstance(exc, errors.APIError):
        return None
    body = exc.details if isinstance(exc.details, dict) else {}
    details = (body.get("error") or {}).get("details") or []
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            try:
                return float(str(detail.get("retryDelay", "")).rstrip("s"))
            except ValueError:
                pass
    headers = getattr(exc.response, "headers", None) or {}
    try:
        return float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None
