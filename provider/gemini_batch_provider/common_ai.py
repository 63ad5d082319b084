"""Gemini as a backend of Airflow's common.ai batch layer (``@task.llm_batch``, ``LLMBatchOperator``).

``GeminiBatchAdapter`` implements the ``BatchAdapter`` contract of
``apache-airflow-providers-common-ai`` (``airflow.providers.common.ai.batch.base``) over this
provider's hook and core: requests are built and checked by ``core.requests``, the input is
streamed to a JSONL file and uploaded through the Files API, and results are read with
``core.results.parse_output_line`` from the output file streamed to disk. It is registered under
the entry point ``gemini`` of ``airflow.providers.common.ai.batch_adapters``, so
``model_id="gemini:gemini-3-flash-preview"`` with a ``gemini`` connection picks it.

common.ai builds adapters from a connection's ``password`` (the API key) and ``host`` (a base URL,
for an emulator or a gateway; empty for Google's endpoint). Vertex AI connections need their
project and credentials, which that path does not carry: use this provider's own operators there.

Run in a task, the adapter records its job for the Gemini batches page as this provider's
operators do: the jobs record (``core.summary.jobs_record``) when it submits, and once common.ai has
read every result, a summary of them (rows by status, tokens, cost at the batch price) under
``SUMMARY_XCOM_KEY``, since the task's return value is common.ai's manifest.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from airflow.providers.common.ai.batch.base import (
    BatchAdapter,
    BatchRequest,
    BatchState,
    ExtractedOutput,
    RawResultItem,
    SubmitResult,
)
from airflow.providers.common.ai.exceptions import (
    LLMBatchInputError,
    LLMBatchLimitExceededError,
    LLMBatchModelMismatchError,
)
from airflow.providers.common.compat.sdk import Connection, conf, get_current_context

from gemini_batch_provider.core.cost import ModelPrice, cost_usd, price_of
from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.limits import FILE_LIMIT_BYTES
from gemini_batch_provider.core.requests import RequestSpec
from gemini_batch_provider.core.results import parse_output_line
from gemini_batch_provider.core.schema import OutputSchema
from gemini_batch_provider.core.summary import JOBS_XCOM_KEY, SUMMARY_XCOM_KEY, jobs_record
from gemini_batch_provider.core.vocabulary import JobState, RowStatus
from gemini_batch_provider.hooks.gemini import GeminiHook

# Gemini's job states in common.ai's words (BatchStatus).
STATUS = {JobState.SUCCEEDED: "completed", JobState.FAILED: "failed", JobState.CANCELLED: "cancelled",
          JobState.EXPIRED: "expired"}
DISPLAY_PREFIX = "common-ai"
# A job's create time is kept to the second or so; the key and fingerprint are what identify it.
CLOCK_SLACK = timedelta(minutes=5)


def display_name(idempotency_key: str, input_fingerprint: str) -> str:
    """The job's display name: what ``find_orphaned_batch`` finds it by (the API keeps no other
    metadata of a batch job)."""
    return f"{DISPLAY_PREFIX}:{idempotency_key}:{input_fingerprint[:16]}"


class GeminiBatchAdapter(BatchAdapter):
    """common.ai's batch adapter for the Gemini Batch API (Gemini Developer API).

    :param api_key: the Gemini API key (the connection's password).
    :param base_url: the API's base URL (the connection's host); None for Google's endpoint.
    :param client: a ``GeminiHook`` to use instead (tests, or a hook of a connection id).
    """

    name = "gemini"
    conn_types = frozenset({GeminiHook.conn_type})
    max_requests = 100_000  # common.ai lands up to 100k results a batch
    max_payload_bytes = FILE_LIMIT_BYTES  # the input file's limit (Files API: 2 GB)
    allows_per_request_model = False  # a Gemini batch job runs one model

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None, client: Any | None = None) -> None:
        if client is None:
            conn = Connection(conn_id="common_ai_gemini", conn_type=GeminiHook.conn_type, password=api_key,
                              extra=json.dumps({"base_url": base_url} if base_url else {}))
            client = GeminiHook.for_connection(conn)
        self.hook: GeminiHook = client

    def _requests(self, requests: list[BatchRequest], model: str, idempotency_key: str,
                  output_directive: dict[str, Any], system_prompt: str, max_tokens: int,
                  request_params: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(custom_id, GenerateContentRequest)`` per request, built by ``core.requests`` (one spec
        for each distinct set of settings, as building one checks its generation config). The
        custom ids are unique by construction (``<key>-<index>``, as common.ai reads them back)."""
        specs: dict[str, RequestSpec] = {}
        for index, request in enumerate(requests):
            if self.resolve_request_model(request.get("model"), default_bare_model=model, request_index=index) != model:
                raise LLMBatchModelMismatchError(
                    f"request {index} names model {request['model']!r}, and a Gemini batch job runs one model "
                    f"({model}); leave the request's model out, or give its rows a task of their own")
            config = {**(request_params or {}), **(request.get("params") or {}),
                      "max_output_tokens": request.get("max_tokens") or max_tokens, **output_directive}
            system = request.get("system_prompt") or system_prompt or None
            settings = json.dumps([system, config], sort_keys=True, default=str)
            if settings not in specs:
                specs[settings] = RequestSpec("{prompt}", system_instruction=system, generation_config=config)
            yield f"{idempotency_key}-{index}", specs[settings].request({"prompt": request["prompt"]}, index)

    def _lines(self, requests: list[BatchRequest], model: str, idempotency_key: str, output_spec: Any,
               system_prompt: str, max_tokens: int, request_params: dict[str, Any] | None) -> Iterator[bytes]:
        """The input file's JSONL lines, refused once they pass ``max_payload_bytes``."""
        size = 0
        directive = self.build_output_directive(output_spec)
        for key, request in self._requests(requests, model, idempotency_key, directive, system_prompt, max_tokens,
                                           request_params):
            line = orjson.dumps({"key": key, "request": request}, option=orjson.OPT_APPEND_NEWLINE)
            size += len(line)
            if size > self.max_payload_bytes:
                raise LLMBatchLimitExceededError(
                    f"a Gemini batch input file holds at most {self.max_payload_bytes} bytes; this input "
                    f"passed it at {key}. Split the input with .expand()")
            yield line

    def validate_requests(self, requests: list[BatchRequest], *, model: str, output_spec: Any,
                          idempotency_key: str, system_prompt: str = "", max_tokens: int = 1024,
                          request_params: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Refuse, before any call, a batch over ``max_requests`` or ``max_payload_bytes`` (its
        lines built and measured as ``submit`` writes them), or a request the API would refuse (an
        empty prompt, a bad generation config: ``core.requests``).

        :raises LLMBatchLimitExceededError: too many requests or bytes.
        :raises LLMBatchInputError: a request that can't be built, naming it and the fix.
        """
        self.check_custom_id_length(idempotency_key, len(requests))
        if len(requests) > self.max_requests:
            raise LLMBatchLimitExceededError(
                f"a Gemini batch through common.ai takes at most {self.max_requests} requests, got {len(requests)}; "
                f"split the input with .expand()")
        try:
            for _ in self._lines(requests, model, idempotency_key, output_spec, system_prompt, max_tokens,
                                 request_params):
                pass
        except InputError as exc:
            raise LLMBatchInputError(str(exc)) from None

    def submit(self, requests: list[BatchRequest], *, model: str, idempotency_key: str, input_fingerprint: str,
               output_spec: Any, system_prompt: str = "", max_tokens: int = 1024,
               request_params: dict[str, Any] | None = None, **kwargs: Any) -> SubmitResult:
        """Upload the requests as one JSONL file and create one batch job, named by the key and the
        input's fingerprint (``display_name``)."""
        with tempfile.TemporaryDirectory(prefix="gemini-common-ai-") as folder:
            path = Path(folder) / "input.jsonl"
            with path.open("wb") as out:
                out.writelines(self._lines(requests, model, idempotency_key, output_spec, system_prompt, max_tokens,
                                           request_params))
            name = display_name(idempotency_key, input_fingerprint)
            uploaded = self.hook.upload_file(path, name)
        job = self.hook.create_batch_job(model, uploaded.name, name)
        _push(JOBS_XCOM_KEY, lambda task: jobs_record(
            getattr(task, "llm_conn_id", None), model, [job.name], self.hook.backend.jobs_url([job.name]), None, None,
            time.time()))
        return SubmitResult(batch_id=job.name, provider_input_ref=uploaded.name)

    def get_batch(self, batch_id: str) -> BatchState:
        status = self.hook.get_job_status(batch_id)
        counts = {"succeeded": status.succeeded, "errored": status.failed}
        error = f"{batch_id} ended {status.state}" if status.state == JobState.FAILED else None
        return BatchState(status=STATUS.get(status.state, "in_progress"), counts=counts, error_message=error)

    def cancel_batch(self, batch_id: str) -> None:
        self.hook.cancel_batch_job(batch_id)

    def iter_results(self, batch_id: str) -> Iterator[RawResultItem]:
        """The job's result lines, streamed: the output file is downloaded to a temporary folder
        (1 MiB at a time) and read a line at a time; the folder goes once the lines are read."""
        status = self.hook.get_job_status(batch_id)
        folder = Path(tempfile.mkdtemp(prefix="gemini-common-ai-"))
        try:
            if status.output_file:
                self.hook.download_api_file(status.output_file, folder / "output.jsonl")
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._items(folder, batch_id)

    @staticmethod
    def _items(folder: Path, batch_id: str) -> Iterator[RawResultItem]:
        """The items of ``folder/output.jsonl``. A line that is no JSON object is skipped: the
        API sends the same file on every try, so one damaged line must not stop the others from
        landing (common.ai lands the rows it never saw as ``missing``). Once every line is read,
        their summary goes to the task's XCom for the Gemini batches page (``_Tally``)."""
        path = folder / "output.jsonl"
        tally = _Tally()
        try:
            if path.exists():
                with path.open("rb") as lines:
                    for line in lines:
                        try:
                            item = orjson.loads(line)
                        except orjson.JSONDecodeError:
                            continue
                        if isinstance(item, dict):
                            result = _item(item)
                            tally.add(result)
                            yield result
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        _push(SUMMARY_XCOM_KEY, lambda task: tally.summary(batch_id))

    def build_output_directive(self, spec: Any) -> dict[str, Any]:
        """Gemini's structured output: the schema as ``response_json_schema``, JSON answers."""
        return OutputSchema(spec.json_schema).generation_config() if spec.is_structured else {}

    def extract_output(self, raw: RawResultItem, spec: Any) -> ExtractedOutput:
        text = raw.raw["text"] if isinstance(raw.raw, dict) else None
        if text is None:
            return ExtractedOutput(kind="absent")
        return ExtractedOutput(kind="json_text" if spec.is_structured else "text", text=text)

    def find_orphaned_batch(self, idempotency_key: str, input_fingerprint: str, not_before: str) -> str | None:
        """The newest job whose display name carries this key and fingerprint (``display_name``),
        created at or after ``not_before`` (less ``CLOCK_SLACK``); None when there is none.
        Listing errors propagate."""
        job = self.hook.find_batch_job(display_name(idempotency_key, input_fingerprint))  # the newest listed first
        if job is None:
            return None
        if not_before and job.create_time is not None:
            if job.create_time < datetime.fromisoformat(not_before) - CLOCK_SLACK:
                return None
        return job.name

    def close(self) -> None:
        """Close the hook's HTTP client, when one was made."""
        if "client" in self.hook.__dict__:
            self.hook.client.close()


def _push(key: str, value: Callable[[Any], dict[str, Any]]) -> None:
    """Push ``value(task)`` to the running task's XCom under ``key``; nothing outside a task (the
    adapter used on its own)."""
    try:
        context = get_current_context()
    except RuntimeError:  # no task is running here (Airflow says so with a RuntimeError)
        return
    context["ti"].xcom_push(key=key, value=value(context["ti"].task))


@dataclass
class _Tally:
    """What the results read so far add up to, in the shape of this provider's summary
    (``core.summary.summarize``), priced at the batch price of the model that answered."""

    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    usage: Counter[str] = field(default_factory=Counter)
    cost_usd: float = 0.0
    model: str | None = None
    price: ModelPrice | None = None

    def add(self, item: RawResultItem) -> None:
        if self.model is None and item.model:
            self.model = item.model
            prices_file = conf.get("gemini_batch", "prices_file", fallback=None) or None  # as the operators read it
            self.price = price_of(item.model, prices_file=prices_file)
        row = item.raw
        self.rows += 1
        self.counts[row["status"]] += 1
        usage = row["usage"] or {}
        self.usage.update({name: value for name, value in usage.items() if type(value) is int})
        if self.price is not None:
            self.cost_usd += cost_usd(usage, self.price, batch=True)

    def summary(self, batch_id: str) -> dict[str, Any]:
        return {"rows": self.rows, "counts": {status.value: self.counts[status] for status in RowStatus},
                "usage": dict(self.usage), "path": "batch", "rows_by_path": {"batch": self.rows},
                "batch_jobs": [batch_id], "output_path": None, "model": self.model, "estimated_cost_usd": None,
                "cost_usd": round(self.cost_usd, 6) if self.price is not None else None}


def _item(line: dict[str, Any]) -> RawResultItem:
    """One output line as common.ai's ``RawResultItem``; ``raw`` is this provider's results row."""
    row = parse_output_line(line)
    custom_id = row["key"]
    tail = custom_id.rpartition("-")[2]
    index = int(tail) if tail.isdigit() else -1  # not one of this batch's ids: common.ai skips it
    usage = row["usage"] or {}
    error = None
    if row["status"] != RowStatus.SUCCEEDED:
        error = {"type": "provider_error", "message": row["error"]["message"] if row["error"] else "",
                 "provider_code": row["error"]["status"] if row["error"] else None, "stage": "provider"}
    return RawResultItem(
        custom_id=custom_id, index=index,
        provider_status="success" if row["status"] == RowStatus.SUCCEEDED else "errored",
        model=(line.get("response") or {}).get("modelVersion"),
        usage={"input_tokens": usage.get("prompt_token_count", 0),
               "output_tokens": usage.get("candidates_token_count", 0) + usage.get("thoughts_token_count", 0)},
        finish_reason=row["finish_reason"], error=error, raw=row)
