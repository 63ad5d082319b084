"""GeminiBatchesPlugin: the Gemini batches page in the Airflow UI's navigation, registered by the
package's ``airflow.plugins`` entry point, so installing the provider is enough.

Airflow 3.1+ shows a plugin's ``external_views`` in its navigation and as tabs of a DAG run and a
task instance; 3.0 has no such views, so there the plugin adds nothing and the provider runs as
before, without the page.

Every Airflow process loads plugins (a task's, to call listeners), but only the API server serves
the page's app: elsewhere it is not imported, as FastAPI, the metadata models and the SDK would add
seconds to each start. Airflow has no API to tell which component loads a plugin; the check is the
one the official Edge provider makes (``RUNNING_ON_APISERVER``, providers/edge3/plugins).
"""

from __future__ import annotations

import sys

from airflow.providers.common.compat.sdk import AirflowPlugin
from packaging.version import Version

from airflow import __version__ as airflow_version

URL_PREFIX = "/gemini-batches"
HAS_EXTERNAL_VIEWS = Version(airflow_version).release >= (3, 1)
RUNNING_ON_APISERVER = (len(sys.argv) > 1 and sys.argv[1] == "api-server") or (
    len(sys.argv) > 2 and sys.argv[2].endswith("airflow/api_fastapi/main.py")
)


# The page scoped to the run or task instance the UI shows: Airflow fills in the placeholders
# (airflow/ui: the plugin's iframe view; the same names in 3.1 to 3.4).
RUN_SCOPE = "dag_id={DAG_ID}&run_id={RUN_ID}"
TASK_SCOPE = f"{RUN_SCOPE}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}"


class GeminiBatchesPlugin(AirflowPlugin):
    """The ``/gemini-batches`` app (``plugins.app``): its entry "Gemini batches" under Browse, and a
    "Gemini batch" tab on every DAG run and task instance, the same page scoped to its batch."""

    name = "gemini_batches"
    if HAS_EXTERNAL_VIEWS:
        external_views = [
            {"name": "Gemini batches", "href": f"{URL_PREFIX}/", "destination": "nav", "category": "browse",
             "url_route": "gemini-batches"},
            {"name": "Gemini batch", "href": f"{URL_PREFIX}/?{TASK_SCOPE}", "destination": "task_instance",
             "url_route": "gemini-batch"},
            {"name": "Gemini batch", "href": f"{URL_PREFIX}/?{RUN_SCOPE}", "destination": "dag_run",
             "url_route": "gemini-batch-run"},
        ]
        if RUNNING_ON_APISERVER:
            from gemini_batch_provider.plugins.app import app

            fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Gemini batches"}]
