"""GeminiBatchesPlugin: the Gemini batches page in the Airflow UI's navigation, registered by the
package's ``airflow.plugins`` entry point, so installing the provider is enough.

Airflow 3.1+ shows a plugin's ``external_views`` in its navigation; 3.0 has no such views, so there
the plugin adds nothing and the provider runs as before, without the page.

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


class GeminiBatchesPlugin(AirflowPlugin):
    """The ``/gemini-batches`` app (``plugins.app``) and its entry "Gemini batches" under Browse."""

    name = "gemini_batches"
    if HAS_EXTERNAL_VIEWS:
        external_views = [{"name": "Gemini batches", "href": f"{URL_PREFIX}/", "destination": "nav",
                           "category": "browse", "url_route": "gemini-batches"}]
        if RUNNING_ON_APISERVER:
            from gemini_batch_provider.plugins.app import app

            fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Gemini batches"}]
