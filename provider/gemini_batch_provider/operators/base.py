"""What every operator of this provider shares: records in, requests built and checked, results out.

Both paths (batch and online) take the same input parameters and write the same results file and
summary, so a DAG can switch between them without changing anything downstream.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, Asset, BaseOperator, Context

from gemini_batch_provider.core.cost import Estimate, estimate, price_of
from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.ledger import Ledger, ledger_location
from gemini_batch_provider.core.media import FILE_LIMIT_BYTES, INLINE_MAX_BYTES, MediaStager
from gemini_batch_provider.core.online import OnlineEngine, OnlineSettings, OnlineStats
from gemini_batch_provider.core.records import iter_records
from gemini_batch_provider.core.requests import RequestSpec, build_requests, iter_keys
from gemini_batch_provider.core.results import ResultsWriter
from gemini_batch_provider.core.schema import OutputSchema, ResponseSchema
from gemini_batch_provider.core.shards import DEFAULT_MAX_BYTES, ShardLimits
from gemini_batch_provider.core.summary import summarize
from gemini_batch_provider.core.vocabulary import RowPath
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.operators.media import delete_media, files_api_uploader, gcs_uploader
from gemini_batch_provider.storage import Location, results_writer


def run_identity(context: Context) -> str:
    """The task instance's run-stable identity: the same for every try, never the try number."""
    ti = context["ti"]
    return f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}"


class GeminiRequestsOperator(BaseOperator):
    """Base of the operators that run one Gemini request per record.

    :param prompt_template: ``str.format`` template; each ``{field}`` names a record field.
    :param output_path: where the results JSONL goes (templated): an absolute local path, a ``gs://``
        URI (Cloud Storage through the connection's Vertex AI credentials, else the machine's default
        ones), or any URL Airflow's ObjectStoragePath reads, e.g. ``s3://`` (see ``storage``).
        Remote results are uploaded whole once complete. Written atomically, one row per record:
        ``{"key", "status", "path", "text", "parsed", "usage", "error"}`` (see ``core.results``).
    :param records: the input as a list of dicts (small sets; larger ones belong in ``input_path``).
    :param input_path: the input as a ``.jsonl`` or ``.csv`` file (templated), at a location of
        the kinds ``output_path`` takes; a remote one is downloaded once per try.
    :param storage_conn_id: the connection ObjectStoragePath URLs are read and written with (e.g.
        an ``aws`` connection for ``s3://``); None: the scheme's default connection.
    :param model: Gemini model, e.g. ``gemini-2.5-flash`` (templated).
    :param key_field: record field holding each row's unique key; the 0-based row index when None.
    :param system_instruction: text sent as ``system_instruction`` with every request (templated).
    :param generation_config: fields of ``google.genai.types.GenerationConfig``.
    :param response_schema: the JSON each answer must be: a pydantic model class or a JSON schema
        dict. Sent as Gemini's structured output (``response_json_schema``); each answer is
        validated into the row's ``parsed`` field, or the row gets status ``invalid_output`` with
        the reason. Raises ``InputError`` (a ValueError) when the DAG is parsed for anything else.
    :param gemini_conn_id: connection of type ``gemini``.
    :param max_cost_usd: a budget in US dollars: the task fails before anything is sent or billed
        when the estimated cost is higher (or the model has no known price). None: no budget.
    :param prices: per-model prices overriding ``core.cost.PRICES``, in US dollars per million
        tokens: ``{"gemini-2.5-flash": {"input": 0.3, "output": 2.5, "cached": 0.075}}``.
    :param media_fields: record fields holding media (images, PDFs, text files...): a local path,
        an ``http(s)://`` URL, a ``gs://`` URI or bytes, or a list of them; the template places
        each (``"Describe {photo}"``). See ``core.media``: bad media refuse the run before anything
        is uploaded; media up to ``inline_media_max_bytes`` go inline, larger ones are uploaded
        once per content (the Files API, or ``gcs_staging_uri`` on Vertex AI) and removed after
        the results land unless ``keep_media_files``.
    :param inline_media_max_bytes: largest medium sent inline in each request (default 1 MB).
    :param max_media_bytes: largest medium accepted (default 2 GB, the Files API's limit).
    :param keep_media_files: keep the uploaded media after the results have landed.

    Lineage: give the results an Airflow Asset with ``outlets=[Asset(...)]`` (and the input one
    with ``inlets=``). On success, each Asset outlet's event carries the summary as its ``extra``,
    so a DAG scheduled on the asset finds the rows at ``event.extra["output_path"]`` for each event
    in ``triggering_asset_events[asset]``.
    """

    template_fields: Sequence[str] = ("input_path", "output_path", "model", "prompt_template", "system_instruction")
    ui_color = "#e8f0fe"
    embeddings = False  # True for the embeddings operators (operators.embed)

    def __init__(
        self,
        *,
        prompt_template: str,
        output_path: str,
        records: Iterable[dict[str, Any]] | None = None,
        input_path: str | None = None,
        model: str = "gemini-2.5-flash",
        key_field: str | None = None,
        system_instruction: str | None = None,
        generation_config: dict[str, Any] | None = None,
        response_schema: ResponseSchema | None = None,
        gemini_conn_id: str = GeminiHook.default_conn_name,
        max_cost_usd: float | None = None,
        prices: dict[str, dict[str, float]] | None = None,
        media_fields: Sequence[str] | None = None,
        inline_media_max_bytes: int = INLINE_MAX_BYTES,
        max_media_bytes: int = FILE_LIMIT_BYTES,
        keep_media_files: bool = False,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.storage_conn_id = storage_conn_id
        if max_cost_usd is not None and max_cost_usd < 0:
            raise ValueError(f"{self.task_id}: max_cost_usd must not be negative, got {max_cost_usd}")
        self.max_cost_usd = max_cost_usd
        self.prices = prices
        self.estimated_cost_usd: float | None = None
        self.landed: dict[str, Any] | None = None  # the summary, once the results landed
        if (records is None) == (input_path is None):
            raise ValueError(f"{self.task_id}: give exactly one of records= or input_path=")
        self.prompt_template = prompt_template
        self.output_path = output_path
        # A list, not any iterable: the records are read more than once (checked, then sent).
        self.records = list(records) if records is not None else None
        self.input_path = input_path
        self.model = model
        self.key_field = key_field
        self.system_instruction = system_instruction
        self.output_schema = OutputSchema(response_schema) if response_schema is not None else None
        if self.output_schema is not None:
            given = {"response_schema", "responseSchema", "response_json_schema", "responseJsonSchema"}
            if given & set(generation_config or {}):
                raise ValueError(f"{self.task_id}: give the schema once, as response_schema=, not also in "
                                 "generation_config")
            generation_config = {**(generation_config or {}), **self.output_schema.generation_config()}
        self.generation_config = generation_config
        self.gemini_conn_id = gemini_conn_id
        self.media_fields = tuple(media_fields or ())
        if not 0 <= inline_media_max_bytes <= max_media_bytes <= FILE_LIMIT_BYTES:
            raise ValueError(f"{self.task_id}: media sizes must satisfy 0 <= inline_media_max_bytes <= "
                             f"max_media_bytes <= {FILE_LIMIT_BYTES}, got {inline_media_max_bytes} and "
                             f"{max_media_bytes}")
        self.inline_media_max_bytes = inline_media_max_bytes
        self.max_media_bytes = max_media_bytes
        self.keep_media_files = keep_media_files
        self._media: MediaStager | None = None  # the run's media, once scanned (see prepare_media)
        self._spec()  # a bad template or generation_config fails when the DAG is parsed (InputError)

    def _spec(self) -> RequestSpec:
        return RequestSpec(
            prompt_template=self.prompt_template,
            key_field=self.key_field,
            system_instruction=self.system_instruction,
            generation_config=self.generation_config,
            media_fields=self.media_fields,
            media=self._media,
        )

    @cached_property
    def hook(self) -> GeminiHook:
        """The task's one hook (and so one client) for the Gemini connection."""
        return GeminiHook(self.gemini_conn_id)

    def location(self, url: str) -> Location:
        return Location(url, lambda: self.hook, self.storage_conn_id)

    @cached_property
    def _input_file(self) -> str:
        """``input_path``, or its local copy when it is remote (downloaded once per try)."""
        source = self.location(str(self.input_path))
        if source.local is not None:
            return str(source.local)
        copy = Path(tempfile.mkdtemp(prefix="gemini-input-")) / source.url.rsplit("/", 1)[-1]
        source.download(copy)
        return str(copy)

    def _records(self) -> Iterator[dict[str, Any]]:
        return iter_records(self.records if self.records is not None else self._input_file)

    def requests(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(key, GenerateContentRequest)`` per record, checked as they are built (InputError)."""
        return build_requests(self._records(), self._spec())

    def keys(self) -> Iterator[str]:
        """Each record's key, in order, without building the requests."""
        return iter_keys(self._records(), self._spec())

    def preflight(self, hook: GeminiHook) -> None:
        """What is checked before anything is uploaded or billed, beyond the rows: that the results
        can be written where ``output_path`` says, and that the model exists and does the task."""
        self.check_output_path()
        hook.check_model(self.model, "embedContent" if self.embeddings else "generateContent")

    def check_output_path(self) -> None:
        """Raise AirflowFailException, before anything is sent, for an ``output_path`` the results
        can't be written to (see ``storage.Location.check_writable``)."""
        try:
            self.location(self.output_path).check_writable("output_path")
        except InputError as exc:
            raise self.bad_input(exc) from None

    def bad_input(self, exc: InputError) -> AirflowFailException:
        """The task's error for bad input: no retry can help, and nothing was sent."""
        return AirflowFailException(f"{self.task_id}: bad input, nothing was uploaded or billed: {exc}")

    def checked_estimate(self) -> Estimate:
        """Build every request once, so that bad input fails before the first call; their estimate.
        Media are scanned and fetched first (``prepare_media``), not uploaded."""
        self.prepare_media()
        try:
            return estimate(self.requests())
        except InputError as exc:
            raise self.bad_input(exc) from None

    def prepare_media(self) -> None:
        """Scan the rows' media and download those behind URLs, once per try; bad media fail the
        task (AirflowFailException, naming row and field) before anything is uploaded."""
        if not self.media_fields or self._media is not None:
            return
        hook = self.hook
        stager = MediaStager(self.media_fields, Path(tempfile.mkdtemp(prefix="gemini-media-")),
                             inline_max_bytes=self.inline_media_max_bytes, max_bytes=self.max_media_bytes,
                             vertex=hook.vertex, read_gcs=hook.download_gcs)
        try:
            stager.scan(self._records())
            asyncio.run(stager.fetch())
        except InputError as exc:
            shutil.rmtree(stager.folder, ignore_errors=True)
            raise self.bad_input(exc) from None
        self._media = stager
        self.log.info("Media: %d distinct, %d over %d bytes (uploaded, once each), the rest inline.",
                      len(stager.media), sum(m.size > self.inline_media_max_bytes for m in stager.media.values()),
                      self.inline_media_max_bytes)

    def stage_media(self, hook: GeminiHook, identity: str, staging_uri: str | None = None) -> list[str]:
        """Upload the media too large to go inline (once per content); the URIs this try uploaded."""
        self.prepare_media()
        if self._media is None or self._media.staged:
            return []
        if hook.vertex:
            if not staging_uri and any(m.uri is None and m.size > self.inline_media_max_bytes
                                       for m in self._media.media.values()):
                raise AirflowFailException(f"{self.task_id}: media over {self.inline_media_max_bytes} bytes on Vertex "
                                           "AI are staged in Cloud Storage: give gs:// URIs, or set gcs_staging_uri "
                                           "on a batch operator")
            uploader = gcs_uploader(hook, staging_uri or "")
        else:
            uploader = files_api_uploader(hook, identity)
        asyncio.run(self._media.stage(uploader))
        return self._media.uploaded

    def drop_media(self, hook: GeminiHook, uris: list[str]) -> None:
        """Remove the local downloads, and the uploaded media unless ``keep_media_files``."""
        if self._media is not None:
            shutil.rmtree(self._media.folder, ignore_errors=True)
        if uris and not self.keep_media_files:
            delete_media(hook, uris)
            self.log.info("Deleted %d uploaded media files.", len(uris))

    def check_budget(self, found: Estimate, batch: bool) -> None:
        """Log the estimated cost; fail before anything is sent when it passes ``max_cost_usd``."""
        price = price_of(self.model, self.prices)
        self.estimated_cost_usd = found.usd(price, batch)
        cost = "no known price" if self.estimated_cost_usd is None else f"${self.estimated_cost_usd:.4f}"
        self.log.info("Estimated cost: %s for %d requests (~%d prompt and ~%d output tokens, %s price of %s).",
                      cost, found.requests, found.prompt_tokens, found.output_tokens,
                      "batch" if batch else "interactive", self.model)
        if self.max_cost_usd is None:
            return
        if self.estimated_cost_usd is None:
            raise AirflowFailException(f"{self.task_id}: max_cost_usd is set but {self.model} has no known price; "
                                       "give its price with prices={...}; nothing was sent or billed")
        if self.estimated_cost_usd > self.max_cost_usd:
            raise AirflowFailException(
                f"{self.task_id}: the estimated cost ${self.estimated_cost_usd:.4f} ({found.requests} requests) is "
                f"over max_cost_usd ${self.max_cost_usd:.4f}; nothing was sent or billed. Raise the budget, or send "
                "fewer rows or shorter prompts"
            )

    def land_online(self, rows: int, settings: OnlineSettings, identity: str) -> dict[str, Any]:
        """Run every row online into the results file; returns the summary. Raises AirflowException,
        after landing, when rows ran out of attempts on transient errors (the API never answered them).
        ``identity`` names the task instance (its uploaded media are named after it)."""
        hook = self.hook
        self.preflight(hook)
        uploaded = self.stage_media(hook, identity)
        writer = self.results_writer()
        try:
            stats = self.run_online(writer, self.requests(), rows, settings)
        except BaseException:
            writer.abort()
            raise
        finally:
            self.drop_media(hook, uploaded)
        writer.close()
        summary = self.summary(writer, rows, RowPath.ONLINE, [])
        if stats.gave_up:
            raise AirflowException(
                f"{self.task_id}: the API did not answer {stats.gave_up} of {rows} rows in {settings.max_attempts} "
                f"attempts each (transient errors: 429, 5xx, timeouts or dropped connections); they landed as "
                f"'failed' with their last error in {summary['output_path']}. Lower concurrency/rpm/tpm to the "
                "model's quota or raise max_attempts; a retry of the task runs every row again")
        return summary

    def run_online(self, writer: ResultsWriter, requests: Iterable[tuple[str, dict[str, Any]]], total: int,
                   settings: OnlineSettings) -> OnlineStats:
        """Run ``requests`` through the online engine, each row written as soon as it is done."""

        async def run() -> OnlineStats:
            engine = OnlineEngine(self.hook.client, self.model, settings)
            stats = await engine.run(requests, writer.write, total=total)
            self.log.info("%d calls for %d rows online; %d responses 429, %d other retried errors",
                          stats.calls, total, stats.responses_429, stats.retried_errors)
            return stats

        return asyncio.run(run())

    def results_writer(self) -> ResultsWriter:
        check = self.output_schema.check if self.output_schema is not None else None
        return results_writer(self.location(self.output_path), check)

    def summary(self, writer: ResultsWriter, rows: int, path: str, batch_jobs: list[str]) -> dict[str, Any]:
        """The XCom summary shared by both paths (``core.summary``); never the rows themselves."""
        # The API reports no token usage for embeddings: their estimate is all there is.
        price = None if self.embeddings else price_of(self.model, self.prices)
        summary = summarize(writer, rows, path, batch_jobs, self.model, self.estimated_cost_usd, price)
        self.log.info("Results landed: %s", summary)
        self.landed = summary
        return summary

    def post_execute(self, context: Context, result: Any = None) -> None:
        """Annotate each Asset in ``outlets`` with the summary of the results that landed."""
        if self.landed is None:
            return
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra.update(self.landed)


class GeminiBatchRequestsOperator(GeminiRequestsOperator):
    """Base of the batch operators: how the input is split over jobs.

    Takes the parameters of :class:`GeminiRequestsOperator` and:

    :param max_requests_per_job: requests per batch job at most (None: no limit).
    :param max_bytes_per_job: bytes of input JSONL per job at most (default 1 GB; the Files API
        takes 2 GB a file).
    :param max_tokens_per_job: estimated tokens per job at most (None: no limit); keep it under
        your tier's batch enqueued-token limit for the model.
    """

    def __init__(
        self,
        *,
        max_requests_per_job: int | None = None,
        max_bytes_per_job: int = DEFAULT_MAX_BYTES,
        max_tokens_per_job: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.shard_limits = ShardLimits(max_requests_per_job, max_bytes_per_job, max_tokens_per_job)
        except ValueError as exc:
            raise ValueError(f"{self.task_id}: {exc} (the per-job limits)") from None

    def load_ledger(self) -> Ledger | None:
        """The ledger beside ``output_path``, None when there is none; a ``LedgerError`` when it
        can't be read."""
        where = self.location(ledger_location(self.output_path))
        return Ledger.from_json(where.read_text(), where.url)

    def save_ledger(self, ledger: Ledger) -> None:
        self.location(ledger_location(self.output_path)).write_text(ledger.to_json())
