"""The progress of batch jobs still running, asked of the API through each record's connection and
kept ``ttl`` seconds, so that the page asks once per job per ``ttl`` whatever the number of viewers
(Gemini API or Vertex AI alike: the hook reads the connection). A page load asks its jobs
concurrently, ``WORKERS`` at a time, and waits ``WAIT_SECONDS`` at most for them all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemini_batch_provider.hooks.gemini import GeminiHook

TTL_SECONDS = 15.0
MAX_KNOWN = 4096
# Calls in flight at once for one API server: a page of 50 running jobs answers in a few round
# trips, and a hundred viewers never open more than this many calls to the API.
WORKERS = 8
# The longest a page load waits for progress; a job not answered by then shows none on that load,
# and its answer, once in, serves the next one.
WAIT_SECONDS = 5.0


class LiveProgress:
    """``progress(conn_id, name)``: ``{"state", "requests", "succeeded", "failed", "pending",
    "percent"}`` of one job (``core.jobs.JobStatus``, from ``batchStats`` or ``completionStats``),
    or ``{"error": <exception class>}`` when the API could not be asked (never its message, which
    could quote the connection). A connection is read again once its hook is ``ttl`` seconds old,
    so that a changed key or URL is used within that time."""

    def __init__(self, ttl: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._hooks: dict[str, tuple[float, GeminiHook]] = {}
        self._known: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="gemini-progress")

    def _hook(self, conn_id: str) -> GeminiHook:
        from gemini_batch_provider.hooks.gemini import GeminiHook  # the SDK: only once a job is asked of

        now = self.clock()
        with self._lock:
            made = self._hooks.get(conn_id)
            if made is None or now - made[0] >= self.ttl:  # a connection changed since is read again
                made = self._hooks[conn_id] = (now, GeminiHook(conn_id))
            return made[1]

    def progress(self, conn_id: str, name: str) -> dict[str, Any]:
        key = (conn_id, name)
        with self._lock:
            known = self._known.get(key)
        if known is not None and self.clock() - known[0] < self.ttl:
            return known[1]
        try:
            status = self._hook(conn_id).get_job_status(name)
            answer = {"state": status.state, "requests": status.requests, "succeeded": status.succeeded,
                      "failed": status.failed, "pending": status.pending, "percent": round(status.percent, 1)}
        except Exception as exc:  # the page shows the job without progress
            answer = {"error": type(exc).__name__}
        now = self.clock()
        with self._lock:
            if len(self._known) >= MAX_KNOWN:  # jobs long gone from the page
                self._known = {k: v for k, v in self._known.items() if now - v[0] < self.ttl}
            self._known[key] = (now, answer)
        return answer

    def progress_of(self, jobs: Iterable[tuple[str, str]], timeout: float = WAIT_SECONDS) -> dict[
            tuple[str, str], dict[str, Any]]:
        """``progress`` of each ``(conn_id, name)``, asked concurrently (``WORKERS`` at a time, one
        call per job however often it is listed); a job not answered within ``timeout`` seconds is
        ``{"error": "TimeoutError"}``."""
        asked = {job: self._pool.submit(self.progress, *job) for job in dict.fromkeys(jobs)}
        done, _ = wait(asked.values(), timeout=timeout)
        return {job: future.result() if future in done else {"error": "TimeoutError"}
                for job, future in asked.items()}
