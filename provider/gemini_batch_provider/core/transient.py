"""Which Gemini API errors are transient: worth another try rather than a final failure.

HTTP 408, 429 and 5xx (Google's retry guidance and the SDK's own ``HttpRetryOptions`` defaults),
timeouts and connection failures. One definition for every place that retries: the trigger's polls,
the online engine, and the batch rows re-run online.
"""

from __future__ import annotations

import asyncio

import aiohttp
from google.genai import errors

RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, errors.APIError):
        return exc.code in RETRYABLE_CODES
    # OSError covers ConnectionError and, since Python 3.11, asyncio.TimeoutError too.
    return isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError))
