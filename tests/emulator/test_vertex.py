"""The emulator's Vertex AI side, driven by the unmodified SDK in ``vertexai=True`` mode with a
service-account key whose ``token_uri`` is the emulator (the real google-auth token exchange)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google import genai
from google.genai import errors, types
from google.oauth2 import service_account

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"


def service_account_info(token_uri: str) -> dict[str, str]:
    """A service-account key as Google hands it out, with a fresh RSA key, for ``token_uri``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "emu-project", "private_key_id": "k1", "private_key": pem,
            "client_email": "airflow@emu-project.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}


@pytest.fixture
def vertex_client(emulator):
    credentials = service_account.Credentials.from_service_account_info(
        service_account_info(f"{emulator.base_url}/token"), scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return genai.Client(vertexai=True, project="emu-project", location="us-central1", credentials=credentials,
                        http_options=types.HttpOptions(base_url=emulator.base_url))


async def test_generate_content_through_vertex_paths_sync_and_async(vertex_client):
    answer = vertex_client.models.generate_content(model=MODEL, contents="Vertex works. It answers.")
    assert answer.text and answer.usage_metadata.total_token_count > 0
    answer = await vertex_client.aio.models.generate_content(model=MODEL, contents="Async too. Also fine.")
    assert answer.text
    assert vertex_client.models.count_tokens(model=MODEL, contents="four words right here").total_tokens > 0


def test_vertex_paths_want_a_bearer_token(emulator):
    import urllib.error
    import urllib.request

    url = f"{emulator.base_url}/v1beta1/projects/p/locations/l/publishers/google/models/{MODEL}:generateContent"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=b"{}", method="POST"))
    assert refused.value.code == 401


def test_an_api_key_client_is_unaffected(client):
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model="no-such-model", contents="x")
    assert client.models.generate_content(model=MODEL, contents="Still fine. Yes.").text


def test_base_models_are_listed_for_vertex(vertex_client):
    names = [m.name for m in vertex_client.models.list(config={"query_base": True, "page_size": 50})]
    assert any(name.endswith("gemini-2.5-flash") for name in names)
