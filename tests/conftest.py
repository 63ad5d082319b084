"""Shared fixtures: an emulator on a free port, SDK clients pointed at it, an Airflow home in a tmp dir.

AIRFLOW_HOME and the metadata DB are set before anything imports Airflow, so tests never touch a
user's ~/airflow.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="gemini-batch-tests-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
DAGS_FOLDER = str(Path(__file__).parent / "airflow" / "dags")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = DAGS_FOLDER
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
# A key as long as the JWT library asks for (Airflow's own default is shorter and makes it warn).
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_hex(32)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"

import pytest  # noqa: E402
from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

from gemini_batch_provider.emulator import EmulatorConfig, EmulatorThread  # noqa: E402

API_KEY = "test-key-0123456789"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    """A fresh emulator whose batch jobs take 0.3 s pending and 0.5 s running."""
    with EmulatorThread(EmulatorConfig(batch_pending_s=0.3, batch_running_s=0.5, page_size=2)) as emu:
        yield emu


@pytest.fixture
def client(emulator: EmulatorThread) -> genai.Client:
    return genai.Client(
        api_key=API_KEY, http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1beta")
    )


@pytest.fixture
def gemini_conn(emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> str:
    """``gemini_default`` (as an environment connection) pointing at the emulator."""
    import json

    conn = {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": emulator.base_url}}
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_DEFAULT", json.dumps(conn))
    return "gemini_default"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in this session's AIRFLOW_HOME (for ``dag.test()``)."""
    import subprocess
    import sys

    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return Path(_AIRFLOW_HOME)


@pytest.fixture
def gcs(emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Cloud Storage emulator (gcp-storage-emulator) with a bucket ``bkt``, wired to the Gemini
    emulator's Vertex AI jobs and, through ``STORAGE_EMULATOR_HOST``, to google-cloud-storage."""
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from gemini_batch_provider.emulator import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    emulator.configure("vertex", gcs_endpoint=endpoint)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
    client = storage.Client(project="emu-project", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": endpoint})
    client.create_bucket("bkt")
    yield client
    server.stop()


# Files whose tests share a module-scoped stack or run: each goes to one worker whole.
ONE_WORKER_PER_FILE = ("tests/e2e/", "tests/examples/", "tests/airflow/test_lineage.py")

# The long ones first (seconds each took in the whole suite: four workers, 2 cores). A worker is handed
# its next file or test while it still has two tests to run, so the one-test files (whole stacks) come
# first, each with a long file queued behind it, and no long one waits behind another.
LONGEST_FIRST = (
    "tests/e2e/test_distributed.py",  # 76 s, one test
    "tests/test_fault_matrix.py",  # 77 s, one test, mostly waiting on its faults
    "tests/e2e/test_faults.py",  # 168 s
    "tests/e2e/test_example_dags.py",  # 136 s
    "tests/e2e/test_batches_page.py",  # 87 s, behind test_distributed
    "tests/examples/",  # 91 s, behind test_fault_matrix
    "tests/airflow/test_operator.py",  # 96 s in all, mostly waiting on its jobs
)

# --- helpers shared by test modules ------------------------------------------------------------

#: Seven records with keys and text, the input of most operator tests.
RECORDS = [{"id": f"doc-{i}", "text": f"Document {i} is about topic {i % 3}. It has two sentences."} for i in range(7)]


def service_account_info(token_uri: str) -> dict[str, str]:
    """A service-account key as Google hands it out, with a fresh RSA key, for ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "emu-project", "private_key_id": "k1", "private_key": pem,
            "client_email": "airflow@emu-project.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}


def vertex_conn(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorThread, conn_id: str = "gemini_vertex",
                **extra: Any) -> tuple[str, str]:
    """A Vertex AI connection (an environment connection) to the emulator, with a fresh
    service-account key whose token exchange the emulator answers; ``(conn_id, key JSON)``."""
    import json

    key = json.dumps(service_account_info(f"{emulator.base_url}/token"))
    extras = {"vertexai": True, "project": "emu-project", "location": "europe-west4", "base_url": emulator.base_url,
              **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}",
                       json.dumps({"conn_type": "gemini", "password": key, "extra": extras}))
    return conn_id, key


def wait_for_batch(client: genai.Client, name: str, timeout: float = 10) -> tuple[Any, list[str]]:
    """Poll batch job ``name`` until it is done (a condition, polled every 50 ms); the job and the
    states seen, in order. :raises TimeoutError: not done within ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        job = client.batches.get(name=name)
        if not states or states[-1] != job.state.value:
            states.append(job.state.value)
        if job.done:
            return job, states
        time.sleep(0.05)
    raise TimeoutError(name)


def run_dag(tmp_path, dag_id, records, registered=False):
    """Run ``dag_id`` through ``dag.test()`` on ``records``; ``registered``: write the DAGs to the
    metadata database first, as the dag-processor does (a DAG with assets needs it)."""
    import json

    from tests.dagbag import DagBag, register

    tmp_path.mkdir(exist_ok=True)
    source, output = tmp_path / "in.jsonl", tmp_path / "results.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))

    dagbag = DagBag(dag_folder=DAGS_FOLDER)
    if registered:
        register(dagbag)
    dag_run = dagbag.get_dag(dag_id).test(run_conf={"in": str(source), "out": str(output)})
    rows = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    return dag_run, rows


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest first, in the order of ``LONGEST_FIRST``, then the rest as collected (the workers
    take them in this order: ``--no-loadscope-reorder``)."""
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONGEST_FIRST))

    items.sort(key=rank)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With pytest-xdist workers (scripts/test.sh): each file of ``ONE_WORKER_PER_FILE`` is handed to
    one worker whole, and every other test on its own. A worker takes more as it nears the end of
    what it has, so the short tests fill in around the long files, and no long file starts last while
    the other workers sit idle. (xdist's own ``loadgroup`` would do this, but xdist 3.8 writes the
    group into ``item._nodeid``, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FilesOrTests(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::")[0]
            return file if file.startswith(ONE_WORKER_PER_FILE) else nodeid

    return FilesOrTests(config, log)
