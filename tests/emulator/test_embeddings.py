"""Embeddings through the real SDK: batch jobs (``batches.create_embeddings``) and online calls."""

from __future__ import annotations

import io
import json
import math
import warnings

import pytest
from google.genai import errors, types

from tests.conftest import wait_for_batch

pytestmark = pytest.mark.integration

MODEL = "gemini-embedding-001"


def _embed_request(text, size=None):
    return {"content": {"parts": [{"text": text}], "role": "user"},
            **({"outputDimensionality": size} if size else {})}


def test_an_embeddings_batch_answers_each_line_with_a_vector(client):
    lines = [{"key": "a", "request": _embed_request("cats purr", 16)}, {"key": "b", "request": _embed_request("x")},
             {"key": "c", "request": {"content": {"parts": "none"}}}]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    src = client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"}).name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.ExperimentalWarning)
        job = client.batches.create_embeddings(model=MODEL, src={"file_name": src}, config={"display_name": "emb"})
    assert job.display_name == "emb"
    job, states = wait_for_batch(client, job.name)
    assert states[-1] == "JOB_STATE_SUCCEEDED"
    out = [json.loads(line) for line in client.files.download(file=job.dest.file_name).splitlines()]
    assert [line["key"] for line in out] == ["a", "b", "c"]
    first, second = out[0]["response"]["embedding"]["values"], out[1]["response"]["embedding"]["values"]
    assert len(first) == 16 and len(second) == 3072  # the size asked for, else the model's default
    assert math.isclose(sum(v * v for v in first), 1.0, abs_tol=1e-4)
    assert out[2]["error"]["code"] == 3 and "status" not in out[2]["error"]  # gRPC INVALID_ARGUMENT, as live


def test_online_embeddings_and_the_methods_each_model_has(client):
    config = types.EmbedContentConfig(output_dimensionality=8, task_type="SEMANTIC_SIMILARITY")
    response = client.models.embed_content(model=MODEL, contents=["cats purr", "cats purr", "dogs bark"],
                                           config=config)
    vectors = [e.values for e in response.embeddings]
    assert len(vectors) == 3 and all(len(v) == 8 for v in vectors) and vectors[0] == vectors[1] != vectors[2]
    with pytest.raises(errors.ClientError, match="does not support generateContent"):
        client.models.generate_content(model=MODEL, contents="hi")
    with pytest.raises(errors.ClientError, match="does not support embedContent"):
        client.models.embed_content(model="gemini-2.5-flash", contents=["hi"])
