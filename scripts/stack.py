"""A real Airflow deployment on this machine, for the demo and the end-to-end tests.

Starts the Gemini API emulator (with a Cloud Storage emulator for Vertex AI) and the Airflow 3
components (api-server, scheduler, dag-processor, triggerer; LocalExecutor on SQLite) as separate
processes under one AIRFLOW_HOME, triggers DAG runs through the REST API and watches them. Every
process is stopped when the ``Stack`` context exits.

``Stack(..., distributed=True)`` runs the topology of docker-compose.yaml instead: a fresh database
on the PostgreSQL server on loopback, CeleryExecutor with Redis on loopback as the broker, a Celery
worker and two triggerers. ``Stack(..., postgres=True)`` keeps LocalExecutor on such a database.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from gemini_batch_provider.emulator import free_port

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
# For a stack whose tests make all its runs: the scheduler makes none of its own (neither the nightly
# DAG's scheduled run as it comes on, a full run of its own, nor runs on asset events); runs
# triggered through the API still run.
NO_SCHEDULED_RUNS = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}


def services_reachable() -> list[str]:
    """The loopback services of the distributed topology that do not answer (empty: all do)."""
    down = []
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            down.append(f"{name} on 127.0.0.1:{port}")
    return down


def postgres_admin(statement: str) -> None:
    """Run ``statement`` on the PostgreSQL server's ``postgres`` database, outside a transaction (as
    CREATE and DROP DATABASE must be)."""
    import psycopg2

    conn = psycopg2.connect(f"{POSTGRES}/postgres")
    conn.autocommit = True
    try:
        conn.cursor().execute(statement)
    finally:
        conn.close()


class Stack:
    """Emulator + Airflow components under ``home``; use as a context manager.

    ``api_key`` and ``base_url`` configure the ``gemini_default`` connection: by default a made-up
    key and the emulator this stack starts; a real key and ``base_url=None`` target real Gemini
    (then no emulator is started).
    """

    COMPONENTS = ("scheduler", "dag-processor", "triggerer")

    def __init__(self, home: Path, *, api_key: str = "emulator-demo-key", use_emulator: bool = True,
                 env: dict[str, str] | None = None, emulator_args: tuple[str, ...] = (),
                 dags_folder: Path = REPO / "dags", distributed: bool = False,
                 users: dict[str, str] | None = None, postgres: bool = False) -> None:
        self.home = home.resolve()
        self.users = users or {}
        self.distributed = distributed
        self.postgres = postgres or distributed
        # One database and one Celery queue per stack: runs side by side share the servers only.
        self.name = f"gemini_e2e_{secrets.token_hex(4)}"
        self.logs = self.home / "process-logs"
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.emulator_url = f"http://127.0.0.1:{free_port()}" if use_emulator else None
        self.emulator_args = emulator_args
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.argv: dict[str, list[str]] = {}
        self._token: str | None = None
        self.started: set[str] = set()  # the components start() ran (see restore)
        extra = {"base_url": self.emulator_url} if self.emulator_url else {}
        self.gcs_url = f"http://127.0.0.1:{free_port()}" if use_emulator else None
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            **self._users_env(),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # the connection form's Test button
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            **(self._postgres_env() if self.postgres else {}),
            **(self._distributed_env() if distributed else {}),
            # Airflow 3.3.2 can fail a task whose trigger fires within seconds of deferral (a
            # scheduler/triggerer race); a 1 s worker heartbeat avoids it (see reference notes).
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The DAG files do not change while a stack runs: parsing each again every 30 s (Airflow's
            # default) cost the dag-processor 5 s of CPU a minute, importing the provider each time.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            # The host too: common.ai's @task.llm_batch reads the base URL there.
            "AIRFLOW_CONN_GEMINI_DEFAULT": json.dumps({"conn_type": "gemini", "password": api_key, "extra": extra,
                                                       **({"host": self.emulator_url} if self.emulator_url else {})}),
            **(self._vertex_env() if use_emulator else {}),
            "GEMINI_BATCH_OUTPUT_DIR": str(self.home / "results"),
            "GEMINI_BATCH_POLL_INTERVAL": "2",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    def _users_env(self) -> dict[str, str]:
        """Every request an admin's (Airflow's simple auth manager, all admins), or, with ``users``
        (``{name: role}``), only a signed-in user's, under the FAB auth manager, whose roles
        (``Admin``, ``Viewer``... or one of the test's, see ``grant``) can be limited to some DAGs.
        Each user's password is ``<name>-password``."""
        if self.users:
            return {"AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"}
        return {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}

    def _vertex_env(self) -> dict[str, str]:
        """The ``gemini_vertex`` connection (a fresh service-account key whose token exchange the
        emulator answers) and the Cloud Storage emulator, for the Vertex AI example DAG."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        key = {"type": "service_account", "project_id": "emulator-project", "private_key_id": "emulator",
               "private_key": pem, "client_email": "airflow@emulator-project.iam.gserviceaccount.com",
               "client_id": "1", "token_uri": f"{self.emulator_url}/token"}
        extra = {"vertexai": True, "project": "emulator-project", "location": "us-central1",
                 "base_url": self.emulator_url}
        return {
            "AIRFLOW_CONN_GEMINI_VERTEX": json.dumps({"conn_type": "gemini", "password": json.dumps(key),
                                                      "extra": extra}),
            "STORAGE_EMULATOR_HOST": str(self.gcs_url),
            "GEMINI_VERTEX_STAGING_URI": "gs://gemini-batch-staging/airflow",
        }

    @property
    def _database_url(self) -> str:
        # psycopg2 named: SQLAlchemy 2.1 takes a bare postgresql:// URL to mean psycopg 3.
        return f"{POSTGRES.replace('postgresql', 'postgresql+psycopg2')}/{self.name}"

    def _postgres_env(self) -> dict[str, str]:
        return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._database_url}

    def _distributed_env(self) -> dict[str, str]:
        database = self._database_url
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": REDIS,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.name,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query on the metadata database (PostgreSQL stacks only)."""
        import psycopg2

        with psycopg2.connect(f"{POSTGRES}/{self.name}") as conn, conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    # --- processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("ab")
        self.argv[name] = argv
        # Each triggerer serves its logs on a port of its own (two on one machine would collide).
        env = {**self.env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        self.procs[name] = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.home,
        )

    def start_emulators(self) -> None:
        """Start the Gemini API emulator and the Cloud Storage emulator (no-op for real Gemini)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if self.emulator_url:
            port = self.emulator_url.rsplit(":", 1)[1]
            # Its state lives in a folder, so that a restarted emulator carries on where it stopped.
            self._spawn("gcs-emulator", [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port",
                                         str(self.gcs_url).rsplit(":", 1)[1], "--in-memory",
                                         "--default-bucket", "gemini-batch-staging"])
            self._spawn("emulator", [str(BIN / "gemini-batch-emulator"), "--port", port,
                                     "--data-dir", str(self.home / "emulator-data"), "--gcs-endpoint",
                                     str(self.gcs_url), *self.emulator_args])
            for url in (self.gcs_url, self.emulator_url):
                self._wait_listening(str(url))

    def _wait_listening(self, url: str, timeout: float = 60) -> None:
        host, port = url.removeprefix("http://").split(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"nothing listened on {url} after {timeout} s; logs in {self.logs}")

    def start(self) -> Stack:
        self.start_emulators()
        if self.postgres:
            postgres_admin(f"CREATE DATABASE {self.name}")
        self.airflow(["db", "migrate"], *self._user_commands())
        self._spawn("api-server", [str(BIN / "airflow"), "api-server", "--port", str(self.api_port),
                                   "--host", "127.0.0.1"])
        self._spawn("dag-processor", [str(BIN / "airflow"), "dag-processor"])
        # Tasks and triggers reach the Execution API as they start: what runs them starts once the
        # api-server listens (uvicorn listens once the app has started), so no call is retried.
        self._wait_listening(self.api_url)
        for name in self.COMPONENTS:
            if name not in self.procs:
                self._spawn(name, [str(BIN / "airflow"), name])
        if self.distributed:
            self.add_triggerer()
            self._spawn("celery-worker", [str(BIN / "airflow"), "celery", "worker", "--queues", self.name])
        self._wait_healthy()
        self.started = set(self.procs)
        return self

    def restore(self) -> None:
        """Put the components back as ``start`` left them: stop any added since (a second triggerer),
        start again any killed or exited, and wait until they serve."""
        for name in set(self.procs) - self.started:
            self._terminate([self.procs.pop(name)])
        for name in sorted(self.started):
            if name not in self.procs or self.procs[name].poll() is not None:
                self.restart(name)
        for url in (self.gcs_url, self.emulator_url):
            if url:
                self._wait_listening(url)
        self._wait_healthy()

    def kill(self, name: str) -> None:
        """SIGKILL a component (and its children), as a lost machine would end it."""
        proc = self.procs.pop(name)  # no longer watched by _check_alive
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def pause(self, name: str) -> None:
        """SIGSTOP a component (and its children): alive, but silent, as a stalled machine is."""
        os.killpg(self.procs[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGCONT)

    def restart(self, name: str) -> None:
        """Start a killed component again, as it was started."""
        self._spawn(name, self.argv[name])

    def add_triggerer(self, name: str = "triggerer-2") -> None:
        """Run one more triggerer beside the first (Airflow's HA setup)."""
        self._spawn(name, [str(BIN / "airflow"), "triggerer"])

    @staticmethod
    def _terminate(procs: list[subprocess.Popen[bytes]]) -> None:
        """Stop each process as a service manager would: SIGTERM to the process, which stops its own
        children; after 5 s, SIGTERM to its whole process group; after 30 s, SIGKILL to what is left.

        The process first: a triggerer whose trigger runner is signalled with it waits 10 s before it
        sees the runner gone, and signalled alone it stops in about a second. Then the group: a scheduler
        signalled alone now and then (once in five here) leaves its LocalExecutor workers running."""
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 25)):
            deadline = time.monotonic() + grace
            for proc in procs:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            for proc in procs:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:  # the group ended with its process
                    pass
        for proc in procs:
            proc.wait()

    def stop(self) -> None:
        self._terminate(list(self.procs.values()))
        if self.postgres:
            postgres_admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def __enter__(self) -> Stack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}; its log ends:\n{tail}")

    def _wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = self.get("/api/v2/monitor/health")
                components = ("metadatabase", "scheduler", "triggerer")
                if all(health.get(c, {}).get("status") == "healthy" for c in components):
                    return
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow was not healthy after {timeout} s; logs in {self.logs}")

    # --- REST API ----------------------------------------------------------------------------

    def _send(self, method: str, path: str, body: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def _request(self, method: str, path: str, body: Any = None, attempts: int = 5) -> Any:
        """One REST call. A 5xx is tried again (up to ``attempts`` times, 2 s apart): on SQLite the
        api-server answers 500 when the database stays locked by another component's write."""
        for _ in range(attempts - 1):
            try:
                return self._send(method, path, body)
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    raise
            time.sleep(2)
        return self._send(method, path, body)

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def status(self, path: str, headers: dict[str, str] | None = None) -> int:
        """The HTTP status of one ``GET path`` sent with exactly ``headers`` (none of the stack's own
        sign-in): for checking what the API server refuses, and how."""
        request = urllib.request.Request(self.api_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def post(self, path: str, body: Any) -> Any:
        return self._request("POST", path, body)

    # Airflow's own CLI, each command as ``airflow <argv>`` would run it, in one interpreter: a
    # separate ``airflow`` process per command costs 3-5 s of CPU to import Airflow and FAB again.
    _CLI = ("import json, sys\n"
            "from airflow.cli import cli_parser\n"
            "parser = cli_parser.get_parser()\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    args = parser.parse_args(argv)\n"
            "    args.func(args)\n")

    def airflow(self, *commands: list[str]) -> None:
        """Run ``airflow`` CLI commands (each an argv list, e.g. ``["db", "migrate"]``), in order, in
        the stack's environment; raises CalledProcessError if one fails."""
        subprocess.run([sys.executable, "-c", self._CLI, json.dumps(commands)], env=self.env, check=True,
                       cwd=self.home, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def _user_commands(self) -> list[list[str]]:
        """The commands that make ``users`` (none without): FAB's tables, the test's own roles, and
        each user with its role."""
        if not self.users:
            return []
        builtin = {"Admin", "Op", "User", "Viewer", "Public"}
        commands = [["fab-db", "migrate"]]
        commands += [["roles", "create", role] for role in sorted(set(self.users.values()) - builtin)]
        commands += [["users", "create", "--username", name, "--password", f"{name}-password", "--role", role,
                      "--email", f"{name}@example.com", "--firstname", name, "--lastname", "user"]
                     for name, role in self.users.items()]
        return commands

    def grant(self, role: str, resource: str, *actions: str) -> None:
        """Give a FAB ``role`` ``actions`` (``can_read``...) on ``resource`` (``DAG:<dag_id>``, which
        exists once the DAG is registered)."""
        self.airflow(["roles", "add-perms", role, "--resource", resource, "--action", *actions])

    def token(self, user: str | None = None) -> str:
        """A JWT: ``user``'s (one of ``users``), or an admin's without ``users``."""
        if not self.users:  # with SIMPLE_AUTH_MANAGER_ALL_ADMINS, GET /auth/token hands out an admin token
            return self._send("GET", "/auth/token", None)["access_token"]
        return self._send("POST", "/auth/token", {"username": user, "password": f"{user}-password"})["access_token"]

    def login(self, user: str | None = None) -> None:
        """Make the stack's own calls as ``user`` (the first of ``users`` when None)."""
        self._token = None
        self._token = self.token(user or next(iter(self.users), None))

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        self.login()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.get(f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} was not registered after {timeout} s; see {self.logs}/dag-processor.log")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run_id = f"manual__{time.strftime('%Y%m%dT%H%M%S')}_{secrets.token_hex(3)}"
        try:
            self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                          {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}})
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: an attempt answered 500 had created the run after all
                raise
        return run_id

    def wait_for_run_of_type(self, dag_id: str, run_type: str, timeout: float = 120) -> str:
        """The id of the first run of ``dag_id`` the scheduler made of ``run_type`` (``scheduled``,
        ``asset_triggered``), once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after")["dag_runs"]
            for run in runs:
                if run["run_type"] == run_type:
                    return run["dag_run_id"]
            time.sleep(0.5)
        raise TimeoutError(f"no {run_type} run of {dag_id} within {timeout} s; see {self.logs}/scheduler.log")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600, on_poll: Any = None) -> dict[str, Any]:
        """Poll the run every second until it ends; returns ``{"state", "task_states_seen"}``.

        ``task_states_seen`` maps each task id to the ordered distinct states it was seen in.
        """
        seen: dict[str, list[str]] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            for ti in self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
                states = seen.setdefault(ti["task_id"], [])
                if ti["state"] and (not states or states[-1] != ti["state"]):
                    states.append(ti["state"])
                    if on_poll:
                        on_poll(ti["task_id"], ti["state"])
            state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return {"state": state, "task_states_seen": seen}
            time.sleep(1)  # each poll costs the api-server about 30 ms of CPU
        raise TimeoutError(f"run {run_id} of {dag_id} did not end within {timeout} s")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.get(path)["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}?full_content=true"
        content = self.get(path)["content"]
        lines = []
        for item in content:
            if not isinstance(item, dict):
                lines.append(str(item))
                continue
            lines.append(str(item.get("event", item)))
            # An exception's type and message come in the line's error_detail.
            lines.extend(f"{e.get('exc_type')}: {e.get('exc_value')}" for e in item.get("error_detail") or [])
        return "\n".join(lines)

    def error_lines(self, dag_id: str, run_id: str) -> list[str]:
        """The lines at level ERROR or above in the logs of every try of every task of a run, and
        those naming the run in the components' own logs (where a task's Execution API client writes)."""
        found = [f"{path.name}: {line}" for path in sorted(self.logs.glob("*.log"))
                 for line in path.read_text(errors="replace").splitlines()
                 if run_id in line and re.search(r"\[(error|critical)\s*\]", line)]
        for ti in self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
            mapped = f"&map_index={ti['map_index']}" if ti["map_index"] >= 0 else ""
            for try_number in range(1, ti["try_number"] + 1):
                path = (f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{try_number}"
                        f"?full_content=true{mapped}")
                found += [f"{ti['task_id']}: {item.get('event')}" for item in self.get(path)["content"]
                          if isinstance(item, dict) and str(item.get("level", "")).lower() in ("error", "critical")]
        return found

    def trigger_logs(self, dag_id: str, run_id: str, task_id: str) -> list[Path]:
        """Log files the triggerer wrote for this task (proof it was deferred to the triggerer)."""
        folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return sorted(folder.glob("attempt=*.log.trigger.*.log"))
