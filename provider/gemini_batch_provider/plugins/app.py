"""The Gemini batches page: a FastAPI app the Airflow API server mounts at ``/gemini-batches``
(``plugins.plugin``).

- ``GET /gemini-batches/`` the page (no data in it: it asks the JSON below, as the signed-in user);
- ``GET /gemini-batches/api/batches?dag_id=&state=&days=&limit=`` the data (``batches.list_batches``),
  with each in-flight job's live progress (``live``).

Plugin apps are not guarded by Airflow's auth on their own, so every data request is: the caller is
the user of the JWT in the ``Authorization: Bearer`` header or, for the page opened in the UI, the
UI's ``_token`` cookie, resolved by Airflow's auth manager (401 without one, 403 for a bad one), and
sees only the DAGs the auth manager lets it read.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from airflow.providers.common.compat.sdk import conf
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from gemini_batch_provider.plugins.batches import IN_FLIGHT, BatchFilter, list_batches
from gemini_batch_provider.plugins.live import TTL_SECONDS, LiveProgress

COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN

app = FastAPI(title="Gemini batches", docs_url=None, redoc_url=None, openapi_url=None)
live = LiveProgress(ttl=conf.getfloat("gemini_batch", "page_refresh_seconds", fallback=TTL_SECONDS))


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
    """The page: static HTML and script, which ask ``api/batches``."""
    return resources.files("gemini_batch_provider.plugins").joinpath("page.html").read_text()


@app.get("/api/batches")
def batches(user: Annotated[Any, Depends(signed_in_user)], dag_id: str | None = None, state: str | None = None,
            days: Annotated[int, Query(ge=1, le=366)] = 30,
            limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict[str, Any]:
    """``batches.list_batches`` for the DAGs ``user`` may read; each in-flight row's jobs carry
    their ``progress`` (``live``)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.utils.session import create_session

    with create_session() as session:
        readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session)
        found = list_batches(session, readable, BatchFilter(dag_id, state, days, limit))
    for row in found["rows"]:
        in_flight = row["state"] in IN_FLIGHT and row["conn_id"]
        row["jobs"] = [{"name": name, "progress": live.progress(row["conn_id"], name) if in_flight else None}
                       for name in row.pop("batch_jobs")]
    return found
