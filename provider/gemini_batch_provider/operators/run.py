"""One try of an operator: where its plan meets the task instance's hook, storage and media.

The operators are thin: each builds a ``BatchPlan`` (``core.plan``), makes a ``TaskRun`` of it, and
hands both to the core stages (``core.submit``, ``core.land``, the online engine). A ``TaskRun``
holds what one try needs and the core can't know: the input file (a remote one downloaded once),
the media scanned and uploaded, the ledger's storage, the results writer, and the task's log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import shutil
import tempfile
import weakref
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import XCOM_RETURN_KEY, AirflowException, Context
from google.genai import errors as genai_errors

from gemini_batch_provider.core.cost import Estimate, estimate
from gemini_batch_provider.core.errors import BudgetExceeded, InputError
from gemini_batch_provider.core.ledger import Ledger, LedgerStore, keys_location, ledger_location
from gemini_batch_provider.core.media import MediaStager
from gemini_batch_provider.core.online import OnlineEngine, OnlineSettings, OnlineStats
from gemini_batch_provider.core.plan import BatchPlan
from gemini_batch_provider.core.records import iter_records
from gemini_batch_provider.core.requests import RequestSpec, build_requests, iter_keys
from gemini_batch_provider.core.results import ResultsWriter
from gemini_batch_provider.core.shards import shard_of_keys
from gemini_batch_provider.core.summary import summarize
from gemini_batch_provider.core.tokens import THOUGHTS_BEYOND_PROMPT, prompt_ratio
from gemini_batch_provider.core.vocabulary import RowPath
from gemini_batch_provider.hooks.gemini import GeminiHook
from gemini_batch_provider.hooks.sdk import TRANSPORT_ERRORS
from gemini_batch_provider.operators.media import delete_media, files_api_uploader, gcs_uploader
from gemini_batch_provider.storage import Location, results_writer


def run_identity(context: Context) -> str:
    """The task instance's run-stable identity: the same for every try, never the try number."""
    ti = context["ti"]
    return f"airflow:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{ti.map_index}"


@contextmanager
def refusing(task_id: str) -> Iterator[None]:
    """Name the task in a refusal made before anything was sent; no retry can help it."""
    try:
        yield
    except InputError as exc:
        raise type(exc)(f"{task_id}: bad input, nothing was uploaded or billed: {exc}") from None
    except BudgetExceeded as exc:
        raise BudgetExceeded(f"{task_id}: {exc}") from None


def task_scratch(identity: str) -> Path:
    """The task instance's folder in the system's temporary folder (its tries' scratch folders)."""
    return Path(tempfile.gettempdir()) / f"gemini-task-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def scratch_folder(identity: str) -> Path:
    """A new folder for one try's downloads (remote input, media, batch output), inside the task
    instance's own; what a try killed mid-way (no ``finally`` runs) left there is removed first."""
    parent = task_scratch(identity)
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent))


def _remove_scratch(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    with suppress(OSError):  # another try of the task instance may have begun in it
        folder.parent.rmdir()


class TaskRun:
    """One try of ``plan`` by a task instance (``identity``, see ``run_identity``).

    Its downloads live in ``scratch``, removed when the run is left as a context manager (or, else,
    collected) and, should the process be killed, by the task instance's next try. When the run is
    left by an error after its results landed (a job that did not succeed, rows nobody answered),
    their summary is pushed to XCom first, under ``return_value`` as a success's is, so that what
    was spent shows in the UI and to downstream ``all_done`` tasks (``ti``: the task instance).
    """

    def __init__(self, plan: BatchPlan, hook: GeminiHook, log: logging.Logger, identity: str,
                 storage_conn_id: str | None = None, ti: Any = None) -> None:
        self.plan, self.hook, self.log, self.identity = plan, hook, log, identity
        self.storage_conn_id = storage_conn_id
        self.ti = ti
        self.landed: dict[str, Any] | None = None  # the summary, once the results landed
        self.scratch = scratch_folder(identity)
        self._remove_scratch = weakref.finalize(self, _remove_scratch, self.scratch)
        self.estimated_cost_usd: float | None = None
        self._media: MediaStager | None = None  # the run's media, once scanned (see prepare_media)
        self._preflown = False

    def __enter__(self) -> TaskRun:
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        """The try is done with its downloads: they go now. (A task process may end without
        running finalisers, so the operators leave no run to them.)"""
        self._remove_scratch()
        if error_type is not None and self.landed is not None and self.ti is not None:
            self.ti.xcom_push(key=XCOM_RETURN_KEY, value=self.landed)
            self.log.info("The task fails after its results landed: their summary is in XCom (%s).", XCOM_RETURN_KEY)

    def location(self, url: str) -> Location:
        hook = self.hook  # not self: a location kept by the run must not keep the run alive
        return Location(url, lambda: hook, self.storage_conn_id)

    @cached_property
    def store(self) -> LedgerStore:
        """The ledger and keys file beside ``output_path``."""
        out = self.plan.output_path
        return LedgerStore(self.location(ledger_location(out)), self.location(keys_location(out)))

    @cached_property
    def _input_file(self) -> str:
        """``input_path``, or its local copy when it is remote (downloaded once per try)."""
        source = self.location(str(self.plan.input_path))
        if source.local is not None:
            return str(source.local)
        copy = self.scratch / "input" / source.url.rsplit("/", 1)[-1]
        copy.parent.mkdir()
        source.download(copy)
        return str(copy)

    def records(self) -> Iterator[dict[str, Any]]:
        return iter_records(self.plan.records if self.plan.records is not None else self._input_file)

    @property
    def spec(self) -> RequestSpec:
        return dataclasses.replace(self.plan.spec, media=self._media) if self._media else self.plan.spec

    def requests(self) -> Generator[tuple[str, dict[str, Any]], None, None]:
        """``(key, request)`` per record, checked as they are built (InputError)."""
        return build_requests(self.records(), self.spec)

    def keys_by_shard(self, jobs: list[dict[str, Any]], ledger: Ledger | None) -> Iterable[tuple[str, int]]:
        """``(key, shard)`` per input row: from the ledger's keys file when it kept one for these
        jobs, each job checked to be the one its shard created (``LedgerStore.recorded_job``); else
        worked out from the input (jobs submitted elsewhere, or by an older release).

        :raises LedgerError: a job is not its shard's, or the keys file does not match the ledger
            (as the keys are read)."""
        if ledger is not None and ledger.keys_file and ledger.job_names == [job["name"] for job in jobs]:
            for record in ledger.shards:
                self.store.recorded_job(record, self.hook.get_job_status)
            return self.store.keys(ledger)
        if len(jobs) == 1:
            return ((key, 0) for key in iter_keys(self.records(), self.spec))
        return shard_of_keys(self.requests(), self.plan.limits)

    def preflight(self) -> None:
        """What is checked before anything is uploaded or billed, beyond the rows: that the results
        can be written where ``output_path`` says, and that the model exists and does the task.
        Once per try: the stages that need it ask for it, and the first one checks."""
        if self._preflown:
            return
        if self.plan.embeddings and self.hook.vertex:
            raise InputError("embeddings run on a Gemini API connection (an API key), and this one is Vertex AI: "
                             "the SDK creates no embeddings batch job there")
        self.check_apart()
        self.plan.check_model_id()
        self.location(self.plan.output_path).check_writable("output_path")
        self.hook.check_model(self.plan.model, self.plan.method)
        self._preflown = True

    def check_apart(self) -> None:
        """Refuse an ``output_path`` whose results or keys file would be written over the input: the
        run would destroy what it reads, and a retry would find nothing to read. (The ledger's name
        ends in ``.json``, which no input has.)"""
        if self.plan.input_path is None:
            return
        source = self.location(str(self.plan.input_path)).identity
        out = self.plan.output_path
        for what, url in (("output_path", out), ("the keys file beside output_path", keys_location(out))):
            if self.location(url).identity == source:
                raise InputError(f"{what} is input_path ({self.plan.input_path}): the run would write over its own "
                                 "input, and a retry would have none to read; give the results a path of their own")

    def checked_estimate(self) -> Estimate:
        """Build every request once, so that bad input fails before the first call; their estimate.
        Media are scanned and fetched first (``prepare_media``), not uploaded."""
        self.prepare_media()
        return estimate(self.requests(), self.plan.model)

    def check_budget(self, found: Estimate, batch: bool) -> float | None:
        """Log the estimated cost (US dollars), its prompt side checked against ``countTokens`` on a
        sample of rows; raise BudgetExceeded when it passes the budget."""
        ratio = self._prompt_ratio
        if ratio is not None:
            found = found.scaled(ratio)
        self.estimated_cost_usd = self.plan.budget.check(self.plan.model, found, batch)
        cost = "no known price" if self.estimated_cost_usd is None else f"${self.estimated_cost_usd:.4f}"
        counted = "4 characters a token" if ratio is None else (
            f"4 characters a token times {ratio:.2f}, what countTokens made of the first rows")
        self.log.info("Estimated cost: %s for %d requests at the %s price of %s: ~%d prompt tokens (%s) and ~%d "
                      "output tokens, of which ~%d thinking (answers of max_output_tokens where set, else as long as "
                      "the prompt; thinking as long as the prompt plus %d, within the thinking budget or level, or "
                      "the model's default). The actual cost follows from the API's token counts once landed.",
                      cost, found.requests, "batch" if batch else "interactive", self.plan.model,
                      found.prompt_tokens, counted, found.output_tokens, found.thinking_tokens, THOUGHTS_BEYOND_PROMPT)
        return self.estimated_cost_usd

    @cached_property
    def _prompt_ratio(self) -> float | None:
        """What the API counts for the first rows' prompts over the rule of thumb (``core.tokens.prompt_ratio``);
        None when the sample is 0, no row could be counted, or the API did not answer (the estimate
        then stands on the rule of thumb: a count is worth no failed task)."""
        rows = self.plan.budget.count_tokens_sample
        if not rows:
            return None
        self.preflight()  # the model is checked before it is asked anything
        try:  # the requests are left after a few: closed here, so that their key index is closed in this thread
            with closing(self.requests()) as requests:
                return prompt_ratio((request for _, request in requests), self.plan.model,
                                    lambda contents: self.hook.count_tokens(self.plan.model, contents), rows)
        except (genai_errors.APIError, *TRANSPORT_ERRORS, OSError) as exc:
            self.log.warning("countTokens did not answer (%s); the estimate counts 4 characters a token", exc)
            return None

    def prepare_media(self) -> None:
        """Scan the rows' media and download those behind URLs, once per try; bad media raise
        InputError (naming row and field) before anything is uploaded."""
        media = self.plan.media
        if not media.fields or self._media is not None:
            return
        stager = MediaStager(media.fields, Path(tempfile.mkdtemp(prefix="media-", dir=self.scratch)),
                             inline_max_bytes=media.inline_max_bytes, max_bytes=media.max_bytes,
                             vertex=self.hook.vertex, read_gcs=self.hook.gcs.download)
        try:
            stager.scan(self.records())
            asyncio.run(stager.fetch())
        except InputError:
            shutil.rmtree(stager.folder, ignore_errors=True)
            raise
        self._media = stager
        self.log.info("Media: %d distinct, %d over %d bytes (uploaded, once each), the rest inline.",
                      len(stager.media), sum(m.size > media.inline_max_bytes for m in stager.media.values()),
                      media.inline_max_bytes)

    def stage_media(self, staging_uri: str | None = None) -> list[str]:
        """Upload the media too large to go inline (once per content); the URIs this try uploaded."""
        self.prepare_media()
        if self._media is None or self._media.staged:
            return []
        limit = self.plan.media.inline_max_bytes
        if self.hook.vertex:
            if not staging_uri and any(m.uri is None and m.size > limit for m in self._media.media.values()):
                raise InputError(f"media over {limit} bytes on Vertex AI are staged in Cloud Storage: give gs:// "
                                 "URIs, or set gcs_staging_uri on a batch operator")
            uploader = gcs_uploader(self.hook, staging_uri or "")
        else:
            uploader = files_api_uploader(self.hook, self.identity)
        asyncio.run(self._media.stage(uploader))
        return self._media.uploaded

    def drop_media(self, uris: Iterable[str] = ()) -> None:
        """Remove the local downloads, and the uploaded ``uris`` unless the plan keeps them."""
        if self._media is not None:
            shutil.rmtree(self._media.folder, ignore_errors=True)
        uris = list(uris)
        if uris and not self.plan.media.keep_files:
            delete_media(self.hook, uris)
            self.log.info("Deleted %d uploaded media files.", len(uris))

    def results_writer(self) -> ResultsWriter:
        schema = self.plan.output_schema
        writer = results_writer(self.location(self.plan.output_path), schema.check if schema is not None else None,
                                self.scratch)
        writer.price = self.plan.price()
        return writer

    def run_online(self, writer: ResultsWriter, requests: Iterable[tuple[str, dict[str, Any]]], total: int,
                   settings: OnlineSettings) -> OnlineStats:
        """Run ``requests`` through the online engine, each row written as soon as it is done."""

        async def run() -> OnlineStats:
            engine = OnlineEngine(self.hook.client, self.plan.model, settings)
            stats = await engine.run(requests, writer.write, total=total)
            self.log.info("%d calls for %d rows online; %d responses 429, %d other retried errors",
                          stats.calls, total, stats.responses_429, stats.retried_errors)
            return stats

        return asyncio.run(run())

    def land_online(self, rows: int, settings: OnlineSettings) -> dict[str, Any]:
        """Run every row online into the results file; the summary.

        :raises AirflowException: after landing, when rows ran out of attempts on transient errors.
        """
        self.preflight()
        uploaded = self.stage_media()
        writer = self.results_writer()
        try:
            stats = self.run_online(writer, self.requests(), rows, settings)
        except BaseException:
            writer.abort()
            raise
        finally:
            self.drop_media(uploaded)
        writer.close()
        summary = self.summary(writer, rows, RowPath.ONLINE, [])
        if stats.gave_up:
            raise AirflowException(
                f"the API did not answer {stats.gave_up} of {rows} rows in {settings.max_attempts} attempts each "
                f"(transient errors: 429, 5xx, timeouts or dropped connections); they landed as 'failed' with "
                f"their last error in {summary['output_path']}. Lower concurrency/rpm/tpm to the model's quota or "
                "raise max_attempts; a retry of the task runs every row again")
        return summary

    def summary(self, writer: ResultsWriter, rows: int, path: str, batch_jobs: list[str]) -> dict[str, Any]:
        """The XCom summary shared by both paths (``core.summary``); never the rows themselves."""
        plan = self.plan
        summary = summarize(writer, rows, path, batch_jobs, plan.model, self.estimated_cost_usd, plan.price())
        self.landed = summary
        self.log.info("Results landed: %s", summary)
        estimated, actual = summary["estimated_cost_usd"], summary["cost_usd"]
        if estimated is not None and actual is not None:
            self.log.info("Cost: estimated $%.4f, actual $%.4f (%.1fx the actual; the estimate's assumptions are "
                          "in its line above).", estimated, actual, estimated / actual if actual else float("inf"))
        return summary
