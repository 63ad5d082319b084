"""GeminiHook: a ``google.genai.Client`` built from an Airflow connection of type ``gemini``.

Two modes, chosen by the connection:

- Gemini Developer API (default): the API key in the password field; extras ``base_url`` (empty
  for Google's endpoint; the local emulator's URL otherwise; when empty, the connection's host,
  where common.ai's batch layer reads it) and ``api_version`` (default
  ``v1beta``, the version the Batch API is documented on: https://ai.google.dev/api/batch-mode).
- Vertex AI (extra ``vertexai: true``): extras ``project`` and ``location`` (default
  ``us-central1``); the password field holds a service-account key (its JSON), or stays empty to
  use the machine's Application Default Credentials; ``base_url`` and ``api_version`` as above
  (the SDK's Vertex default version when empty). IAM, not an API key:
  https://cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-gemini
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tenacity
from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook, Connection
from asgiref.sync import sync_to_async
from google import genai
from google.genai import errors, types

from gemini_batch_provider import get_provider_info
from gemini_batch_provider.core.errors import InputError
from gemini_batch_provider.core.transient import server_retry_delay
from gemini_batch_provider.core.vocabulary import as_job_names, job_name
from gemini_batch_provider.hooks import DEFAULT_CONN_ID
from gemini_batch_provider.hooks.connection import (
    backend_for,
    client_of,
    client_options,
    is_vertex,
    list_models_config,
    loop_session,
    mask_connection_secrets,
    read_connection,
    shared_async_client,
    storage_client_options,
)
from gemini_batch_provider.hooks.gcs import CloudStorage

if TYPE_CHECKING:
    from google.cloud import storage

    from gemini_batch_provider.core.backend import BatchBackend
    from gemini_batch_provider.core.jobs import JobStatus


def _connection_type() -> dict[str, Any]:
    """The ``gemini`` connection type as the provider info declares it (its form included)."""
    [conn_type] = get_provider_info()["connection-types"]
    return conn_type


def _create_429_wait(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    server = server_retry_delay(exc) if exc else None
    return server if server is not None else min(600.0, 30.0 * 2 ** (state.attempt_number - 1))


class GeminiHook(BaseHook):
    """Interact with the Gemini API (Files, Batches, Models) through the google-genai SDK.

    ``hook.client`` is the sync ``genai.Client``; ``hook.client.aio`` its async side. In a trigger,
    build the hook with :meth:`aget_client` so that reading the connection does not block the loop.

    :param gemini_conn_id: id of a connection of type ``gemini``.
    """

    conn_name_attr = "gemini_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "gemini"
    hook_name = "Google Gemini"

    def __init__(self, gemini_conn_id: str = default_conn_name, create_429_attempts: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gemini_conn_id = gemini_conn_id
        self.create_429_attempts = create_429_attempts
        self._async_client: tuple[asyncio.AbstractEventLoop, genai.Client] | None = None
        self._async_backend: BatchBackend | None = None

    @classmethod
    def for_connection(cls, conn: Connection) -> GeminiHook:
        """A hook of a connection already read: common.ai's batch layer hands its adapters the
        connection's fields, not its id (``common_ai``)."""
        hook = cls(gemini_conn_id=conn.conn_id)
        mask_connection_secrets(conn)
        hook.__dict__["connection"] = conn  # what the cached property would have read
        return hook

    @cached_property
    def connection(self) -> Connection:
        """The connection, read once per hook (in a task each read is a round trip to the supervisor).

        Its secrets are registered with Airflow's secrets masker, so a log line that quotes them
        shows ``***``: Airflow masks the password field whole; a service-account key's private key
        is masked on its own too.
        """
        conn = self.get_connection(self.gemini_conn_id)
        mask_connection_secrets(conn)
        return conn

    @cached_property
    def client(self) -> genai.Client:
        return genai.Client(**client_options(self.connection))

    def get_conn(self) -> genai.Client:
        return self.client

    async def aget_client(self) -> genai.Client:
        """The client for a connection read asynchronously (for triggers); use ``.aio`` on it.

        Shared by every caller on the same event loop with the same connection settings: a
        triggerer running a thousand triggers builds one client, not a thousand. The connection is
        read once a minute per loop, whatever the number of hooks (``read_connection``). Its calls
        time out after 60 s (``POLL_TIMEOUT_MS``): it is for polls and cancels, never uploads or
        downloads.
        """
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client[0] is not loop:
            conn = await read_connection(self.gemini_conn_id, lambda: get_async_connection(self.gemini_conn_id,
                                                                                              hook=self))
            # Masking and ``extra_dejson`` are synchronous calls to the supervisor before Airflow
            # 3.3.2, and building a client costs CPU: both run in a worker thread, off the loop.
            client = client_of(conn, loop)  # the client of this very read, if another hook made it
            if client is None:
                client = await sync_to_async(shared_async_client)(conn, loop, loop_session())
            self._async_client = (loop, client)
        return self._async_client[1]

    def check_deferred_wait_can_read(self) -> None:
        """Refuse, before anything is created, a connection the deferred wait could not read.

        The trigger reads the connection asynchronously (``aget_connection``), and this reads it
        the same way from the try's process, once. Under ``airflow dags test`` or ``dag.test()``
        the trigger runs in that process, and on Airflow 3.3 such a read does not see a connection
        stored in the metadata database (environment-variable connections and secrets backends
        work; Airflow's own behaviour, for any trigger). Without this check the batch job would be
        created, then the wait would fail and leave it running, billed.

        :raises InputError: the connection can't be read asynchronously here; the message names
            it and the fix.
        """
        def read() -> Connection:
            return asyncio.run(get_async_connection(self.gemini_conn_id))

        try:
            with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever runs in this thread
                pool.submit(read).result()
        except AirflowNotFoundException:
            raise InputError(
                f"the deferred wait could not read the connection {self.gemini_conn_id!r}: a trigger run "
                "inside this process (airflow dags test, dag.test()) does not see connections stored in the "
                "metadata database. Give the connection as an environment variable "
                f"(AIRFLOW_CONN_{self.gemini_conn_id.upper()}, JSON) or from a secrets backend, or test with "
                "deferrable=False; a real triggerer reads it either way") from None

    # The connection form. Airflow 3.2+ reads it from the provider info (``conn-fields``,
    # ``ui-field-behaviour``) and skips these two; Airflow 3.0 and 3.1 build it from them when wtforms
    # is installed (with the FAB provider, say), and otherwise show the standard fields and Extra.
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from wtforms import BooleanField, StringField

        return {
            name: (BooleanField if "boolean" in field["schema"]["type"] else StringField)(
                field["label"], description=field["description"], default=field["schema"].get("default"))
            for name, field in _connection_type()["conn-fields"].items()
        }

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {key.replace("-", "_"): value for key, value in _connection_type()["ui-field-behaviour"].items()}

    def test_connection(self) -> tuple[bool, str]:
        try:
            models = [m.name for m in self.client.models.list(config=list_models_config(self.connection))]
        except Exception as exc:  # the UI shows the message; the SDK's errors never carry the key
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected; {len(models)} models visible, e.g. {', '.join(models[:3])}"

    def check_model(self, model: str, action: str = "generateContent") -> None:
        """Raise InputError, before anything is uploaded or billed, when the API behind the
        connection does not know ``model`` or the model lacks ``action`` (``generateContent``,
        ``embedContent``, as ``Model.supported_actions`` lists them). A ``models.get`` call, not billed."""
        try:
            found = self.client.models.get(model=model)
        except errors.ClientError as exc:
            if exc.code != 404:
                raise
            raise InputError(f"model {model!r} is not known to the API behind connection "
                                       f"{self.gemini_conn_id!r}; use a model its Test button lists, e.g. "
                                       "gemini-2.5-flash") from None
        if found.supported_actions and action not in found.supported_actions:
            raise InputError(f"model {model!r} does not do {action} (it does "
                                       f"{', '.join(found.supported_actions)}); pick a model made for it")

    def count_tokens(self, model: str, contents: list[dict[str, Any]]) -> int:
        """The prompt tokens of ``contents`` (wire-shaped ``Content`` dicts) by ``countTokens``, which
        is not billed (https://ai.google.dev/gemini-api/docs/tokens)."""
        return self.client.models.count_tokens(model=model, contents=contents).total_tokens or 0

    def upload_file(self, path: Path, display_name: str, mime_type: str = "jsonl") -> types.File:
        """Upload a local file through the Files API (resumable, 8 MiB chunks, streamed from disk)."""
        return self.client.files.upload(file=str(path), config={"display_name": display_name, "mime_type": mime_type})

    def delete_file(self, name: str) -> None:
        self.client.files.delete(name=name)

    @cached_property
    def vertex(self) -> bool:
        """True for a Vertex AI connection (batch input and output then live in Cloud Storage)."""
        return is_vertex(self.connection)

    @cached_property
    def backend(self) -> BatchBackend:
        """The connection's API as a batch backend (``core.backend``), for what needs no task's
        identity or staging folder: polls, cancels, downloads, deletes."""
        return backend_for(self, self.vertex)

    async def abackend(self) -> BatchBackend:
        """``backend`` for a connection read asynchronously (for triggers), once per hook."""
        client = await self.aget_client()
        if self._async_backend is None:
            self._async_backend = backend_for(self, client.vertexai)
        return self._async_backend

    @cached_property
    def gcs(self) -> CloudStorage:
        """Cloud Storage with a Vertex AI connection's project and credentials, else the machine's
        default credentials (``STORAGE_EMULATOR_HOST`` points it at an emulator)."""
        return CloudStorage(self._storage_client)

    def _storage_client(self) -> storage.Client:
        # Imported here: it costs ~0.3 s and ~27 MB, and every DAG parse, task and triggerer that
        # imports this hook would pay it even when nothing touches Cloud Storage.
        from google.cloud import storage

        return storage.Client(**storage_client_options(self.connection))

    def create_batch_job(self, model: str, src: str, display_name: str, dest: str | None = None,
                         embeddings: bool = False, priority: int | None = None) -> types.BatchJob:
        """Create a batch job from an uploaded input file ``files/<id>`` (Gemini API; returns
        ``batches/<id>``) or from ``gs://`` with results under the ``gs://`` prefix ``dest`` (Vertex AI).
        With ``embeddings``, an embeddings job (``asyncBatchEmbedContent``, through the SDK's
        ``batches.create_embeddings``; Gemini API only) of ``EmbedContentRequest`` lines. ``priority``:
        the Batch resource's ``priority`` (int64, higher runs first; https://ai.google.dev/api/batch-mode),
        sent through ``http_options.extra_body``, as the SDK's ``CreateBatchJobConfig`` has no field
        for it (google-genai 3.6); Gemini API only.

        A 429 (a quota, such as the enqueued-token limit, is full) was refused, so it is safe to
        try again: waits the server's ``RetryInfo``/``Retry-After`` delay (else 30 s, doubling to
        10 min) for up to ``create_429_attempts`` calls. Other errors propagate; a 5xx or a dropped
        connection may have created the job anyway, which the caller must look up before creating again.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, errors.APIError) and exc.code == 429),
            wait=_create_429_wait,
            stop=tenacity.stop_after_attempt(self.create_429_attempts),
            before_sleep=lambda state: self.log.warning(
                "Batch create refused (429, quota full); trying again in %.0f s", state.upcoming_sleep),
            reraise=True,
        )
        config: dict[str, Any] = {"display_name": display_name}
        if priority is not None:  # int64 goes as a string in JSON, as the API writes it back
            config["http_options"] = {"extra_body": {"batch": {"priority": str(priority)}}}
        if embeddings:
            with warnings.catch_warnings():  # the SDK warns on every call that create_embeddings is experimental
                warnings.simplefilter("ignore", category=errors.ExperimentalWarning)
                return retrying(self.client.batches.create_embeddings, model=model, src={"file_name": src},
                                config=config)
        return retrying(self.client.batches.create, model=model, src=src,
                        config={**config, **({"dest": dest} if dest else {})})

    def find_batch_jobs(self, display_names: Iterable[str]) -> dict[str, types.BatchJob]:
        """The batch job with each of these display names (the first listed, newest first), by
        name; names with no job are left out. One listing of the project's jobs, stopped once
        every name is found (the Developer API takes no list filter)."""
        wanted, found = set(display_names), {}
        if not wanted:
            return found
        for job in self.client.batches.list(config={"page_size": 100}):
            if job.display_name in wanted and job.display_name not in found:
                found[job.display_name] = job
                if len(found) == len(wanted):
                    break
        return found

    def find_batch_job(self, display_name: str) -> types.BatchJob | None:
        """The batch job with this display name, or None (see ``find_batch_jobs``)."""
        return self.find_batch_jobs([display_name]).get(display_name)

    def get_batch_job(self, name: str) -> types.BatchJob:
        return self.client.batches.get(name=job_name(name))

    def get_job_status(self, name: str) -> JobStatus:
        """A job's state, output file and progress, from one ``GET`` (see ``core.jobs``)."""
        return self.backend.job_status(name)

    async def aget_job_status(self, name: str) -> JobStatus:
        """``get_job_status`` with the async client (for triggers): one request, never blocking the
        loop, at the least CPU a poll can cost (``backends``)."""
        return await (await self.abackend()).ajob_status(name)

    async def acancel_batch_job(self, name: str) -> None:
        await (await self.abackend()).acancel(name)

    def job_summaries(self, names: str | Iterable[str]) -> list[dict[str, Any]]:
        """``{"name", "state", "output_file"}`` of each job (one name or several), in order."""
        return [self.get_job_status(name).summary() for name in as_job_names(names)]

    def cancel_batch_job(self, name: str) -> None:
        self.backend.cancel(name)

    def download_api_file(self, name: str, destination: Path) -> None:
        """Stream a file the API keeps for a batch to a local path: a Files API file
        (``files/<id>``; the Gemini API) or a ``gs://`` object (Vertex AI)."""
        self.backend.download(name, destination)

    def delete_api_file(self, name: str) -> None:
        """Delete a file uploaded for a batch: a ``gs://`` object (Vertex AI), or a Files API file
        given as ``files/<id>`` or as its URI (``https://.../files/<id>``)."""
        self.backend.delete(name)

    def download_file(self, name: str, destination: Path) -> None:
        """Stream a file from the Files API (e.g. a batch's ``files/batch-<id>`` output) to a local
        path, in 1 MiB chunks: memory does not grow with the file."""
        self.client.files.download(file=name, destination=str(destination))
