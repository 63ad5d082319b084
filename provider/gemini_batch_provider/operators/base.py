"""What every operator of this provider shares: the parameters that make a run's plan.

Both paths (batch and online) take the same input parameters and write the same results file and
summary, so a DAG can switch between them without changing anything downstream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import jinja2
from airflow.providers.common.compat.sdk import Asset, BaseOperator, Context, conf

from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.media import FILE_LIMIT_BYTES, INLINE_MAX_BYTES
from gemini_batch_provider.core.plan import BatchPlan, Budget, Embedding, MediaSettings, request_spec
from gemini_batch_provider.core.schema import OutputSchema, ResponseSchema
from gemini_batch_provider.core.shards import ShardLimits
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.operators.run import TaskRun, run_identity
from gemini_batch_provider.operators.templating import preview, render_error

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage


class GeminiRequestsOperator(BaseOperator):
    """Base of the operators that run one Gemini request per record.

    :param prompt_template: the prompt of each row (templated): Airflow's Jinja renders it when the
        try starts, then each ``{field}`` takes the row's value (Python's ``str.format``). A literal
        brace is doubled, ``{{``, inside ``{% raw %}...{% endraw %}`` (see ``operators.templating``).
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
        the reason.
    :param gemini_conn_id: connection of type ``gemini``.
    :param max_cost_usd: a budget in US dollars: the task fails before anything is sent or billed
        when the estimated cost is higher (or the model has no known price). None: no budget.
    :param prices: per-model prices overriding the shipped table (``data/prices.toml``) and the
        deployment's (the Airflow option ``[gemini_batch] prices_file``, a TOML file of the same
        shape), in US dollars per million tokens:
        ``{"gemini-2.5-flash": {"input": 0.3, "output": 2.5, "cached": 0.075}}``, optionally
        ``input_audio``, ``output_image`` and ``long_context`` (see ``core.cost.ModelPrice``).
    :param count_tokens_sample: rows whose prompts the API counts (``countTokens``, one call each,
        not billed) before the cost estimate, which then scales its rule of thumb (4 characters a
        token) by what the API made of them; 0: no calls. Rows with media to upload are not counted.
    :param media_fields: record fields holding media (images, PDFs, text files...): a local path,
        an ``http(s)://`` URL, a ``gs://`` URI or bytes, or a list of them; the template places
        each (``"Describe {photo}"``). See ``core.media``: bad media refuse the run before anything
        is uploaded; media up to ``inline_media_max_bytes`` go inline, larger ones are uploaded
        once per content (the Files API, or ``gcs_staging_uri`` on Vertex AI) and removed after
        the results land unless ``keep_media_files``.
    :param inline_media_max_bytes: largest medium sent inline in each request (default 1 MB).
    :param max_media_bytes: largest medium accepted (default 2 GB, the Files API's limit).
    :param keep_media_files: keep the uploaded media after the results have landed.
    :param limits: how the input is split over batch jobs (the batch operators take it as
        ``max_requests_per_job``, ``max_bytes_per_job`` and ``max_tokens_per_job``).
    :param embedding: make the plan an embeddings one (the embeddings operators set it).
    :raises InputError: (a ValueError) when the DAG is parsed, for a parameter the plan refuses,
        naming it and the fix (``core.plan``).

    Lineage: give the results an Airflow Asset with ``outlets=[Asset(...)]`` (and the input one
    with ``inlets=``). On success, each Asset outlet's event carries the summary as its ``extra``,
    so a DAG scheduled on the asset finds the rows at ``event.extra["output_path"]`` for each event
    in ``triggering_asset_events[asset]``.
    """

    template_fields: Sequence[str] = ("input_path", "output_path", "model", "prompt_template", "system_instruction")
    ui_color = "#e8f0fe"
    lands_results = True  # writes the results file at output_path, for lineage (not the submit-only operator)

    def __init__(self, *, prompt_template: str, output_path: str, records: Iterable[dict[str, Any]] | None = None,
                 input_path: str | None = None, model: str = "gemini-2.5-flash", key_field: str | None = None,
                 system_instruction: str | None = None, generation_config: dict[str, Any] | None = None,
                 response_schema: ResponseSchema | None = None, gemini_conn_id: str = GeminiHook.default_conn_name,
                 max_cost_usd: float | None = None, prices: dict[str, dict[str, float]] | None = None,
                 count_tokens_sample: int = 5, media_fields: Sequence[str] | None = None,
                 inline_media_max_bytes: int = INLINE_MAX_BYTES, max_media_bytes: int = FILE_LIMIT_BYTES,
                 keep_media_files: bool = False, storage_conn_id: str | None = None, limits: ShardLimits | None = None,
                 embedding: Embedding | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt_template = prompt_template
        self.output_path = output_path
        # A tuple, not any iterable: the records are read more than once (checked, then sent).
        self.records = tuple(records) if records is not None else None
        self.input_path = input_path
        self.model = model
        self.key_field = key_field
        self.system_instruction = system_instruction
        self.generation_config = generation_config
        self.gemini_conn_id = gemini_conn_id
        self.storage_conn_id = storage_conn_id
        self.embedding = embedding
        self.landed: dict[str, Any] | None = None  # the summary, once the results landed
        try:
            self.output_schema = OutputSchema(response_schema) if response_schema is not None else None
            self.media = MediaSettings(tuple(media_fields or ()), inline_media_max_bytes, max_media_bytes,
                                       keep_media_files)
            prices_file = conf.get("gemini_batch", "prices_file", fallback=None) or None
            self.budget = Budget(max_cost_usd, prices, prices_file, count_tokens_sample)
            self.limits = limits or ShardLimits()
            # A bad template or generation_config fails when the DAG is parsed; the prompt is checked
            # as the rows will see it, Airflow's Jinja aside (operators.templating).
            self.plan(preview(self.prompt_template, self.get_template_env()))
        except InputError as exc:
            raise InputError(f"{self.task_id}: {exc}") from None

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Airflow's rendering, with a Jinja error made a refusal that names the way out (no retry
        renders it better)."""
        try:
            super().render_template_fields(context, jinja_env)
        except jinja2.TemplateError as exc:
            raise InputError(f"{self.task_id}: {render_error(exc)}") from None

    def plan(self, prompt_template: str | None = None) -> BatchPlan:
        """The run's plan, from the parameters as they are now (rendered, once a try has started).

        :param prompt_template: the row template to check instead of ``self.prompt_template`` (its
            preview, when the DAG is parsed).
        :raises InputError: for a parameter the plan refuses.
        """
        spec = request_spec(prompt_template or self.prompt_template, key_field=self.key_field,
                            system_instruction=self.system_instruction, generation_config=self.generation_config,
                            output_schema=self.output_schema, media_fields=self.media.fields,
                            embedding=self.embedding)
        return BatchPlan(model=self.model, spec=spec, output_path=self.output_path, input_path=self.input_path,
                         records=self.records, limits=self.limits, media=self.media, budget=self.budget,
                         output_schema=self.output_schema)

    @cached_property
    def hook(self) -> GeminiHook:
        """The task's one hook (and so one client) for the Gemini connection."""
        return GeminiHook(self.gemini_conn_id)

    def task_run(self, context: Context) -> TaskRun:
        """This try's run of the plan (the rendered parameters')."""
        return TaskRun(self.plan(), self.hook, self.log, run_identity(context), self.storage_conn_id, context["ti"])

    def landed_summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Keep the summary for the outlets' events (``post_execute``); returns it, for XCom."""
        self.landed = summary
        return summary

    def lineage_jobs(self) -> list[str]:
        """The batch jobs this try ran, for lineage (those of the summary, once landed)."""
        return (self.landed or {}).get("batch_jobs", [])

    def _lineage(self, **ran: Any) -> OperatorLineage:
        """This task's datasets (``lineage.operator_lineage``) and what ``ran`` adds to them."""
        from gemini_batch_provider.lineage import operator_lineage

        return operator_lineage(model=self.model, input_path=self.input_path,
                                output_path=self.output_path if self.lands_results else None, **ran)

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """OpenLineage, as the task starts: the input file and the results file (``lineage``)."""
        return self._lineage()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage, once the task has ended (failed too: Airflow falls back to this): the
        datasets, the batch jobs and, once the results landed, their counts and cost (``lineage``)."""
        return self._lineage(jobs=self.lineage_jobs(), summary=self.landed,
                             source="vertexai" if self.hook.vertex else "gemini")

    def post_execute(self, context: Context, result: Any = None) -> None:
        """Annotate each Asset in ``outlets`` with the summary of the results that landed."""
        if self.landed is None:
            return
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra.update(self.landed)


def batch_limits(task_id: str, max_requests_per_job: int | None, max_bytes_per_job: int,
                 max_tokens_per_job: int | None) -> ShardLimits:
    """The batch operators' per-job limits; raises InputError (a ValueError) naming the task."""
    try:
        return ShardLimits(max_requests_per_job, max_bytes_per_job, max_tokens_per_job)
    except ValueError as exc:
        raise InputError(f"{task_id}: {exc} (the per-job limits)") from None
