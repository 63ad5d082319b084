"""Files API of the emulator, driven by the unmodified google-genai SDK (sync and client.aio)."""

from __future__ import annotations

import io
import urllib.request

import pytest
from google.genai import errors

pytestmark = pytest.mark.integration

NINE_MB = bytes(range(256)) * (9_000_000 // 256) + b"x" * (9_000_000 % 256)


def test_upload_get_download_delete_sync(client):
    uploaded = client.files.upload(file=io.BytesIO(b'{"a": 1}\n'), config={"mime_type": "jsonl", "display_name": "in"})
    assert uploaded.name.startswith("files/")
    assert uploaded.size_bytes == 9
    assert uploaded.display_name == "in"
    assert uploaded.state.value == "ACTIVE"
    assert client.files.get(name=uploaded.name).sha256_hash == uploaded.sha256_hash
    assert client.files.download(file=uploaded.name) == b'{"a": 1}\n'
    client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as info:
        client.files.get(name=uploaded.name)
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"


def test_multi_chunk_upload_sync_and_async(client):
    """9 MB crosses the SDK's 8 MiB chunk size, so the upload takes two chunks."""
    sync_file = client.files.upload(file=io.BytesIO(NINE_MB), config={"mime_type": "application/octet-stream"})
    assert client.files.download(file=sync_file.name) == NINE_MB

    async def upload_async():
        f = await client.aio.files.upload(file=io.BytesIO(NINE_MB), config={"mime_type": "application/octet-stream"})
        return f, await client.aio.files.download(file=f.name)

    import asyncio

    async_file, content = asyncio.run(upload_async())
    assert async_file.size_bytes == len(NINE_MB)
    assert content == NINE_MB


def test_upload_from_path_and_download_path_variants(client, emulator, tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text("line\n")
    uploaded = client.files.upload(file=str(path), config={"mime_type": "jsonl"})
    file_id = uploaded.name.removeprefix("files/")
    # The REST docs' download path, besides the SDK's own /v1beta/files/ID:download.
    url = f"{emulator.base_url}/download/v1beta/files/{file_id}:download?alt=media"
    request = urllib.request.Request(url, headers={"x-goog-api-key": "any"})
    with urllib.request.urlopen(request) as response:
        assert response.read() == b"line\n"


def test_list_pages_sync_and_async(client):
    names = {client.files.upload(file=io.BytesIO(b"x"), config={"mime_type": "text/plain"}).name for _ in range(5)}
    pager = client.files.list(config={"page_size": 2})
    assert len(pager.page) == 2  # the first page only; iterating fetches the others
    assert {f.name for f in pager} == names

    async def list_async():
        return {f.name async for f in await client.aio.files.list(config={"page_size": 2})}

    import asyncio

    assert asyncio.run(list_async()) == names


async def test_async_get_and_delete(client):
    uploaded = await client.aio.files.upload(file=io.BytesIO(b"abc"), config={"mime_type": "text/plain"})
    assert (await client.aio.files.get(name=uploaded.name)).size_bytes == 3
    await client.aio.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as info:
        await client.aio.files.get(name=uploaded.name)
    assert info.value.code == 404
