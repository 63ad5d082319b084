"""Reading a ``gemini`` connection: the client's options (an API key, or Vertex AI's project,
location and credentials), the secrets masker, one TLS context per process, and the async clients
(with their aiohttp session) that the triggers of one event loop share. See ``hooks.gemini`` for the
connection's fields.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import ssl
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import certifi

# Loaded whole now, before any response is read. The SDK asks ``sys.modules`` whether ``requests``
# is loaded to recognise its headers, and gets a half-imported module while another thread imports
# it, as its Vertex AI credentials refresh does (``google.auth.transport.requests``, in a thread):
# the triggers sharing that loop then fail with "'requests' has no attribute 'structures'".
import google.auth.transport.requests  # noqa: F401
from airflow.providers.common.compat.sdk import Connection, mask_secret
from google import genai
from google.genai import types
from google.oauth2 import service_account

from gemini_batch_provider.core.errors import InputError

if TYPE_CHECKING:
    from gemini_batch_provider.core.backend import BatchBackend
    from gemini_batch_provider.hooks.gemini import GeminiHook

DEFAULT_API_VERSION = "v1beta"
DEFAULT_LOCATION = "us-central1"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# No poll may hang a wait: an unanswered one is a transient error after this long.
POLL_TIMEOUT_MS = 60_000
POLL_OPTIONS = types.HttpOptions(timeout=POLL_TIMEOUT_MS)


def is_vertex(conn: Connection) -> bool:
    return str(conn.extra_dejson.get("vertexai", "")).lower() in ("true", "1", "yes")


def backend_for(hook: GeminiHook, vertex: bool, identity: str = "", staging_uri: str | None = None) -> BatchBackend:
    """The one place the API is chosen: the Vertex AI backend for a Vertex AI connection (``vertex``,
    from ``is_vertex`` or the client), else the Gemini API's (``backends``).

    :param identity: the task instance's run-stable identity, which names the media it uploads.
    :param staging_uri: ``gs://`` folder of a Vertex AI run's files (the batch operators' ``gcs_staging_uri``).
    """
    from gemini_batch_provider.backends.gemini_api import GeminiApiBackend
    from gemini_batch_provider.backends.vertex_ai import VertexAiBackend

    return VertexAiBackend(hook, staging_uri) if vertex else GeminiApiBackend(hook, identity)


def list_models_config(conn: Connection) -> dict[str, Any]:
    """The ``models.list`` config of a connection's Test button: Vertex AI lists the publisher's base
    models only when asked to."""
    return {"page_size": 50, **({"query_base": True} if is_vertex(conn) else {})}


def storage_client_options(conn: Connection) -> dict[str, Any]:
    """``google.cloud.storage.Client`` keyword arguments: a Vertex AI connection's project and
    credentials, else none (the machine's default credentials)."""
    if not is_vertex(conn):
        return {}
    options = vertex_options(conn)
    return {"project": options["project"], "credentials": options["credentials"]}


def vertex_project_location(conn: Connection) -> dict[str, str]:
    """``project`` and ``location`` of a Vertex AI connection (location defaults to us-central1)."""
    extra = conn.extra_dejson
    if not extra.get("project"):
        raise InputError(f"connection {conn.conn_id!r} is a Vertex AI connection without a project: set "
                               "its 'project' extra to the Google Cloud project id")
    return {"project": extra["project"], "location": extra.get("location") or DEFAULT_LOCATION}


def vertex_options(conn: Connection) -> dict[str, Any]:
    """``vertexai``, ``project``, ``location`` and ``credentials`` for a Vertex AI connection."""
    where = vertex_project_location(conn)
    credentials = None  # the SDK then loads Application Default Credentials
    if conn.password:
        try:
            info = json.loads(conn.password)
            credentials = service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])
        except (ValueError, TypeError, KeyError):
            raise InputError(  # the message never quotes the field: it is a secret
                f"connection {conn.conn_id!r}: its password must be a service-account key (the JSON file's "
                "content) or empty to use the machine's default credentials"
            ) from None
    return {"vertexai": True, **where, "credentials": credentials}


def client_options(conn: Connection, aiohttp_session: aiohttp.ClientSession | None = None,
                   timeout_ms: int | None = None) -> dict[str, Any]:
    """Keyword arguments for ``genai.Client`` from a ``gemini`` connection (the one parser for sync
    and async use). Raises InputError, without the secret in it, for a missing API key, a
    Vertex AI connection without a project, or a password that is not a service-account key."""
    extra = conn.extra_dejson
    if is_vertex(conn):
        auth = vertex_options(conn)
    elif conn.password:
        auth = {"api_key": conn.password}
    else:
        raise InputError(
            f"connection {conn.conn_id!r} has no API key: put the Gemini API key in its password field, or set "
            "its 'vertexai' extra for Vertex AI"
        )
    http_options: dict[str, Any] = {
        "api_version": extra.get("api_version") or (None if is_vertex(conn) else DEFAULT_API_VERSION),
        # One attempt per call: this provider retries where it knows what is safe (the trigger's
        # polls, the online engine); the SDK's aiohttp path would also retry a dropped connection
        # by itself after sleeping 1-10 s.
        "retry_options": types.HttpRetryOptions(attempts=1),
    }
    # The host is the base URL common.ai hands its batch adapters (common_ai), so a connection that
    # gives it there serves both; the Base URL extra wins when both are set.
    base_url = extra.get("base_url") or conn.host
    if base_url:
        http_options["base_url"] = base_url
    if timeout_ms is not None:
        http_options["timeout"] = timeout_ms
    # One TLS context for every client of the process: the SDK would otherwise load the CA bundle
    # three times per client (~60 ms of CPU that blocks a triggerer's loop for each trigger).
    http_options["client_args"] = {"verify": _tls_context()}
    http_options["async_client_args"] = {"ssl": _tls_context()}
    if aiohttp_session is not None and not is_vertex(conn):  # Vertex AI's session carries its credentials
        http_options["aiohttp_client"] = aiohttp_session
    return {**auth, "http_options": types.HttpOptions(**http_options)}


def mask_connection_secrets(conn: Connection) -> None:
    """Register the API key, or a service-account key and its private key, with the secrets masker."""
    if not conn.password:
        return
    mask_secret(conn.password)
    try:
        private_key = json.loads(conn.password).get("private_key")
    except (ValueError, AttributeError):
        return
    if private_key:
        mask_secret(private_key)  # a traceback may quote it apart from the JSON around it


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The SDK's default TLS context (``SSL_CERT_FILE``/``SSL_CERT_DIR`` or certifi's CA bundle), made once."""
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE", certifi.where()),
                                      capath=os.environ.get("SSL_CERT_DIR"))


# Async clients by event loop, then by connection: the triggers of one triggerer share a client
# (and its connection pool) per connection instead of building one each.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, genai.Client]] = (
    weakref.WeakKeyDictionary()
)
_SESSIONS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = weakref.WeakKeyDictionary()
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "ws_proxy", "wss_proxy")


def _environment_has_proxy_or_netrc() -> bool:
    """Whether aiohttp's ``trust_env`` would find anything: a proxy variable or a netrc file."""
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES):
        return True
    return Path(os.environ.get("NETRC") or "~/.netrc").expanduser().is_file()


class _SharedSession(aiohttp.ClientSession):
    """A loop's session, alive as long as the loop: like the SDK's own, it is not closed by hand,
    so it says nothing when it is collected unclosed (its sockets close with it)."""

    def __del__(self, *_: Any) -> None:
        pass


class _SharedConnector(aiohttp.TCPConnector):
    """The shared session's connection pool (no limit, as the SDK's); quiet when collected, as above."""

    def __del__(self, *_: Any) -> None:
        pass


def loop_session() -> aiohttp.ClientSession:
    """The aiohttp session of the running loop's Gemini API clients (made on the loop; cheap).

    The SDK's own session has ``trust_env`` on, which looks up the proxy variables and reads the
    netrc file in a worker thread on every request: two thread hops that cost a poll ~0.75 ms of
    CPU, twice the rest of it. This one has it on only when the environment has something to
    find, so a proxy or netrc works as it does with the SDK's.
    """
    loop = asyncio.get_running_loop()
    session = _SESSIONS.get(loop)
    if session is None or session.closed:
        session = _SESSIONS[loop] = _SharedSession(connector=_SharedConnector(limit=0),
                                                    trust_env=_environment_has_proxy_or_netrc())
    return session


CONNECTION_TTL_S = 60.0
_READS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, tuple[float, asyncio.Task[Connection]]]] = (
    weakref.WeakKeyDictionary()
)


async def read_connection(conn_id: str, read: Callable[[], Awaitable[Connection]]) -> Connection:
    """The connection ``read()`` gives, read once per loop and ``CONNECTION_TTL_S`` seconds.

    A read costs ~1 ms of CPU, in worker threads that take the GIL from the loop: ten thousand
    triggers resumed together (a triggerer restart) would stall it for seconds, one read each. They
    share one read instead; a connection changed since is read by the triggers that start after a
    minute (running ones keep their client, as before). A failed read is not kept.
    """
    loop = asyncio.get_running_loop()
    reads = _READS.setdefault(loop, {})
    entry = reads.get(conn_id)
    stale = entry is None or entry[0] < loop.time() or (entry[1].done() and (
        entry[1].cancelled() or entry[1].exception() is not None))
    if stale:
        entry = reads[conn_id] = (loop.time() + CONNECTION_TTL_S, loop.create_task(read()))  # type: ignore[arg-type]
    return await asyncio.shield(entry[1])  # type: ignore[index]


def _connection_digest(conn: Connection) -> str:
    """A digest of what the client is built from (the key included, never kept in clear)."""
    parts = (conn.conn_id, conn.password or "", json.dumps(conn.extra_dejson, sort_keys=True))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# The client each connection read (``read_connection``) was given, by loop: hooks that share a
# read share its client without a thread hop. Keyed by the read's id, kept with it so the id is not reused.
_BY_READ: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, tuple[Connection, genai.Client]]] = (
    weakref.WeakKeyDictionary()
)


def client_of(conn: Connection, loop: asyncio.AbstractEventLoop) -> genai.Client | None:
    """The client ``shared_async_client`` gave for this very ``conn`` object on ``loop``, if any."""
    entry = _BY_READ.get(loop, {}).get(id(conn))
    return entry[1] if entry is not None and entry[0] is conn else None


def shared_async_client(conn: Connection, loop: asyncio.AbstractEventLoop,
                        session: aiohttp.ClientSession | None = None) -> genai.Client:
    """The client of ``loop`` for ``conn``, built on first use (runs in asgiref's one worker thread);
    a Gemini API one sends through ``session`` (``loop_session``). Its calls (polls and cancels)
    time out after ``POLL_TIMEOUT_MS``, set once on the client: options given per request are
    merged on every call, which costs a poll a third of its CPU."""
    mask_connection_secrets(conn)
    clients = _ASYNC_CLIENTS.setdefault(loop, {})
    digest = _connection_digest(conn)
    if digest not in clients:
        clients[digest] = genai.Client(**client_options(conn, session, POLL_TIMEOUT_MS))
    reads = _BY_READ.setdefault(loop, {})
    if len(reads) > 1000:  # reads are a minute apart each; old ones go
        reads.clear()
    reads[id(conn)] = (conn, clients[digest])
    return clients[digest]
