"""Which Gemini API errors are transient: worth another try rather than a final failure.

HTTP 408, 429 and 5xx (Google's retry guidance and the SDK's own ``HttpRetryOptions`` defaults),
timeouts and connection failures. One definition for every place that retries: the trigger's polls,
the online engine, and the batch rows re-run online.

A batch output line's error carries a gRPC canonical code (``{"code": 14, "message": ...}``), often
without its ``status``, where a call's error carries an HTTP code and its status; both families
are read here, by their status name (https://cloud.google.com/apis/design/errors#handling_errors).
"""

from __future__ import annotations

import asyncio

# The SDK's errors and the transports' are imported by the functions that test for them, not up
# front: DAG files import this module through the operators, and never need them.

RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})

#: gRPC canonical codes (https://github.com/googleapis/googleapis/blob/master/google/rpc/code.proto).
GRPC_STATUS = {1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
               6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
               10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
               15: "DATA_LOSS", 16: "UNAUTHENTICATED"}
#: HTTP codes as Google's APIs map them to gRPC statuses (the same design guide).
HTTP_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               408: "DEADLINE_EXCEEDED", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
               500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
#: The statuses of the retryable HTTP codes, whichever family names them.
RETRYABLE_STATUSES = frozenset(HTTP_STATUS[code] for code in RETRYABLE_CODES)


def error_status(code: object, status: object = None) -> str:
    """An error's status name: its own ``status`` when it has one, else the one its code stands
    for (gRPC codes are 1-16, HTTP ones 400-599), else ``UNKNOWN``."""
    if isinstance(status, str) and status:
        return status
    if isinstance(code, int) and not isinstance(code, bool):
        return GRPC_STATUS.get(code) or HTTP_STATUS.get(code) or ("INTERNAL" if 500 <= code < 600 else "UNKNOWN")
    return "UNKNOWN"


def is_retryable_error(error: dict[str, object] | None) -> bool:
    """Whether a results row's ``error`` (``{"code", "message", "status"}``) is worth another try:
    RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED or INTERNAL, by gRPC or HTTP code."""
    return error is not None and error_status(error.get("code"), error.get("status")) in RETRYABLE_STATUSES


def is_retryable(exc: BaseException) -> bool:
    """True for HTTP 408/429/5xx and transport failures of the SDK's async (aiohttp) and sync
    (httpx on google-genai 2.x, httpx2 on 3.x: ``hooks.sdk``) clients."""
    import aiohttp
    from google.genai import errors

    from gemini_batch_provider.hooks.sdk import TRANSPORT_ERRORS

    if isinstance(exc, errors.APIError):
        return exc.code in RETRYABLE_CODES
    # OSError covers ConnectionError and, since Python 3.11, asyncio.TimeoutError too.
    return isinstance(exc, (aiohttp.ClientError, *TRANSPORT_ERRORS, asyncio.TimeoutError, OSError))


def is_api_error(exc: BaseException) -> bool:
    """True for any answer of the API that is an error (``errors.APIError``), and for transient failures."""
    from google.genai import errors

    return isinstance(exc, errors.APIError) or is_retryable(exc)


def is_quota_refusal(exc: BaseException) -> bool:
    """True for the API's 429 RESOURCE_EXHAUSTED: a quota is full and the call was refused, so
    nothing was done (a batch create past the enqueued-token limit is answered so,
    https://ai.google.dev/gemini-api/docs/rate-limits#batch-mode)."""
    from google.genai import errors

    return isinstance(exc, errors.APIError) and exc.code == 429


def is_not_found(exc: BaseException) -> bool:
    """True for the API's 404: the resource asked for (a job, a file) does not exist, or not for this key."""
    from google.genai import errors

    return isinstance(exc, errors.APIError) and exc.code == 404


def server_retry_delay(exc: BaseException) -> float | None:
    """Seconds the server asked to wait: ``RetryInfo.retryDelay`` (e.g. ``"2.5s"``) or ``Retry-After``
    (https://ai.google.dev/gemini-api/docs/troubleshooting, error 429). The SDK reads neither."""
    from google.genai import errors

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
