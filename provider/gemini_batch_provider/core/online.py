"""The online engine: requests sent one by one (``generateContent``, or ``embedContent`` for
embeddings), as fast as the quota allows: on the Gemini Developer API, each request's own JSON
as the SDK would send it, its answer read as plain JSON (``OnlineEngine._generate``); otherwise
through the SDK's ``client.aio``.

For sets too small or too urgent for the Batch API. A fixed pool of ``2 * concurrency`` workers
pulls ``(key, request)`` pairs from the input (so memory stays bounded whatever its size); at most
``concurrency`` calls are in flight, so a row waiting out a backoff leaves its call slot to another
row. Every call passes a requests-per-minute and a tokens-per-minute limiter first (aiolimiter). Calls that fail
with HTTP 408/429/500/502/503/504, a timeout or a dropped connection are retried with exponential
backoff and jitter (tenacity); when the server says how long to wait (``RetryInfo.retryDelay`` in
the body or ``Retry-After``, both of which the SDK ignores) that delay is honoured instead. Other
4xx answers are final at once. Each row lands (``write``) as soon as it is done; a row whose
retries run out lands ``failed`` with its last error, so no row is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp
import orjson
import tenacity
from aiolimiter import AsyncLimiter
from google import genai
from google.genai import errors, types

from gemini_batch_provider.hooks.connection import loop_session

from .plan import SERVICE_TIERS, OnlineSettings
from .results import ResultsWriter, embedding_row, error_row, response_row, wire_response_row
from .tokens import estimate_tokens
from .transient import error_status, is_retryable, server_retry_delay
from .vocabulary import RowPath

log = logging.getLogger(__name__)


class _NoAfcNotice(logging.Filter):
    """Drops the SDK's "AFC is enabled" INFO line, which it writes for every call made without a
    config (which is how these calls go when a request has no shared settings: building a config
    costs more CPU than the rest of the call's preparation). These requests declare no tools."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("AFC is enabled")


_NO_AFC_NOTICE = _NoAfcNotice()


@dataclass
class OnlineStats:
    """What a run did: rows done, calls made, 429s and other retried errors seen, and the rows that
    ran out of attempts on transient errors (``gave_up``: the service did not answer them)."""

    total: int | None = None
    done: int = 0
    calls: int = 0
    responses_429: int = 0
    retried_errors: int = 0
    gave_up: int = 0
    started: float = field(default_factory=time.monotonic)
    left: set[str] = field(default_factory=set)  # keys not done when the run was stopped (``stop_at``)

    def progress(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.total:
            eta = f"{(self.total - self.done) / rate:.0f} s" if rate else "unknown"
            head = f"{self.done}/{self.total} rows"
        else:
            eta, head = "unknown", f"{self.done} rows"
        return f"{head}, {rate:.1f} rows/s, ETA {eta}, {self.responses_429} responses 429, {self.calls} calls"


def _config(request: dict[str, Any], service_tier: str) -> types.GenerateContentConfig | None:
    """The SDK config for a request's shared settings and the service tier; None when it has
    none (the SDK's conversion of a config costs about a millisecond a call)."""
    fields = dict(request.get("generationConfig") or {})
    if request.get("systemInstruction"):
        fields["systemInstruction"] = request["systemInstruction"]
    if service_tier != "standard":
        fields["serviceTier"] = service_tier
    if not fields:
        return None
    # No automatic function calling: these requests declare no tools, and it logs a line per call.
    fields["automaticFunctionCalling"] = {"disable": True}
    return types.GenerateContentConfig.model_validate(fields)


def _with_service_tier(row: dict[str, Any], headers: Mapping[str, str] | None) -> dict[str, Any]:
    """``row`` with the tier that served it in its ``usage`` (``service_tier``: ``standard``,
    ``flex`` or ``priority``), where the answer names one. The API names it in
    ``usageMetadata.serviceTier``, which the SDK's type (google-genai 3.6) drops, and in the
    ``x-gemini-service-tier`` header, which it keeps."""
    tier = str((headers or {}).get("x-gemini-service-tier", "")).lower()
    if tier not in SERVICE_TIERS or not row.get("usage"):
        return row
    return {**row, "usage": {**row["usage"], "service_tier": tier}}


def _rate_limiter(per_minute: int | None) -> AsyncLimiter | None:
    """A limiter that spaces calls evenly at ``per_minute``, with no burst: a quota enforced over
    any window shorter than a minute is then never exceeded."""
    if per_minute is None:
        return None
    return AsyncLimiter(1, 60 / per_minute)


def _token_limiter(per_minute: int | None) -> AsyncLimiter | None:
    """A limiter that lets tokens through evenly at ``per_minute``, at most a tenth of a second's
    worth at once: like the RPM limiter, it never bursts a minute's budget into a shorter window."""
    if per_minute is None:
        return None
    return AsyncLimiter(per_minute / 600, 0.1)


# A call's time limit is the engine's own (``OnlineSettings.timeout_s``, 15 minutes on Flex), not
# the shared session's default of 5 minutes.
_NO_SESSION_TIMEOUT = aiohttp.ClientTimeout(total=None)


class _WireAnswer(NamedTuple):
    """A ``generateContent`` answer as the wire gave it: its JSON and its headers."""

    body: dict[str, Any]
    headers: Mapping[str, str]


class OnlineEngine:
    """Runs ``(key, request)`` pairs through ``generateContent`` (or ``embedContent``); see the module doc.

    Give it a client whose own retries are off (``HttpRetryOptions(attempts=1)``, as GeminiHook
    builds it): retrying is this engine's job, and the SDK's aiohttp path would otherwise retry a
    dropped connection by itself after sleeping 1-10 s.
    """

    def __init__(self, client: genai.Client, model: str, settings: OnlineSettings | None = None) -> None:
        self.client = client
        self.model = model
        self.settings = settings or OnlineSettings()
        logging.getLogger("google_genai.models").addFilter(_NO_AFC_NOTICE)  # adding it again is a no-op
        self._rpm = _rate_limiter(self.settings.rpm)
        self._tpm = _token_limiter(self.settings.tpm)
        self._slots: asyncio.Semaphore | None = None  # these two made in run(), on the loop that uses them
        self._tokens_turn: asyncio.Lock | None = None
        self.stats = OnlineStats()
        self.path = RowPath.FLEX if self.settings.service_tier == "flex" else RowPath.ONLINE
        self._generate_path = f"{model if model.startswith('models/') else f'models/{model}'}:generateContent"
        # Requests built from one RequestSpec share their config objects: validate each once.
        self._configs: dict[tuple[int, int], tuple[Any, Any, types.GenerateContentConfig | None]] = {}

    def _config_for(self, request: dict[str, Any]) -> types.GenerateContentConfig | None:
        shared = (request.get("generationConfig"), request.get("systemInstruction"))
        ids = (id(shared[0]), id(shared[1]))
        if ids not in self._configs:  # the objects are kept with the config, so their ids stay theirs
            self._configs[ids] = (*shared, _config(request, self.settings.service_tier))
        return self._configs[ids][2]

    async def _charge_tokens(self, tokens: int) -> None:
        if self._tpm is None or tokens <= 0:
            return
        assert self._tokens_turn is not None, "call run() or run_one() inside run()"
        # aiolimiter takes at most its bucket at once; one request takes its chunks at a time, in
        # turn, or the chunks of all waiting requests interleave and every one of them goes late.
        async with self._tokens_turn:
            while tokens > 0:
                chunk = min(tokens, self._tpm.max_rate)
                await self._tpm.acquire(chunk)
                tokens -= chunk

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        server = server_retry_delay(exc) if exc else None
        if server is not None:
            return server + random.uniform(0, 0.1 * server + 0.05)  # spread the herd a little
        backoff = self.settings.initial_backoff_s * 2 ** (state.attempt_number - 1)
        return random.uniform(0, min(self.settings.max_backoff_s, backoff))  # "full jitter"

    def _send(self, request: dict[str, Any]) -> Awaitable[Any]:
        """The call for a request: ``embed_content`` for an ``EmbedContentRequest``, else
        ``generateContent``: on the Gemini Developer API, the request's own JSON (``_generate``);
        on Vertex AI, the SDK's ``generate_content``."""
        if "content" in request:
            config = types.EmbedContentConfig(task_type=request.get("taskType"),
                                              output_dimensionality=request.get("outputDimensionality"))
            return self.client.aio.models.embed_content(model=self.model, contents=[request["content"]], config=config)
        if not self.client.vertexai:
            return self._generate(request)
        return self.client.aio.models.generate_content(model=self.model, contents=request["contents"],
                                                       config=self._config_for(request))

    async def _generate(self, request: dict[str, Any]) -> _WireAnswer:
        """``models.generateContent`` with the request as built (already the API's JSON, as a batch
        input line carries it), sent as the SDK sends it (the client's base URL, API version and
        headers, the key among them; its errors the SDK's own, ``errors.APIError``) on the loop's
        shared session (``hooks.connection.loop_session``), and its answer read as plain JSON
        (``results.wire_response_row``). The SDK's request path (its conversion of the request and
        the answer to and from its types, its retry wrapper, a proxy lookup in a worker thread)
        costs ~1 ms of CPU a call on the event loop, and every other call's answer waits behind it."""
        body = request if self.settings.service_tier == "standard" else {
            **request, "serviceTier": self.settings.service_tier}
        options = self.client.aio._api_client._http_options
        url = f"{str(options.base_url).rstrip('/')}/{options.api_version}/{self._generate_path}"
        async with loop_session().post(url, data=orjson.dumps(body), headers=options.headers,
                                       timeout=_NO_SESSION_TIMEOUT) as response:
            await errors.APIError.raise_for_async_response(response)
            return _WireAnswer(orjson.loads(await response.read() or b"{}"), response.headers)

    async def _call(self, request: dict[str, Any], estimate: int) -> Any:
        assert self._slots is not None, "call run() or run_one() inside run()"
        async with self._slots:
            if self._rpm is not None:
                await self._rpm.acquire()
            await self._charge_tokens(estimate)
            self.stats.calls += 1
            try:
                return await asyncio.wait_for(self._send(request), self.settings.timeout_s)
            except Exception as exc:
                self._count_error(exc)
                raise

    def _count_error(self, exc: BaseException) -> None:
        if isinstance(exc, errors.APIError) and exc.code == 429:
            self.stats.responses_429 += 1
        elif is_retryable(exc):
            self.stats.retried_errors += 1

    async def _attempts(self, request: dict[str, Any], estimate: int) -> Any:
        """The call's answer, tried up to ``max_attempts`` times while its errors are transient.

        The first try is made straight: most calls need no other, and tenacity's machinery costs
        ~0.15 ms of CPU a call on the loop, where every other call's answer waits. A first try that
        failed transiently is handed to tenacity as its own first attempt (raised again, not sent
        again), so the waits and the count of attempts are tenacity's throughout."""
        try:
            return await self._call(request, estimate)
        except Exception as exc:
            if not is_retryable(exc) or self.settings.max_attempts == 1:
                raise
            first: list[Exception] = [exc]

        async def attempt() -> Any:
            if first:
                raise first.pop()
            return await self._call(request, estimate)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(is_retryable),
            wait=self._wait,
            stop=tenacity.stop_after_attempt(self.settings.max_attempts),
            reraise=True,
        )
        return await retrying(attempt)

    async def run_one(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        """The results row for one request; never raises for API or transport errors."""
        estimate = estimate_tokens(request, self.model)
        try:
            response = await self._attempts(request, estimate)
        except errors.APIError as exc:
            self.stats.gave_up += is_retryable(exc)
            return error_row(key, self.path, str(exc.message), error_status(exc.code, exc.status), exc.code)
        except TimeoutError:
            self.stats.gave_up += 1
            return error_row(key, self.path, f"no answer within {self.settings.timeout_s} s",
                             "DEADLINE_EXCEEDED")
        except (aiohttp.ClientError, OSError) as exc:
            self.stats.gave_up += 1
            return error_row(key, self.path, f"{type(exc).__name__}: {exc}", "UNAVAILABLE")
        if isinstance(response, types.EmbedContentResponse):
            return embedding_row(key, self.path, response.embeddings[0].values if response.embeddings else None)
        if isinstance(response, _WireAnswer):
            row, headers = wire_response_row(key, self.path, response.body), response.headers
        else:
            row = response_row(key, self.path, response)
            headers = response.sdk_http_response.headers if response.sdk_http_response else None
        total = (row.get("usage") or {}).get("total_token_count")
        if total:
            await self._charge_tokens(total - estimate)
        return _with_service_tier(row, headers)

    async def run(self, requests: Iterable[tuple[str, dict[str, Any]]], write: Callable[[dict[str, Any]], None],
                  total: int | None = None, stop_at: float | None = None) -> OnlineStats:
        """Run every request, calling ``write(row)`` as each row is done; returns the stats. At
        ``stop_at`` (Unix time; None: never), the calls in flight are cancelled and no other is
        made: the keys not done are ``stats.left``, none of them written.

        Cancelling the returned coroutine cancels every call in flight.
        """
        self.stats = OnlineStats(total=total)
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._tokens_turn = asyncio.Lock()
        pending = iter(requests)
        in_flight: dict[int, str] = {}

        async def worker(slot: int) -> None:
            for key, request in pending:  # one shared iterator: each pair goes to one worker
                in_flight[slot] = key
                row = await self.run_one(key, request)
                del in_flight[slot]
                write(row)
                self.stats.done += 1

        async def report() -> None:
            while True:
                await asyncio.sleep(self.settings.progress_interval_s)
                log.info("Online progress: %s", self.stats.progress())

        reporter = asyncio.create_task(report())
        timer = asyncio.timeout(None if stop_at is None else max(0.0, stop_at - time.time()))
        try:
            async with timer:
                await asyncio.gather(*(worker(slot) for slot in range(2 * self.settings.concurrency)))
        except TimeoutError:
            if not timer.expired():
                raise
            self.stats.left = {*in_flight.values(), *(key for key, _ in pending)}
            log.info("Stopped at the deadline with %d rows not done.", len(self.stats.left))
        finally:
            reporter.cancel()
        log.info("Online run done: %s", self.stats.progress())
        return self.stats


def run_online(client: genai.Client, model: str, requests: Iterable[tuple[str, dict[str, Any]]], total: int,
               settings: OnlineSettings, writer: ResultsWriter, task_log: logging.Logger,
               stop_at: float | None = None) -> OnlineStats:
    """Run ``requests`` (``total`` of them) through the engine on a new event loop, each row
    written to ``writer`` as soon as it is done, until ``stop_at`` (``OnlineEngine.run``); the
    stats, also logged to ``task_log``."""

    async def run() -> OnlineStats:
        return await OnlineEngine(client, model, settings).run(requests, writer.write, total=total, stop_at=stop_at)

    stats = asyncio.run(run())
    task_log.info("%d calls for %d rows online; %d responses 429, %d other retried errors", stats.calls, total,
                  stats.responses_429, stats.retried_errors)
    return stats
