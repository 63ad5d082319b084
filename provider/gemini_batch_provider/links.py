"""The operator extra link "Gemini batch job": where a task's batch jobs are shown in Google's console.

Vertex AI jobs open in the Google Cloud console, one job's page (several jobs: the project's list of
batch predictions; the URL shape of Airflow's Google provider, ``links/vertex_ai.py``). Gemini API
jobs open Google AI Studio's batch list (https://aistudio.google.com/batches), which has no page per
job. The URL is kept as the task's XCom ``_link_GeminiBatchJobLink``, which Airflow's UI reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context, TaskInstanceKey

AI_STUDIO_BATCHES = "https://aistudio.google.com/batches"
VERTEX_AI_CONSOLE = "https://console.cloud.google.com/vertex-ai"


def vertex_jobs_url(job_names: Sequence[str], project: str, location: str) -> str:
    """The Vertex AI console's page of one job, or the project's batch predictions for several."""
    if len(job_names) == 1:
        job_id = job_names[0].rsplit("/", 1)[-1]
        return f"{VERTEX_AI_CONSOLE}/locations/{location}/batch-predictions/{job_id}?project={project}"
    return f"{VERTEX_AI_CONSOLE}/batch-predictions?project={project}"


def is_console_url(url: object) -> bool:
    """Whether ``url`` is one the backends build (``vertex_jobs_url``): AI Studio's batch list, or a page of the
    Vertex AI console (an XCom is any task's to write, so a link read back from one is checked)."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.username or parts.password or parts.port:
        return False
    target = f"https://{parts.netloc}{parts.path}"
    return target == AI_STUDIO_BATCHES or target.startswith(f"{VERTEX_AI_CONSOLE}/")


class GeminiBatchJobLink(BaseOperatorLink):
    """Link from a task to its Gemini batch jobs in Google's console."""

    name = "Gemini batch job"

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        """Keep ``url`` for the UI (the task's XCom) and for the task's own end (``get_link``)."""
        context["ti"].xcom_push(key=cls().xcom_key, value=url)
        context["ti"].task.gemini_jobs_link = url  # the operator the try's end asks (context["task"] may be a copy)

    @staticmethod
    def no_jobs(context: Context) -> None:
        """Say that this try created no job (its rows went online, or were reused): nothing to link."""
        context["ti"].task.gemini_jobs_link = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The link the task kept (``persist``); else its XCom. Airflow asks this at the end of
        every try, in the task's own process, where a lookup of an XCom that is not there logs an
        ERROR line in a task that succeeded: the task says what it knows first."""
        known = getattr(operator, "gemini_jobs_link", None)
        if known is not None:
            return known
        from airflow.providers.common.compat.sdk import XCom  # the UI's, not a parse's

        return XCom.get_value(key=self.xcom_key, ti_key=ti_key) or ""
