"""The Gemini batches page: a FastAPI app the Airflow API server mounts at ``/gemini-batches``
(``plugins.plugin``).

- ``GET /gemini-batches/`` the page, with its script and style (``page.js``, ``page.css``; no data
  in them: the script asks the JSON below, as the signed-in user);
- ``GET /gemini-batches/api/batches?dag_id=&state=&days=&limit=&run_id=&task_id=&map_index=`` the
  data (``batches.list_batches``), with each in-flight job's live progress (``live``); the page
  opened with ``run_id`` (and ``task_id``, ``map_index``) in its address shows that run's or task
  instance's batch alone: the views on a DAG run and a task instance (``plugins.plugin``). A
  parameter the database could refuse (a NUL byte, a DAG id no DAG can have, a state no task has)
  is answered 422, before any query.

Plugin apps are not guarded by Airflow's auth on their own, so every data request is: the caller is
the user of the JWT in the ``Authorization: Bearer`` header or, for the page opened in the UI, the
UI's ``_token`` cookie, resolved by Airflow's auth manager (401 without one, 403 for a bad one), and
sees only the DAGs the auth manager lets it read, and the values taken from XCom only for the DAGs
whose XComs it may read (the check of Airflow's own XCom endpoint).

Every answer carries a Content-Security-Policy that allows only the page's own script and style,
``X-Content-Type-Options: nosniff``, and a framing policy that lets Airflow's UI (same origin) embed
the page, and nothing else.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from airflow.providers.common.compat.sdk import conf
from airflow.utils.state import TaskInstanceState
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gemini_batch_provider.plugins.batches import BatchFilter, list_batches
from gemini_batch_provider.plugins.live import TTL_SECONDS, LiveProgress

COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN
# Airflow's own rule for a DAG id (airflow.utils.helpers.KEY_REGEX), at most 250 characters (its column).
DAG_ID = r"^[\w.-]+$"
# A run id is free text to Airflow; no control character (a NUL would be refused by the database).
RUN_ID = r"^[^\x00-\x1f\x7f]+$"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",  # for browsers that do not read frame-ancestors
    "Referrer-Policy": "same-origin",
}

app = FastAPI(title="Gemini batches", docs_url=None, redoc_url=None, openapi_url=None)
live = LiveProgress(ttl=conf.getfloat("gemini_batch", "page_refresh_seconds", fallback=TTL_SECONDS))


class SecurityHeaders:
    """ASGI middleware that adds ``HEADERS`` to every answer of the app (a plain one: Starlette's
    ``BaseHTTPMiddleware`` streams each body through a task of its own, which cost the page's
    JSON 10-15 ms with 10,000 records, benchmarks/batches_page.py)."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_RAW_HEADERS]
            await send(message)

        await self.inner(scope, receive, send_with_headers if scope["type"] == "http" else send)


_RAW_HEADERS = [(name.lower().encode(), value.encode()) for name, value in HEADERS.items()]
app.add_middleware(SecurityHeaders)


def _file(name: str) -> str:
    return resources.files("gemini_batch_provider.plugins").joinpath(name).read_text()


async def signed_in_user(request: Request) -> Any:
    """The user of the request's JWT, as Airflow's own API resolves it; 401 without a token, 403
    for one the auth manager refuses (expired, forged)."""
    from airflow.api_fastapi.app import get_auth_manager

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(status_code=401, detail="Not authenticated: sign in to Airflow first")
    try:
        return await get_auth_manager().get_user_from_token(token)
    except Exception:  # the auth manager's reasons name the token's flaws, never who may pass
        raise HTTPException(status_code=403, detail="Invalid or expired token") from None


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    """The page: static HTML, whose script (``page.js``) asks ``api/batches``."""
    return _file("page.html")


@app.get("/page.js")
def script() -> Response:
    """The page's script, the only one its Content-Security-Policy allows."""
    return Response(_file("page.js"), media_type="text/javascript; charset=utf-8")


@app.get("/page.css")
def style() -> Response:
    """The page's style, the only one its Content-Security-Policy allows."""
    return Response(_file("page.css"), media_type="text/css; charset=utf-8")


@app.get("/api/batches")
def batches(user: Annotated[Any, Depends(signed_in_user)],
            dag_id: Annotated[str | None, Query(max_length=250, pattern=DAG_ID)] = None,
            state: TaskInstanceState | None = None,
            days: Annotated[int, Query(ge=1, le=366)] = 30,
            limit: Annotated[int, Query(ge=1, le=1000)] = 200,
            run_id: Annotated[str | None, Query(max_length=250, pattern=RUN_ID)] = None,
            task_id: Annotated[str | None, Query(max_length=250, pattern=DAG_ID)] = None,
            map_index: Annotated[int | None, Query(ge=-1)] = None) -> dict[str, Any]:
    """``batches.list_batches`` for the DAGs ``user`` may read, XCom values for those whose XComs
    it may read; each in-flight row's valid job names carry their ``progress`` (``live``), and
    ``refresh_seconds`` says how long that progress is kept (the page asks again after it)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.utils.session import create_session

    auth = get_auth_manager()

    def may_read_xcom(dag: str) -> bool:  # as Airflow's GET .../xcomEntries decides (requires_access_dag)
        return auth.is_authorized_dag(method="GET", access_entity=DagAccessEntity.XCOM, details=DagDetails(id=dag),
                                      user=user)

    with create_session() as session:
        readable = auth.get_authorized_dag_ids(user=user, method="GET", session=session)
        found = list_batches(session, readable, BatchFilter(dag_id, state, days, limit, run_id, task_id, map_index),
                             may_read_xcom)
    asked = [(row, job) for row in found["rows"] if row["in_flight"] and row["conn_id"]
             for job in row["jobs"] if job["valid"]]
    progress = live.progress_of((row["conn_id"], job["name"]) for row, job in asked)
    for row in found["rows"]:
        for job in row["jobs"]:
            job["progress"] = None
    for row, job in asked:
        job["progress"] = progress[row["conn_id"], job["name"]]
    return {**found, "refresh_seconds": live.ttl}
