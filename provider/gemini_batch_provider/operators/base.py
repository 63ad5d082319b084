"""What every operator of this provider shares: the parameters that make a run's plan.

Both paths (batch and online) take the same input parameters and write the same results file and
summary, so a DAG can switch between them without changing anything downstream. The operators
stand side by side, each a direct subclass of this base, which holds only these parameters and
what Airflow asks of every operator (rendering, lineage, outlets).

Nothing here imports the SDK: a DAG file that imports the operators parses without it (the hook,
the backends and the engines are imported when a task runs).

Lineage: give the results an Airflow Asset with ``outlets=[Asset(...)]`` (and the input one with
``inlets=``). On success, each Asset outlet's event carries the summary as its ``extra``, so a DAG
scheduled on the asset finds the rows at ``event.extra["output_path"]`` for each event in
``triggering_asset_events[asset]``. OpenLineage events name the files and the jobs (``lineage``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import jinja2
from airflow.providers.common.compat.sdk import Asset, BaseOperator, Context, conf

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.limits import FILE_LIMIT_BYTES, INLINE_MAX_BYTES, ShardLimits
from gemini_batch_provider.core.plan import BatchPlan, Budget, Embedding, MediaSettings, ReuseSettings, request_spec
from gemini_batch_provider.core.schema import OutputSchema, ResponseSchema
from gemini_batch_provider.hooks import DEFAULT_CONN_ID
from gemini_batch_provider.operators import params
from gemini_batch_provider.operators.templating import preview, render_error

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from gemini_batch_provider.core.backend import BatchBackend
    from gemini_batch_provider.hooks.gemini import GeminiHook
    from gemini_batch_provider.storage import Storage


class GeminiRequestsOperator(BaseOperator):
    """Base of the operators that run one Gemini request per record.

    :param prompt_template: the prompt of each row (templated): Airflow's Jinja renders it when the
        try starts, then each ``{field}`` takes the row's value (Python's ``str.format``). A literal
        brace is doubled, ``{{``, inside ``{% raw %}...{% endraw %}`` (see ``operators.templating``).
    :param output_path: where the results JSONL goes (templated): an absolute local path, a ``gs://`` URI or
        any URL Airflow's ObjectStoragePath reads (``storage``); written whole, a row per record (``core.results``).
    :param records: the input as a list of dicts, or an upstream task's output that is one (an ``XComArg``,
        resolved when the try starts; templated, but its strings are never rendered). Small sets: XComs live
        in the metadata database, so larger ones belong in a file, ``input_path``.
    :param input_path: the input as a ``.jsonl``/``.csv`` file (templated), where ``output_path`` may be.
    :param model: Gemini model, e.g. ``gemini-2.5-flash`` (templated).
    :param storage_conn_id: the connection for ObjectStoragePath URLs (an ``aws`` one for ``s3://``); None: default.
    :param key_field: record field holding each row's unique key; the 0-based row index when None.
    :param system_instruction: text sent as ``system_instruction`` with every request (templated).
    :param generation_config: fields of ``google.genai.types.GenerationConfig``.
    :param response_schema: the JSON each answer must be: a pydantic model class or a JSON schema dict, sent
        as Gemini's structured output (``response_json_schema``); each answer is validated into the row's
        ``parsed`` field, or the row gets status ``invalid_output`` with the reason.
    :param gemini_conn_id: connection of type ``gemini``.
    :param max_cost_usd: a budget in US dollars: the task fails before anything is sent or billed when the
        estimated cost is higher (or the model has no known price). None: no budget.
    :param prices: per-model prices (US dollars per million tokens) over the shipped table and ``[gemini_batch]
        prices_file``: ``{"gemini-2.5-flash": {"input": 0.3, "output": 2.5, "cached": 0.075}}`` (``core.cost``).
    :param count_tokens_sample: rows whose prompts the API counts (free) to scale the estimate (``core.estimate``).
    :param media_fields: record fields holding media (images, PDFs...): a local path, an ``http(s)://`` URL, a
        ``gs://`` URI or bytes, or a list of them, placed by the template (``"Describe {photo}"``); checked before
        any upload; those over ``inline_media_max_bytes`` uploaded once, removed after landing (``core.media``).
    :param inline_media_max_bytes: largest medium sent inline in each request (default 1 MB).
    :param max_media_bytes: largest medium accepted (default 2 GB, the Files API's limit).
    :param keep_media_files: keep the uploaded media after the results have landed.
    :param reuse: land each row whose exact request was answered before (in the results at ``output_path``
        or in ``answer_store``) from that answer, ``path`` ``reused``, nothing sent; send only the rest.
        False: send every row, a fresh sample. Requests with media are always sent (``core.answers``).
    :param answer_store: a folder of answers shared by tasks and DAGs, wherever ``output_path`` may be (templated),
        read before sending, added to before the results are published, safe for runs writing it at once.
    :param reuse_max_age: answers older than this (a ``timedelta``, or seconds) are sent again.
    :param on_bad_row: ``fail`` (default): a row whose request can't be built (a field missing, null or of the
        wrong type, an empty prompt) fails the task before anything is sent; ``land``: it lands ``failed``, ``path``
        ``refused``, the reason in ``error``, and the rest are sent; the log and the summary count them. A row
        without a usable key, or with another row's, always fails the task.
    :raises InputError: (a ValueError) when the DAG is parsed, for a parameter the plan refuses,
        naming it and the fix (``core.plan``). Lineage: see the module.
    """

    template_fields: Sequence[str] = ("input_path", "output_path", "model", "prompt_template", "system_instruction",
                                      "answer_store", "records")
    ui_color = "#e8f0fe"
    lands_results = True  # writes the results file at output_path, for lineage (not the submit-only operator)
    limits, priority = ShardLimits(), None  # how the input is split over jobs, and their priority: batch operators'
    embedding: Embedding | None = None  # what makes the plan an embeddings one (the embeddings operators')

    def __init__(self, *, prompt_template: str, output_path: str, records: Iterable[dict[str, Any]] | Any = None,
                 input_path: str | None = None, model: str = "gemini-2.5-flash", key_field: str | None = None,
                 system_instruction: str | None = None, generation_config: dict[str, Any] | None = None,
                 response_schema: ResponseSchema | None = None, gemini_conn_id: str = DEFAULT_CONN_ID,
                 max_cost_usd: float | None = None, prices: dict[str, dict[str, float]] | None = None,
                 count_tokens_sample: int = 5, media_fields: Sequence[str] | None = None,
                 inline_media_max_bytes: int = INLINE_MAX_BYTES, max_media_bytes: int = FILE_LIMIT_BYTES,
                 keep_media_files: bool = False, storage_conn_id: str | None = None, reuse: bool = True,
                 answer_store: str | None = None, reuse_max_age: float | timedelta | None = None,
                 on_bad_row: str = "fail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt_template = prompt_template
        self.output_path = output_path
        self.records = params.records_param(records)
        self.input_path = input_path
        self.model = model
        self.key_field = key_field
        self.system_instruction = system_instruction
        self.generation_config = generation_config
        self.gemini_conn_id, self.storage_conn_id = gemini_conn_id, storage_conn_id
        self.answer_store, self.on_bad_row = answer_store, on_bad_row
        self.landed: dict[str, Any] | None = None  # the summary, once the results landed
        self.submitted_jobs: list[str] = []  # the batch jobs this try created or found, once submitted
        try:
            self.output_schema = OutputSchema(response_schema) if response_schema is not None else None
            self.media = MediaSettings(tuple(media_fields or ()), inline_media_max_bytes, max_media_bytes,
                                       keep_media_files)
            prices_file = conf.get("gemini_batch", "prices_file", fallback=None) or None
            self.budget = Budget(max_cost_usd, prices, prices_file, count_tokens_sample)
            age = reuse_max_age.total_seconds() if isinstance(reuse_max_age, timedelta) else reuse_max_age
            self.reuse_settings = ReuseSettings(bool(reuse), max_age_s=age)  # answer_store: once rendered
        except InputError as exc:
            raise InputError(f"{self.task_id}: {exc}") from None

    def check_plan(self) -> None:
        """Refuse a bad plan at parse time (each constructor ends with it). :raises InputError: naming the task."""
        try:
            self.plan(preview(self.prompt_template, self.get_template_env()), checked_only=True)
        except InputError as exc:
            raise InputError(f"{self.task_id}: {exc}") from None

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Airflow's rendering; a Jinja error is a refusal naming the way out (no retry renders it better)."""
        try:
            super().render_template_fields(context, jinja_env)
        except jinja2.TemplateError as exc:
            raise InputError(f"{self.task_id}: {render_error(exc)}") from None

    def plan(self, prompt_template: str | None = None, checked_only: bool = False) -> BatchPlan:
        """The run's plan, from the parameters as they are now (rendered, once a try has started); ``prompt_template``
        and ``checked_only``: the preview checked at parse time (``core.config``). :raises InputError: as the plan."""
        spec = request_spec(prompt_template or self.prompt_template, key_field=self.key_field,
                            system_instruction=self.system_instruction, generation_config=self.generation_config,
                            output_schema=self.output_schema, media_fields=self.media.fields,
                            embedding=self.embedding, preview=checked_only)
        records = params.records_of(self.task_id, self.records)
        return BatchPlan(model=self.model, spec=spec, output_path=self.output_path, input_path=self.input_path,
                         records=records, limits=self.limits, priority=self.priority, media=self.media,
                         budget=self.budget, output_schema=self.output_schema, on_bad_row=self.on_bad_row,
                         reuse=dataclasses.replace(
                             self.reuse_settings, answer_store=None if checked_only else self.answer_store or None))

    @cached_property
    def hook(self) -> GeminiHook:
        """The task's one hook (and so one client) for the Gemini connection; the SDK loads here."""
        from gemini_batch_provider.hooks.gemini import GeminiHook

        return GeminiHook(self.gemini_conn_id)

    def backend(self, context: Context, staging_uri: str | None = None) -> BatchBackend:
        """This try's API (``core.backend``): uploads named after the task instance, staged under ``staging_uri``."""
        from gemini_batch_provider.hooks.connection import backend_for
        from gemini_batch_provider.operators.task import run_identity

        return backend_for(self.hook, self.hook.vertex, run_identity(context), staging_uri)

    def storage(self) -> Storage:
        """Where this task's files live: ``storage_conn_id``, and the hook for ``gs://`` (``storage``)."""
        from gemini_batch_provider.storage import Storage

        return Storage(self.storage_conn_id, self.hook)

    def landed_summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Keep the summary for the outlets' events (``post_execute``); it, for XCom."""
        self.landed = summary
        return summary

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """OpenLineage, as the task starts: the input file and the results file (``lineage``)."""
        from gemini_batch_provider.lineage import task_lineage

        return task_lineage(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage once the task has ended (failed too): datasets, jobs and landed counts (``lineage``)."""
        from gemini_batch_provider.lineage import task_lineage

        jobs = (self.landed or {}).get("batch_jobs") or self.submitted_jobs
        return task_lineage(self, jobs=jobs, summary=self.landed, source=self.hook.backend.source)

    def post_execute(self, context: Context, result: Any = None) -> None:
        """Annotate each Asset in ``outlets`` with the summary of the results that landed (if they did)."""
        for outlet in self.outlets if self.landed is not None else ():
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra.update(self.landed)

