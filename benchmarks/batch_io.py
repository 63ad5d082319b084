"""Benchmark of the batch path's input and output handling at scale, against the emulator.

For each size (100k and 400k rows, a prompt of about 1 KB each), in a fresh child process:
``build_upload``: an input JSONL file of records (written before the clock starts) read ->
checked requests -> sharded JSONL files -> uploaded through the Files API (the SDK's resumable
upload); ``download_parse``: a batch output file of one answer per row
(put on the emulator beforehand, as a finished job leaves it) streamed down and joined by key into
the results file. Prints one JSON object per size on stdout: ``rows``,
``build_upload_rows_per_s``, ``download_parse_rows_per_s``, ``peak_rss_mb`` (the child's peak
resident memory), ``input_mb``.

    .venv/bin/python benchmarks/batch_io.py [--rows 100000 --rows 400000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from online import Emulator  # the same emulator process helper

SIZES = (100_000, 400_000)
WORDS = ("batch", "model", "token", "request", "answer", "record", "stream", "memory", "quota", "result")
TEXT = " ".join(WORDS[j % len(WORDS)] for j in range(150)) + "."  # about 1 KB


def records(rows: int) -> Iterator[dict[str, Any]]:
    for i in range(rows):
        yield {"id": f"row-{i:07d}", "text": f"Row {i}. {TEXT[i % len(WORDS):]}"}


def output_line(key: str) -> bytes:
    response = {
        "candidates": [{"content": {"parts": [{"text": f"A summary of {key}."}], "role": "model"},
                        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 260, "candidatesTokenCount": 8, "totalTokenCount": 268},
        "modelVersion": "gemini-2.5-flash",
    }
    return (json.dumps({"response": response, "key": key}) + "\n").encode()


def child(rows: int, base_url: str) -> dict[str, Any]:
    from google import genai
    from google.genai import types

    from gemini_batch_provider.core.limits import ShardLimits
    from gemini_batch_provider.core.records import iter_records
    from gemini_batch_provider.core.requests import RequestSpec, build_requests
    from gemini_batch_provider.core.results import ResultsWriter, join_results
    from gemini_batch_provider.core.shards import KEYS_FILE, read_keys, write_shards

    options = types.HttpOptions(base_url=base_url, retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key="bench", http_options=options)
    spec = RequestSpec(prompt_template="Summarize: {text}", key_field="id")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        source = folder / "records.jsonl"
        with source.open("wb") as out:
            for record in records(rows):
                out.write(json.dumps(record).encode() + b"\n")
        started = time.monotonic()
        written = write_shards(build_requests(iter_records(source), spec), folder / "in", ShardLimits())
        for shard in written.shards:
            client.files.upload(file=str(shard.path), config={"mime_type": "jsonl"})
        build_upload = time.monotonic() - started
        input_mb = sum(s.size_bytes for s in written.shards) / 1e6
        for shard in written.shards:
            shard.path.unlink()  # type: ignore[union-attr]

        # The output a finished job leaves, put on the emulator before the clock starts.
        output = folder / "output.jsonl"
        with output.open("wb") as out:
            for record in records(rows):
                out.write(output_line(record["id"]))
        remote = client.files.upload(file=str(output), config={"mime_type": "jsonl"}).name
        output.unlink()

        started = time.monotonic()
        client.files.download(file=remote, destination=str(output))
        writer = ResultsWriter(folder / "results.jsonl")
        with output.open("rb") as lines:
            keys = read_keys(folder / "in" / KEYS_FILE, [s.requests for s in written.shards])  # as landing reads them
            join_results(keys, lines, writer)
        writer.close()
        download_parse = time.monotonic() - started
        assert writer.counts["succeeded"] == rows, writer.counts
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "build_upload_rows_per_s": round(rows / build_upload),
            "download_parse_rows_per_s": round(rows / download_parse), "peak_rss_mb": round(peak_mb, 1),
            "input_mb": round(input_mb, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the emulator URL, in a child process
    args = parser.parse_args()
    if args.child:
        # The JSON line alone on stdout: the SDK's log lines (httpx's requests) go to stderr.
        results = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        print(json.dumps(child(args.rows[0], args.child)), file=results, flush=True)
        return
    emulator = Emulator({"latency": 0, "emulator": []})
    try:
        for rows in args.rows or SIZES:
            subprocess.run([sys.executable, __file__, "--rows", str(rows), "--child", emulator.url], check=True)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
