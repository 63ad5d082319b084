"""Batch jobs in the emulator: create, the PENDING -> RUNNING -> SUCCEEDED progression, the output.

A job's life is driven by one asyncio task and timed from its creation: ``pending_s`` in
BATCH_STATE_PENDING, then it answers every request (in a worker thread, streaming the input file
line by line) while BATCH_STATE_RUNNING, and turns BATCH_STATE_SUCCEEDED ``pending_s + running_s``
after creation. The output file ``files/batch-<id>`` holds one line per input line, in input order:
``{"response": GenerateContentResponse, "key": ...}`` or ``{"error": Status, "key": ...}``; for an
embeddings job (``asyncBatchEmbedContent``), ``{"response": EmbedContentResponse, "key": ...}``.
Per-row errors come on demand (``RowErrors``): a row fails when the hash of its key (of its
position, without a key) falls under a rate, so the same rows fail in every run. So do whole
endings (``outcome`` at creation): ``fail`` (FAILED when it would have succeeded), ``fail-once``
(the first job FAILED, the later ones as usual: an outage a retry outlives), ``expire``
(EXPIRED instead of RUNNING, as after 48 h), ``stall`` (RUNNING until cancelled); none of them
leaves results, as the API documents for EXPIRED. Jobs carry on after an emulator restart.

Limits (https://ai.google.dev/gemini-api/docs/batch-mode): inline requests under 20 MB in all, and,
when ``max_enqueued_tokens`` is set, the estimated tokens of a model's unfinished jobs, and when
``max_concurrent_jobs`` is set, the unfinished jobs of the project (all models): a create beyond
either is refused with 429 RESOURCE_EXHAUSTED and a ``RetryInfo`` delay until the next job ends
(https://ai.google.dev/gemini-api/docs/rate-limits#batch-mode).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import model as synthetic
from .store import Batch, Store, new_id, now, timestamp

log = logging.getLogger(__name__)

INLINE_LIMIT_BYTES = 20 * 1024 * 1024
TERMINAL = {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
BATCH_TYPE = {"generate": _TYPES + "GenerateContentBatch", "embed": _TYPES + "EmbedContentBatch"}
OUTPUT_TYPE = {"generate": _TYPES + "GenerateContentBatchOutput", "embed": _TYPES + "EmbedContentBatchOutput"}


# The gRPC canonical codes a live batch's error lines carry (no HTTP codes, often no status).
GRPC_CODES = {3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 8: "RESOURCE_EXHAUSTED", 13: "INTERNAL", 14: "UNAVAILABLE"}


def _int64(value: Any, field: str) -> int:
    """A JSON int64 field as the API reads it: a number or a string of digits, in range; else the
    API's 400 (``Invalid value at '<field>' (TYPE_INT64)``)."""
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if text is not None and re.fullmatch(r"-?[0-9]+", text.strip()) and -2**63 <= int(text) < 2**63:
        return int(text)
    raise synthetic.InvalidRequest(f"Invalid value at '{field}' (TYPE_INT64), {json.dumps(value)}")


class QuotaExceeded(Exception):
    """A create refused by a quota; ``retry_after`` seconds until it may fit."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.1f} s")
        self.retry_after = retry_after


@dataclass
class RowErrors:
    """Rows of a batch answered with an error: a share ``rate`` of them, each with the gRPC canonical
    ``code`` (one of ``GRPC_CODES``) and no status, as live output lines come; ``code=None`` gives a
    line with a message alone, as some live ones are."""

    rate: float = 0.0
    code: int | None = 14

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1 or (self.code is not None and self.code not in GRPC_CODES):
            raise ValueError(f"row error rate must lie in [0, 1] and code be None or one of {sorted(GRPC_CODES)}")

    def hits(self, identity: str) -> bool:
        digest = hashlib.sha256(identity.encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.rate * 2**64

    def error(self) -> dict[str, Any]:
        message = {"message": "An injected row error of the emulator."}
        return message if self.code is None else {"code": self.code, **message}


def _answer(item: Any, batch: Batch, row_errors: RowErrors, position: int,
            read_file: synthetic.FileReader) -> dict[str, Any]:
    """``{"response": ...}`` or ``{"error": ...}`` for one input item (a file line or inline request)."""
    try:
        if not isinstance(item, dict) or "request" not in item:
            raise synthetic.InvalidRequest("each line must be an object with a 'request' field")
        if row_errors.hits(str(item.get("key", position))):
            return {"error": row_errors.error()}
        if batch.kind == "embed":
            return {"response": synthetic.embed(item["request"])}
        return {"response": synthetic.generate(item["request"], batch.resource["model"], read_file)}
    except synthetic.InvalidRequest as exc:
        return {"error": {"code": 3, "message": str(exc)}}


def operation(batch: Batch) -> dict[str, Any]:
    """The batch as a long-running Operation, the shape every batches endpoint answers with."""
    resource = batch.resource
    op: dict[str, Any] = {"name": resource["name"], "metadata": {"@type": BATCH_TYPE[batch.kind], **resource}}
    if resource["state"] in TERMINAL:
        op["done"] = True
        if "output" in resource:
            op["response"] = {"@type": OUTPUT_TYPE[batch.kind], **resource["output"]}
        if resource["state"] == "BATCH_STATE_CANCELLED":
            op["error"] = {"code": 1, "message": "The batch was cancelled."}
    return op


class JobTasks:
    """The asyncio task that drives each unfinished job, by job id (for both kinds of batch job)."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, job_id: str, run: Coroutine[Any, Any, None]) -> None:
        self._tasks[job_id] = asyncio.get_running_loop().create_task(run)

    def stop(self, job_id: str) -> None:
        """Cancel the job's task, if it still runs."""
        task = self._tasks.pop(job_id, None)
        if task:
            task.cancel()

    def forget(self, job_id: str) -> None:
        """The job's task has ended by itself."""
        self._tasks.pop(job_id, None)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class BatchRunner:
    """Creates batch jobs in a Store and moves them through their states."""

    def __init__(self, store: Store, *, pending_s: float, running_s: float, base_url: str,
                 row_errors: RowErrors, outcome: str = "succeed", max_enqueued_tokens: int | None = None,
                 output_fault: str = "none", max_concurrent_jobs: int | None = None) -> None:
        self.store = store
        self.pending_s = pending_s
        self.running_s = running_s
        self.base_url = base_url
        self.row_errors = row_errors
        self.outcome = outcome
        self.max_enqueued_tokens = max_enqueued_tokens
        self.max_concurrent_jobs = max_concurrent_jobs
        self.output_fault = output_fault
        self.tasks = JobTasks()

    def resume(self) -> None:
        """Carry on the jobs a previous run of the emulator left unfinished (call on the loop)."""
        for batch in self.store.batches.values():
            if batch.resource["state"] not in TERMINAL:
                self._start(batch)

    def _start(self, batch: Batch) -> None:
        self.tasks.start(batch.id, self._run(batch))

    def create(self, model: str, spec: dict[str, Any], kind: str = "generate") -> Batch:
        """Register a job from a ``batch`` body (``kind``: "generate" or "embed"); raises
        InvalidRequest, KeyError (missing file) or QuotaExceeded (the enqueued-token limit)."""
        input_config = spec.get("inputConfig") or {}
        file_name = input_config.get("fileName") or input_config.get("file_name")
        inline = (input_config.get("requests") or {}).get("requests")
        if bool(file_name) == (inline is not None):
            raise synthetic.InvalidRequest("batch.inputConfig needs exactly one of fileName or requests")
        if file_name:
            file_id = file_name.removeprefix("files/")
            if file_id not in self.store.files:
                raise KeyError(file_name)
            path = self.store.file_path(file_id)
            count = sum(1 for line in path.open("rb") if line.strip())
            size = path.stat().st_size
        else:
            count = len(inline)
            size = len(json.dumps(inline))
            if size > INLINE_LIMIT_BYTES:
                raise synthetic.InvalidRequest(f"inline requests take {size} bytes; the limit is 20 MB: use a file")
        priority = _int64(spec.get("priority", 0), "batch.priority")
        tokens = size // 4  # about 4 bytes a token, prompt and answer alike
        self._check_enqueued(model, tokens)
        batch_id = new_id()
        created = timestamp(now())
        resource: dict[str, Any] = {
            "name": f"batches/{batch_id}",
            "model": model,
            "inputConfig": {"fileName": file_name} if file_name else {"requests": {"requests": inline}},
            "createTime": created,
            "updateTime": created,
            "batchStats": {"requestCount": str(count), "pendingRequestCount": str(count)},
            "state": "BATCH_STATE_PENDING",
        }
        if spec.get("displayName"):
            resource["displayName"] = spec["displayName"]
        if priority:  # proto3 JSON leaves out a default (0), and writes an int64 as a string
            resource["priority"] = str(priority)
        outcome = "fail" if self.outcome == "fail-once" else self.outcome
        if self.outcome == "fail-once":
            self.outcome = "succeed"
        batch = Batch(id=batch_id, resource=resource, input_requests=inline, outcome=outcome, tokens=tokens,
                      kind=kind)
        self.store.batches[batch_id] = batch
        self.store.save_batch(batch)
        self._start(batch)
        return batch

    def _check_enqueued(self, model: str, tokens: int) -> None:
        unfinished = [b for b in self.store.batches.values() if b.resource["state"] not in TERMINAL]
        running = [b for b in unfinished if b.resource["model"] == model]
        over_tokens = self.max_enqueued_tokens is not None and \
            sum(b.tokens for b in running) + tokens > self.max_enqueued_tokens
        over_jobs = self.max_concurrent_jobs is not None and len(unfinished) + 1 > self.max_concurrent_jobs
        if over_tokens or over_jobs:
            ends = [b.created + self.pending_s + self.running_s - time.time() for b in unfinished]
            raise QuotaExceeded(max(0.1, min(ends, default=1.0)))

    def cancel(self, batch: Batch) -> None:
        if batch.resource["state"] in TERMINAL:
            return
        self.tasks.stop(batch.id)
        self._finish(batch, "BATCH_STATE_CANCELLED")

    def delete(self, batch: Batch) -> None:
        self.cancel(batch)
        self.store.forget_batch(batch.id)

    def _finish(self, batch: Batch, state: str) -> None:
        moment = timestamp(now())
        batch.resource.update(state=state, updateTime=moment, endTime=moment)
        self.store.save_batch(batch)

    def _paced(self, batch: Batch, position: int, total: int) -> bool:
        """Wait (in the answering thread) until request ``position`` is due, as a live job answers
        its requests over its run and its ``batchStats`` grow meanwhile: spread over the first 90%
        of the running time. False once the job has ended (cancelled)."""
        due = batch.created + self.pending_s + 0.9 * self.running_s * position / total
        wait = due - time.time()
        if wait > 0.02:  # a sleep per row would cost more than it paces
            time.sleep(wait)
        return batch.resource["state"] not in TERMINAL

    def _set_state(self, batch: Batch, state: str) -> None:
        batch.resource.update(state=state, updateTime=timestamp(now()))
        self.store.save_batch(batch)

    async def _until(self, batch: Batch, seconds_after_creation: float) -> None:
        await asyncio.sleep(max(0.0, batch.created + seconds_after_creation - time.time()))

    def _count(self, batch: Batch, answer: dict[str, Any]) -> None:
        counts = {name: int(value) for name, value in batch.resource["batchStats"].items()}
        field = "successfulRequestCount" if "response" in answer else "failedRequestCount"
        counts[field] = counts.get(field, 0) + 1
        counts["pendingRequestCount"] -= 1
        # A new dict, zero counts left out as the API does; replacing it whole is safe while
        # another thread saves the batch from the old one.
        batch.resource["batchStats"] = {name: str(value) for name, value in counts.items() if value}

    async def _run(self, batch: Batch) -> None:
        await self._until(batch, self.pending_s)
        ending = {"fail": "BATCH_STATE_FAILED", "expire": "BATCH_STATE_EXPIRED"}.get(batch.outcome)
        if batch.outcome == "expire":
            await self._until(batch, self.pending_s + self.running_s)
            self._finish(batch, "BATCH_STATE_EXPIRED")
            return
        if batch.resource["state"] != "BATCH_STATE_RUNNING":
            self._set_state(batch, "BATCH_STATE_RUNNING")
        if batch.outcome == "stall":
            return  # RUNNING until cancelled
        if ending is None:
            try:
                output = await self._answer(batch)
            except Exception:  # a job must end, never hang RUNNING: fail it and say why in the log
                log.exception("batch %s: answering failed", batch.id)
                ending = "BATCH_STATE_FAILED"
        await self._until(batch, self.pending_s + self.running_s)
        if ending is None:
            batch.resource["output"] = output
        self._finish(batch, ending or "BATCH_STATE_SUCCEEDED")
        self.tasks.forget(batch.id)

    async def _answer(self, batch: Batch) -> dict[str, Any]:
        """Answer every request; the job's ``output``."""
        count = batch.resource["batchStats"]["requestCount"]  # from zero: a resumed job answers again
        batch.resource["batchStats"] = {"requestCount": count, "pendingRequestCount": count}
        if batch.input_requests is None:
            output_id = f"batch-{batch.id}"
            partial = self.store.root / "uploads" / output_id
            digest = await asyncio.to_thread(self._answer_file, batch, partial)
            # Registered here, on the loop, not in the worker thread: the store is the loop's alone.
            self.store.add_file(output_id, partial, display_name=None, mime_type="application/jsonl",
                                sha256=digest, source="GENERATED", base_url=self.base_url)
            return {"responsesFile": f"files/{output_id}"}
        answers = []
        for position, item in enumerate(batch.input_requests):
            answer = _answer(item, batch, self.row_errors, position, self.store.read_file)
            self._count(batch, answer)
            if isinstance(item, dict) and "metadata" in item:
                answer["metadata"] = item["metadata"]
            answers.append(answer)
        return {"inlinedResponses": {"inlinedResponses": answers}}

    def _answer_file(self, batch: Batch, partial: Path) -> bytes:
        """Stream the input file into the output file ``partial``; returns its SHA-256 digest."""
        source = self.store.file_path(batch.resource["inputConfig"]["fileName"].removeprefix("files/"))
        digest = hashlib.sha256()
        total = sum(1 for line in source.open("rb") if line.strip())
        with source.open("rb") as lines, partial.open("wb") as out:
            for position, raw in enumerate(line for line in lines if line.strip()):
                if not self._paced(batch, position, total):
                    break  # cancelled meanwhile: its counts stay as they were
                if self.output_fault == "truncated" and position >= total * 2 // 3:
                    out.write(b'{"key": "cut-off-here", "resp')  # the file ends mid-line, no newline
                    digest.update(b'{"key": "cut-off-here", "resp')
                    break
                try:
                    item = json.loads(raw)
                except ValueError as exc:
                    item, key = None, None
                    answer = {"error": {"code": 3, "message": f"invalid JSON: {exc}"}}
                else:
                    key = item.get("key") if isinstance(item, dict) else None
                    answer = _answer(item, batch, self.row_errors, position, self.store.read_file)
                self._count(batch, answer)
                line = (json.dumps({**answer, "key": key}) + "\n").encode()
                if self.output_fault == "malformed" and position % 7 == 3:
                    line = line[: len(line) // 2] + b"\n"  # a line broken in half
                digest.update(line)
                out.write(line)
        return digest.digest()
