"""The plan of a run: everything known before a row is read, built and checked once, then frozen.

The operators build a ``BatchPlan`` from their parameters when the DAG is parsed (so that a bad
template, schema, limit or budget fails there) and again from the rendered ones when a try starts.
Every stage after it (``core.submit``, ``core.land``, the online engine) reads the plan and passes
plain data on: a ledger, a wait event, a summary. Nothing here imports Airflow.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .cost import Estimate, ModelPrice, check_prices, price_of
from .errors import BudgetExceeded, InputError
from .limits import FILE_LIMIT_BYTES, INLINE_MAX_BYTES, ShardLimits
from .records import iter_records
from .requests import EmbedRequestSpec, RequestSpec, build_requests
from .schema import OutputSchema
from .tokens import THOUGHTS_BEYOND_PROMPT

JOB_LIFETIME_S = 48 * 3600.0  # a job not done by then expires (https://ai.google.dev/gemini-api/docs/batch-mode)
BATCH_TURNAROUND_S = 24 * 3600.0  # the Batch API's target: a job is done within 24 h (same page)
MODES = ("batch", "online", "flex", "auto")
#: Gemini's service tiers of an online call (``GenerateContentConfig.service_tier``; the Batch API is the fourth
#: way to buy an answer): https://ai.google.dev/gemini-api/docs/flex-inference, read December 2026.
SERVICE_TIERS = ("standard", "flex", "priority")
STANDARD_REQUEST_TIMEOUT_S = 120.0  # seconds a Standard or Priority call may take, by default
#: Seconds a Flex call may stay open: Flex answers synchronously within minutes (its target is 1-15 min). ``auto``
#: counts on each Flex call taking this long, so that what it routes to Flex is done by the deadline.
FLEX_REQUEST_TIMEOUT_S = 900.0
#: What a try does when the input differs from what its task instance submitted (``core.submit``).
ON_CHANGED_INPUT = ("fail", "submit")
ON_DEADLINE = ("online", "cancel")
ON_BAD_ROW = ("fail", "land")
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@/-]*")
SCHEMA_KEYS = frozenset({"response_schema", "responseSchema", "response_json_schema", "responseJsonSchema"})


@dataclass(frozen=True)
class MediaSettings:
    """How a run's media are sent (see ``core.media``).

    :param fields: record fields holding media.
    :param inline_max_bytes: media up to this size go inline in each request; larger ones are uploaded.
    :param max_bytes: largest medium accepted (the Files API's 2 GB at most).
    :param keep_files: keep the uploaded media once the results have landed.
    :raises InputError: unless ``0 <= inline_max_bytes <= max_bytes <= 2 GB``.
    """

    fields: tuple[str, ...] = ()
    inline_max_bytes: int = INLINE_MAX_BYTES
    max_bytes: int = FILE_LIMIT_BYTES
    keep_files: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.inline_max_bytes <= self.max_bytes <= FILE_LIMIT_BYTES:
            raise InputError(f"media sizes must satisfy 0 <= inline_media_max_bytes <= max_media_bytes <= "
                             f"{FILE_LIMIT_BYTES}, got {self.inline_max_bytes} and {self.max_bytes}")


@dataclass(frozen=True)
class ReuseSettings:
    """Which earlier answers a run reuses (``core.answers``).

    :param enabled: reuse answers at all; False sends every row (a fresh sample).
    :param answer_store: a folder of answers shared by tasks and DAGs (a local path or a URL, see
        ``storage``), read before sending and added to after landing; None: only the results file
        the run replaces is read.
    :param max_age_s: answers older than this many seconds are sent again; None: any age.
    :raises InputError: for a maximum age that is not a positive number.
    """

    enabled: bool = True
    answer_store: str | None = None
    max_age_s: float | None = None

    def __post_init__(self) -> None:
        age = self.max_age_s
        if age is not None and (isinstance(age, bool) or not isinstance(age, int | float) or not age > 0):
            raise InputError(f"reuse_max_age must be a positive number of seconds or a timedelta, got {age!r}")


@dataclass(frozen=True)
class Budget:
    """What a run may cost: ``max_cost_usd`` US dollars (None: no budget), at ``prices``
    (``{"model": {"input": $, "output": $, "cached": $, ...}}`` per million tokens, the fields of
    ``core.cost.ModelPrice``) over the deployment's ``prices_file`` over ``core.cost.PRICES``. The
    estimate's prompt side is checked against the API's own count (``countTokens``, not billed) on
    the first ``count_tokens_sample`` rows (0: no calls, the rule of thumb alone).

    :raises InputError: for a budget that is not a finite number of dollars, zero or more, a price
        that is not one, or a sample that is not a whole number of rows.
    """

    max_cost_usd: float | None = None
    prices: Mapping[str, Mapping[str, Any]] | None = None
    prices_file: str | None = None
    count_tokens_sample: int = 5

    def __post_init__(self) -> None:
        sample = self.count_tokens_sample
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
            raise InputError(f"count_tokens_sample must be a whole number of rows, zero or more, got {sample!r}")
        limit = self.max_cost_usd
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float))
                                  or not math.isfinite(limit) or limit < 0):
            raise InputError(f"max_cost_usd must be a finite number of US dollars, zero or more, got {limit!r}")
        check_prices(self.prices or {})

    def price(self, model: str) -> ModelPrice | None:
        return price_of(model, self.prices, self.prices_file)

    def checked(self, model: str, found: Estimate, batch: bool, ratio: float | None,
                log: logging.Logger, service_tier: str | None = None) -> float | None:
        """``check`` of ``found`` with its prompt side scaled by ``ratio`` (what ``countTokens`` made
        of the first rows over the rule of thumb; None: the rule alone), the estimate and its
        assumptions logged; the estimated cost in US dollars.

        :raises BudgetExceeded: as ``check``."""
        if ratio is not None:
            found = found.scaled(ratio)
        usd = self.check(model, found, batch, service_tier)
        cost = "no known price" if usd is None else f"${usd:.4f}"
        counted = "4 characters a token" if ratio is None else (
            f"4 characters a token times {ratio:.2f}, what countTokens made of the first rows")
        log.info("Estimated cost: %s for %d requests at the %s price of %s: ~%d prompt tokens (%s) and ~%d output "
                 "tokens, of which ~%d thinking (answers of max_output_tokens where set, else as long as the prompt; "
                 "thinking as long as the prompt plus %d, within the thinking budget or level, or the model's "
                 "default). The actual cost follows from the API's token counts once landed.",
                 cost, found.requests, service_tier or ("batch" if batch else "interactive"), model,
                 found.prompt_tokens, counted, found.output_tokens, found.thinking_tokens, THOUGHTS_BEYOND_PROMPT)
        return usd

    def check(self, model: str, found: Estimate, batch: bool, service_tier: str | None = None) -> float | None:
        """The estimated cost in US dollars (None without a known price), at the batch or the
        interactive price, or at ``service_tier``'s where given.

        :raises BudgetExceeded: it is over ``max_cost_usd``, or there is a budget and no price.
        """
        usd = found.usd(self.price(model), batch, service_tier)
        if self.max_cost_usd is None:
            return usd
        if usd is None:
            raise BudgetExceeded(f"max_cost_usd is set but {model} has no known price; give its price with "
                                 "prices={...}; nothing was sent or billed")
        if usd > self.max_cost_usd:
            raise BudgetExceeded(
                f"the estimated cost ${usd:.4f} ({found.requests} requests) is over max_cost_usd "
                f"${self.max_cost_usd:.4f}; nothing was sent or billed. Raise the budget, or send fewer rows or "
                "shorter prompts")
        return usd


@dataclass(frozen=True)
class Routing:
    """Which path the rows take (``GeminiBatchOperator``).

    :param mode: ``batch``; ``online`` (every row through the online engine, Standard tier);
        ``flex`` (every row through the online engine on Gemini's Flex tier: the batch price, each
        answered within minutes, calls the API sheds retried); ``auto`` (``route`` picks).
    :param online_threshold: rows at or below which ``auto`` goes online.
    :param deadline_s: seconds after the first job was created, across retries, after which
        unfinished jobs are cancelled (None: wait for the jobs; at most 48 h, when jobs expire); on
        Flex, seconds after the Flex run started.
    :param on_deadline: ``online``: rows the cancelled jobs (or Flex) did not answer finish
        online, Standard tier; ``cancel``: they land ``cancelled`` and the task fails.
    :param rerun_failed_online: rows the batch answered with a retryable error, or gave no
        readable answer, run again online.
    :raises InputError: for a value out of these.
    """

    mode: str = "batch"
    online_threshold: int = 100
    deadline_s: float | None = None
    on_deadline: str = "online"
    rerun_failed_online: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.on_deadline not in ON_DEADLINE:
            raise InputError(f"on_deadline must be one of {ON_DEADLINE}, got {self.on_deadline!r}")
        seconds = self.deadline_s
        if seconds is not None and not (isinstance(seconds, (int, float)) and 0 < seconds <= JOB_LIFETIME_S):
            raise InputError(f"deadline must be positive seconds and at most {JOB_LIFETIME_S} (48 h, after which a "
                             f"batch job expires by itself), got {seconds!r}")
        if isinstance(self.online_threshold, bool) or not isinstance(self.online_threshold, int) \
                or self.online_threshold < 0:
            raise InputError(f"online_threshold must be a whole number of rows, zero or more, got "
                             f"{self.online_threshold!r}")

    def route(self, rows: int, concurrency: int, standard_over_budget: bool = False) -> tuple[str, str]:
        """Which path ``rows`` rows take, ``batch``, ``online`` (Standard) or ``flex``, and why (a
        log line's words). ``auto`` picks, from the cheapest way that meets the need:

        - at most ``online_threshold`` rows: Standard, answered in seconds, unless its price is
          over the budget (``standard_over_budget``);
        - a deadline shorter than the Batch API's target (``BATCH_TURNAROUND_S``), and few enough
          rows that Flex finishes them by then (``concurrency`` calls in flight, each taking
          ``FLEX_REQUEST_TIMEOUT_S`` at worst): Flex, at the batch price;
        - else the Batch API, at the same price, with no bound on the rows, waiting in the
          triggerer where Flex would hold a worker for its calls.

        Priority is never picked: it is for user-facing calls, asked for by name."""
        if self.mode != "auto":
            return self.mode, f"mode {self.mode}"
        if rows <= self.online_threshold and not standard_over_budget:
            return "online", f"auto: {rows} rows, at most online_threshold ({self.online_threshold}): Standard"
        urgent = self.deadline_s is not None and self.deadline_s < BATCH_TURNAROUND_S
        flex_rows = concurrency * int(self.deadline_s // FLEX_REQUEST_TIMEOUT_S) if urgent else 0
        if rows <= flex_rows:
            return "flex", (f"auto: {rows} rows due within {self.deadline_s:.0f} s, which Flex finishes by then "
                            f"({flex_rows} rows at most: {concurrency} calls in flight, {FLEX_REQUEST_TIMEOUT_S:.0f} s "
                            "a call at worst), at the batch price")
        why = "Standard over max_cost_usd" if rows <= self.online_threshold else (
            f"more than online_threshold ({self.online_threshold})")
        if urgent:
            why += f", and more than Flex finishes by the deadline ({flex_rows})"
        elif self.deadline_s is not None:
            why += ", and a deadline the Batch API's 24 h target meets"
        return "batch", f"auto: {rows} rows, {why}: the Batch API"

    @property
    def online_after_deadline(self) -> bool:
        return self.on_deadline == "online"


MAX_CONCURRENCY = 1000


@dataclass(frozen=True)
class OnlineSettings:
    """Limits of the online engine.

    :param concurrency: calls in flight at most (rows in progress: twice that).
    :param rpm: requests per minute at most (None: no limit); calls are spaced evenly, not bursted.
    :param tpm: tokens per minute at most (None: no limit), let through evenly, a tenth of a
        second's worth at most at once (so set it a little under a quota enforced over short
        windows); each call is charged its estimated tokens before it is sent and the difference
        once ``usage_metadata`` tells the real count (aiolimiter has no refunds: an overestimate stays charged).
    :param request_timeout_s: seconds one call may take before it is abandoned and retried (None:
        120, or ``FLEX_REQUEST_TIMEOUT_S`` on Flex; ``timeout_s`` gives the one that applies).
    :param max_attempts: calls per row at most, the first included.
    :param initial_backoff_s: first backoff when the server gives no delay; doubles per attempt.
        Short by default: a retry takes a call slot and passes the limiters like any call, so it
        adds no load; the doubling spaces out calls only when errors go on (about 0.1 x 2**11 s,
        three minutes at most, of waiting before the last of 12 attempts).
    :param max_backoff_s: longest backoff.
    :param progress_interval_s: seconds between progress log lines.
    :param service_tier: the tier every call asks for, one of ``SERVICE_TIERS``: ``standard``,
        ``flex`` (the batch price, answered within minutes, sheddable) or ``priority`` (dearer,
        answered first, never shed).
    :raises InputError: (a ValueError) for a limit that is not positive, or a tier that is none.
    """

    concurrency: int = 32
    rpm: int | None = None
    tpm: int | None = None
    request_timeout_s: float | None = None
    max_attempts: int = 12
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 60.0
    progress_interval_s: float = 10.0
    service_tier: str = "standard"

    def __post_init__(self) -> None:
        if self.service_tier not in SERVICE_TIERS:
            raise InputError(f"service_tier must be one of {SERVICE_TIERS}, got {self.service_tier!r}")
        for name in ("concurrency", "rpm", "tpm", "request_timeout_s", "max_attempts", "initial_backoff_s",
                     "max_backoff_s", "progress_interval_s"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not 0 < value < math.inf):
                raise InputError(f"{name} must be a positive finite number, got {value!r}")
        for name in ("concurrency", "max_attempts"):
            if not isinstance(getattr(self, name), int):
                raise InputError(f"{name} must be a whole number, got {getattr(self, name)!r}")
        if self.concurrency > MAX_CONCURRENCY:
            raise InputError(f"concurrency must be at most {MAX_CONCURRENCY} calls in flight (one process runs "
                             f"out of sockets and CPU well before), got {self.concurrency}; map the task instead")

    @property
    def timeout_s(self) -> float:
        """Seconds one call may take: ``request_timeout_s``, else the tier's default (Flex's calls
        stay open for minutes)."""
        if self.request_timeout_s is not None:
            return self.request_timeout_s
        return FLEX_REQUEST_TIMEOUT_S if self.service_tier == "flex" else STANDARD_REQUEST_TIMEOUT_S


MAX_POLL_INTERVAL = 86_400.0


@dataclass(frozen=True)
class WaitPolicy:
    """How to wait. Seconds; ``deadline`` is Unix time (None: no deadline). A ``wave``'s wait, while
    shards wait for room in the project's batch quota (``core.submit``), ends as soon as any job
    waited on ends, or at ``wake_at`` (Unix time; None: only then), for the next wave.

    :raises InputError: (a ValueError) unless ``0 < poll_interval <= max_poll_interval <= 86400`` (a day).
    """

    poll_interval: float = 30.0
    max_poll_interval: float = 300.0
    max_poll_errors: int = 10
    deadline: float | None = None
    wave: bool = False
    wake_at: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.poll_interval <= self.max_poll_interval <= MAX_POLL_INTERVAL:
            raise InputError(f"poll_interval and max_poll_interval must be seconds with 0 < poll_interval <= "
                             f"max_poll_interval <= {MAX_POLL_INTERVAL} (a day), got {self.poll_interval} and "
                             f"{self.max_poll_interval}")


@dataclass(frozen=True)
class Embedding:
    """What makes a plan an embeddings one: ``task_type`` (e.g. ``RETRIEVAL_DOCUMENT``; the model's
    default when None) and ``output_dimensionality`` (floats per vector; the model's default when None)."""

    task_type: str | None = None
    output_dimensionality: int | None = None


def request_spec(prompt_template: str, *, key_field: str | None = None, system_instruction: str | None = None,
                 generation_config: Mapping[str, Any] | None = None, output_schema: OutputSchema | None = None,
                 media_fields: tuple[str, ...] = (), embedding: Embedding | None = None,
                 preview: bool = False) -> RequestSpec:
    """The request spec of a plan; ``output_schema`` goes into the generation config. A ``preview``
    spec is one built when the DAG is parsed, to be checked only (``RequestSpec``).

    :raises InputError: for a bad template or generation config, a schema given twice, or media or
        generation settings on an embeddings plan.
    """
    config = dict(generation_config or {})
    if output_schema is not None:
        if SCHEMA_KEYS & set(config):
            raise InputError("give the schema once, as response_schema=, not also in generation_config")
        config.update(output_schema.generation_config())
    if embedding is None:
        return RequestSpec(prompt_template=prompt_template, key_field=key_field, system_instruction=system_instruction,
                           generation_config=config or None, media_fields=media_fields, preview=preview)
    if media_fields:
        raise InputError("the embeddings operators embed text; media_fields are for the text-generating ones")
    return EmbedRequestSpec(prompt_template=prompt_template, key_field=key_field,
                            system_instruction=system_instruction, generation_config=config or None, preview=preview,
                            task_type=embedding.task_type, output_dimensionality=embedding.output_dimensionality)


@dataclass(frozen=True)
class BatchPlan:
    """One run's plan.

    :param model: the Gemini model, e.g. ``gemini-2.5-flash``.
    :param spec: how each record becomes a request (``EmbedRequestSpec`` for embeddings).
    :param output_path: where the results JSONL goes (a local path or a URL, see ``storage``).
    :param input_path: the input ``.jsonl`` / ``.csv`` file; or ``records``, never both.
    :param records: the input as dicts (small sets).
    :param limits: how the input is split over batch jobs.
    :param priority: the batch jobs' ``priority`` (an int64: higher runs first, negatives allowed;
        None: the API's default, 0), Gemini Developer API only (https://ai.google.dev/api/batch-mode).
    :param media: how media are sent.
    :param budget: what the run may cost.
    :param output_schema: the JSON each answer must be (None: free text).
    :param reuse: which earlier answers the run reuses.
    :param on_bad_row: ``fail``: a row whose request can't be built fails the run before anything
        is sent; ``land``: it lands ``failed`` (``path`` ``refused``, the reason in ``error``) and
        the rest are sent. A row with no usable key, or another row's, always fails the run.
    :raises InputError: for both or neither of ``input_path`` and ``records``, or another ``on_bad_row``.
    """

    model: str
    spec: RequestSpec
    output_path: str
    input_path: str | None = None
    records: tuple[Mapping[str, Any], ...] | None = None
    limits: ShardLimits = field(default_factory=ShardLimits)
    priority: int | None = None
    media: MediaSettings = field(default_factory=MediaSettings)
    budget: Budget = field(default_factory=Budget)
    output_schema: OutputSchema | None = None
    reuse: ReuseSettings = field(default_factory=ReuseSettings)
    on_bad_row: str = "fail"

    def __post_init__(self) -> None:
        if (self.records is None) == (self.input_path is None):
            raise InputError("give exactly one of records= or input_path=")
        if self.on_bad_row not in ON_BAD_ROW:
            raise InputError(f"on_bad_row must be one of {ON_BAD_ROW}, got {self.on_bad_row!r}")
        priority = self.priority
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                     or not -2**63 <= priority < 2**63):
            raise InputError(f"priority must be a whole number (an int64; higher runs first, default 0), got "
                             f"{priority!r}")

    def check_model_id(self) -> None:
        """Refuse a model that is no model id (checked once rendered: it is often templated).

        :raises InputError: for a blank id, or one with a '..' step, spaces or a query, which would
            call some other endpoint once it is made a URL path.
        """
        model = self.model
        if not isinstance(model, str) or not MODEL_ID.fullmatch(model) or ".." in model.split("/"):
            raise InputError(f"model must be a model id such as 'gemini-2.5-flash' (or a resource name such as "
                             f"'models/gemini-2.5-flash'), got {model!r}")

    @property
    def embeddings(self) -> bool:
        return isinstance(self.spec, EmbedRequestSpec)

    @property
    def method(self) -> str:
        """The model method the plan's requests call: ``embedContent`` or ``generateContent``."""
        return "embedContent" if self.embeddings else "generateContent"

    @property
    def salt(self) -> str:
        """What, besides the requests, makes a submission different: the model and the per-job limits."""
        return f"{self.model}\n{self.limits}"

    def price(self) -> ModelPrice | None:
        """The price the actual cost is counted at; None for embeddings, which report no usage."""
        return None if self.embeddings else self.budget.price(self.model)


@dataclass(frozen=True)
class RunInput:
    """One try's input, as read: the records (``source``: the plan's own, or the local path of its
    input file, downloaded once when remote) and the spec its requests are built with (the plan's,
    with the try's media once scanned, ``core.media``). Read as often as a stage needs; never held whole.
    ``built``: a file of ``[key, request]`` lines, the requests of the rows still to send once earlier
    answers settled the others (``core.answers``), built and checked already; ``requests`` reads them
    from it, ``records`` still reads every record.
    """

    source: tuple[Mapping[str, Any], ...] | str
    spec: RequestSpec
    built: Path | None = None
    refuse_bad_rows: bool = False

    def records(self) -> Iterator[dict[str, Any]]:
        return iter_records(self.source)  # type: ignore[arg-type]

    def requests(self, refused: Callable[[str, InputError], None] | None = None) -> Generator[
            tuple[str, dict[str, Any]], None, None]:
        """``(key, request)`` per record (or per line of ``built``), checked as it is built
        (InputError). With ``refuse_bad_rows``, a bad row is handed to ``refused`` and left out
        (``build_requests``); with no ``refused``, left out alone: the run landed it when it was
        first refused (``core.answers.split_reused``)."""
        if self.built is not None:
            return _read_built(self.built)
        if self.refuse_bad_rows:
            return build_requests(self.records(), self.spec, refused or _landed_already)
        return build_requests(self.records(), self.spec)


def _landed_already(key: str, error: InputError) -> None:
    """A bad row met again after it was refused: its ``failed`` row is already among the run's rows."""


def _read_built(path: Path) -> Generator[tuple[str, dict[str, Any]], None, None]:
    with path.open("rb") as lines:
        for line in lines:
            key, request = orjson.loads(line)
            yield key, request
