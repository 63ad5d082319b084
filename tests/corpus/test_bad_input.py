"""The bad-input corpus: what real users get wrong, each refused with a message naming the row or
parameter and the fix, before anything is uploaded or billed (the emulator saw no file, no job and
no generateContent call).

Parameters are refused when the DAG is parsed (the operator's constructor); rows, files, models and
output paths when the task runs, before its first upload or call.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gemini_batch_provider.operators.batch import GeminiBatchOperator
from gemini_batch_provider.operators.concurrent import GeminiConcurrentGenerateOperator
from gemini_batch_provider.operators.embed import GeminiConcurrentEmbedOperator

pytestmark = pytest.mark.integration

GOOD = [{"id": "a", "text": "First row."}, {"id": "b", "text": "Second row."}]
BASE = {"prompt_template": "Summarize: {text}", "key_field": "id"}

# (case, constructor keyword arguments, message parts): refused when the DAG is parsed.
BAD_PARAMETERS = [
    ("records and input_path", {"records": GOOD, "input_path": "/x.jsonl"}, ["exactly one of records= or input_path="]),
    ("empty template", {"records": GOOD, "prompt_template": " "}, ["prompt_template is empty", "give a template"]),
    ("positional template field", {"records": GOOD, "prompt_template": "Say {0}"}, ["plain names like {text}"]),
    ("unbalanced template brace", {"records": GOOD, "prompt_template": "Say {text"},
     ["does not parse", "write a literal brace doubled, '{{'", "{% raw %}"]),
    ("response_schema not a schema", {"records": GOOD, "response_schema": "json please"},
     ["response_schema must be a pydantic model class or a JSON schema dict"]),
    ("invalid response_schema", {"records": GOOD, "response_schema": {"type": "objekt"}},
     ["response_schema is not a valid JSON schema", "'objekt' is not valid"]),
    ("schema given twice", {"records": GOOD, "response_schema": {"type": "object"},
                            "generation_config": {"response_schema": {"type": "object"}}}, ["give the schema once"]),
    ("invalid generation_config", {"records": GOOD, "generation_config": {"temperature": "hot"}},
     ["generation_config is not a valid GenerationConfig", "temperature", "ai.google.dev/api/generate-content"]),
    ("zero requests per job", {"records": GOOD, "max_requests_per_job": 0},
     ["max_requests must be a positive whole number, got 0", "per-job limits"]),
    ("job file over the Files API limit", {"records": GOOD, "max_bytes_per_job": 3_000_000_000},
     ["max_bytes must be at most 2000000000", "2 GB a file"]),
    ("fractional tokens per job", {"records": GOOD, "max_tokens_per_job": 10.5},
     ["max_tokens must be a positive whole number, got 10.5"]),
    ("negative poll interval", {"records": GOOD, "poll_interval": -1}, ["0 < poll_interval <= max_poll_interval"]),
    ("poll interval over its maximum", {"records": GOOD, "poll_interval": 600, "max_poll_interval": 60},
     ["got 600 and 60"]),
    ("absurd poll interval", {"records": GOOD, "poll_interval": 60, "max_poll_interval": 10**7},
     ["<= 86400.0 (a day)"]),
    ("deadline past the job lifetime", {"records": GOOD, "deadline": 72 * 3600},
     ["deadline must be positive seconds and at most 172800", "expires by itself"]),
    ("negative budget", {"records": GOOD, "max_cost_usd": -1}, ["max_cost_usd must be a finite number", "got -1"]),
    ("budget that is not a number", {"records": GOOD, "max_cost_usd": float("nan")},
     ["max_cost_usd must be a finite number of US dollars, zero or more, got nan"]),
    ("unknown mode", {"records": GOOD, "mode": "fast"}, ["mode must be one of ('batch', 'online', 'flex', 'auto')"]),
    ("zero online concurrency", {"records": GOOD, "online_concurrency": 0},
     ["concurrency must be a positive finite number, got 0"]),
    ("absurd online concurrency", {"records": GOOD, "online_concurrency": 1_000_000},
     ["concurrency must be at most 1000", "map the task instead"]),
    ("negative online threshold", {"records": GOOD, "mode": "auto", "online_threshold": -5},
     ["online_threshold must be a whole number of rows, zero or more, got -5"]),
    ("unknown conversion in the template", {"records": GOOD, "prompt_template": "Say {text!z}"},
     ["prompt_template field {text!z}: unknown conversion '!z'", "use !r, !s, !a or none"]),
    ("a field inside a format spec", {"records": GOOD, "prompt_template": "Say {text:>{width}}"},
     ["a format spec can't hold another field"]),
    ("JSON example in the template, unwrapped",
     {"records": GOOD, "prompt_template": 'Answer as {{"summary": 1}}: {text}'},
     ["prompt_template is not valid Jinja, which Airflow renders first", "{% raw %}"]),
    ("JSON example in the template, single braces", {"records": GOOD, "prompt_template": 'Answer as {"summary": 1}'},
     ["fields must be plain names like {text}", "{% raw %}", "system_instruction"]),
    ("infinite tokens a minute", {"records": GOOD, "online_tpm": float("inf")},
     ["tpm must be a positive finite number, got inf"]),
    ("price that is not a number", {"records": GOOD, "prices": {"gemini-2.5-flash": {"input": float("nan"),
                                                                                     "output": 1, "cached": 0}}},
     ["prices['gemini-2.5-flash'] is not a price", "input must be a finite number", "got nan"]),
    ("price without its cached rate", {"records": GOOD, "prices": {"gemini-2.5-flash": {"input": 1, "output": 2}}},
     ["prices['gemini-2.5-flash'] is not a price", "'cached'"]),
]


@pytest.mark.parametrize(("case", "kwargs", "message"), BAD_PARAMETERS, ids=[c[0] for c in BAD_PARAMETERS])
def test_a_bad_parameter_is_refused_when_the_dag_is_parsed(case, kwargs, message, tmp_path):
    with pytest.raises(ValueError) as refused:
        GeminiBatchOperator(task_id="t", output_path=str(tmp_path / "out.jsonl"), **{**BASE, **kwargs})
    assert all(part in str(refused.value) for part in message), str(refused.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_attempts": 2.5}, "max_attempts must be a whole number"),
    ({"request_timeout": 0}, "request_timeout_s must be a positive finite number"),
    ({"rpm": True}, "rpm must be a positive finite number, got True"),
])
def test_a_bad_online_setting_is_refused_when_the_dag_is_parsed(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        GeminiConcurrentGenerateOperator(task_id="t", records=GOOD, output_path=str(tmp_path / "o.jsonl"),
                                         **BASE, **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"output_dimensionality": -3}, "output_dimensionality must be a positive integer, got -3"),
    ({"media_fields": ["text"]}, "the embeddings operators embed text; media_fields are for"),
])
def test_a_bad_embedding_setting_is_refused_when_the_dag_is_parsed(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        GeminiConcurrentEmbedOperator(task_id="t", records=GOOD, output_path=str(tmp_path / "o.jsonl"),
                                      **BASE, **kwargs)


def _file(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def _jsonl(*records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


# Stand-ins for paths made in the test's own folder: the input itself, a link to it, the input under
# the keys file's name beside output_path, and a FIFO (a read of which would wait for a writer for ever).
SAME_AS_INPUT, LINK_TO_INPUT, KEYS_ARE_INPUT = "<input>", "<link to input>", "<keys file is input>"
FIFO_MEDIA = "<records with a FIFO photo>"

# (case, input: records list or (file name, bytes), extra kwargs, message parts): refused at run time.
BAD_RUNS = [
    ("duplicate keys", [*GOOD, {"id": "a", "text": "again"}], {}, ["row 2: key 'a' already used by row 0"]),
    ("missing template field", [{"id": "a", "body": "x"}], {},
     ["row 0 (key 'a'): field 'text' used by prompt_template is missing or null", "add it to the record"]),
    ("null template field", [*GOOD, {"id": "c", "text": None}], {},
     ["row 2 (key 'c'): field 'text'", "missing or null"]),
    ("nested object where text is expected", [{"id": "a", "text": {"title": "x"}}], {},
     ["row 0 (key 'a'): field 'text' is a dict", "flatten it into text"]),
    ("list where text is expected", [*GOOD, {"id": "c", "text": ["x", "y"]}], {},
     ["row 2 (key 'c'): field 'text' is a list"]),
    ("empty prompt", [{"id": "a", "text": ""}], {"prompt_template": "{text}"},
     ["row 0 (key 'a'): the prompt is empty"]),
    ("whitespace prompt", [*GOOD, {"id": "c", "text": " \n\t "}], {"prompt_template": "{text}"},
     ["row 2 (key 'c'): the prompt is empty", "drop it"]),
    ("missing key", [*GOOD, {"text": "no id"}], {}, ["row 2: key field 'id' is missing or blank"]),
    ("unpaired surrogate", [{"id": "a", "text": "broken \ud800 text"}], {},
     ["row 0 (key 'a'): the prompt holds '\\ud800'", "unpaired surrogate", "how the input was decoded"]),
    ("non-UTF-8 bytes", ("in.jsonl", _jsonl(*GOOD) + b'{"id": "c", "text": "caf\xe9"}\n'), {},
     ["in.jsonl, line 3: not UTF-8", "save the file as UTF-8"]),
    ("binary line", ("in.jsonl", _jsonl(*GOOD) + b"\x00\x01\x02\xff\xfe\n"), {}, ["in.jsonl, line 3: not UTF-8"]),
    ("malformed JSONL line", ("in.jsonl", _jsonl(GOOD[0]) + b'{"id": "b", "text": \n'), {},
     ["in.jsonl, line 2: not valid JSON", "fix or remove the line"]),
    ("JSONL line that is no object", ("in.jsonl", _jsonl(GOOD[0]) + b'["b", "text"]\n'), {},
     ["in.jsonl, line 2: expected a JSON object, got list"]),
    ("CSV row with too many cells", ("in.csv", b"id,text\na,fine\nb,one,two\n"), {},
     ["in.csv, line 3: more cells than the header has columns", "quote cells"]),
    ("CSV row with broken quoting", ("in.csv", b'id,text\na,fine\nb,"open"quote\n'), {},
     ["in.csv, line 3: not valid CSV", "fix the quoting"]),
    ("CSV not UTF-8", ("in.csv", b"id,text\na,caf\xe9\n"), {}, ["in.csv, line 2: not UTF-8"]),
    ("unknown extension", ("in.txt", b"id,text\n"), {}, ["unknown extension '.txt'", "use .jsonl or .csv"]),
    ("input file missing", ("/nowhere/in.jsonl", None), {}, ["does not exist", "pass a local .jsonl or .csv"]),
    ("row over the per-job size", [*GOOD, {"id": "big", "text": "x" * 5000}], {"max_bytes_per_job": 2000},
     ["row with key 'big': its request takes", "more than max_bytes"]),
    ("row over the per-job tokens", [*GOOD, {"id": "long", "text": "word " * 4000}], {"max_tokens_per_job": 1000},
     ["row with key 'long'", "more than max_tokens (1000)"]),
    ("unknown model", GOOD, {"model": "gemini-9-ultra"},
     ["model 'gemini-9-ultra' is not known to the API", "Test button"]),
    ("blank model", GOOD, {"model": " "}, ["model must be a model id such as 'gemini-2.5-flash'"]),
    ("model id that climbs out of models/", GOOD, {"model": "../files/abc"},
     ["model must be a model id", "got '../files/abc'"]),
    ("embedding model asked for text", GOOD, {"model": "gemini-embedding-001"},
     ["model 'gemini-embedding-001' does not do generateContent"]),
    ("output_path climbing out with ..", GOOD, {"output_path": "/tmp/results/../../etc/out.jsonl"},
     ["climbs out of its folder with '..'"]),
    ("relative output_path", GOOD, {"output_path": "results/out.jsonl"}, ["is relative", "absolute path"]),
    ("output_path that is a folder", GOOD, {"output_path": "/tmp"}, ["is a folder; name the results file"]),
    ("output_path that is the input", ("in.jsonl", _jsonl(*GOOD)), {"output_path": SAME_AS_INPUT},
     ["output_path is input_path", "write over its own input", "a path of their own"]),
    ("output_path that is the input through a link", ("in.jsonl", _jsonl(*GOOD)), {"output_path": LINK_TO_INPUT},
     ["output_path is input_path"]),
    ("keys file beside output_path that is the input", ("r.jsonl.gemini-batch-keys.jsonl", _jsonl(*GOOD)),
     {"output_path": KEYS_ARE_INPUT}, ["the keys file beside output_path is input_path"]),
    ("CSV header naming a column twice", ("in.csv", b"id,text,text\na,one,two\n"), {},
     ["in.csv, line 1: the header names column(s) ['text'] more than once", "rename the columns"]),
    ("format spec that does not fit a CSV cell", ("in.csv", b"id,n\na,5\n"), {"prompt_template": "Count {n:d}"},
     ["row 0 (key 'a'): field 'n' (str '5') does not fit its format spec {n:d}", "CSV cells are text"]),
    ("format spec that does not fit a value", [{"id": "a", "text": "x", "n": 2.5}], {"prompt_template": "{text} {n:d}"},
     ["row 0 (key 'a'): field 'n' (float '2.5') does not fit its format spec {n:d}"]),
    ("key that is an object", [{"id": {"a": 1}, "text": "x"}], {}, ["row 0: key field 'id' is a dict",
                                                                     "a string or a whole number"]),
    ("key that is blank", [*GOOD, {"id": "  ", "text": "x"}], {}, ["row 2: key field 'id' is missing or blank"]),
    ("key that is a boolean", [{"id": True, "text": "x"}], {}, ["row 0: key field 'id' is a bool"]),
    ("Jinja name that is no Airflow value", GOOD, {"prompt_template": "Keep {{literal}} {text}"},
     ["did not render with Airflow's Jinja: 'literal' is undefined", "filled in for a try of a DAG run only",
      "single braces", "{% raw %}"]),
    ("media field naming a FIFO", FIFO_MEDIA, {"prompt_template": "Describe {photo}", "media_fields": ["photo"]},
     ["row 0, field 'photo'", "is not a regular file", "FIFO"]),
    ("input_path naming a FIFO", ("FIFO", None), {}, ["is not a regular file"]),
    ("unwritable output_path", GOOD, {"output_path": "/proc/gemini/out.jsonl"},
     ["the results can't be written at '/proc/gemini/out.jsonl'", "a folder the worker can write to"]),
    ("output_path under a file", GOOD, {"output_path": "/etc/passwd/results/out.jsonl"},
     ["the results can't be written at '/etc/passwd/results/out.jsonl': /etc/passwd is a file, not a folder"]),
]

OPERATORS = {
    "batch": (GeminiBatchOperator, {"poll_interval": 0.2}),
    "online": (GeminiConcurrentGenerateOperator, {}),
}


# Every case on both paths, but the per-job limits, which only batch jobs have.
RUNS = [(path, *case) for case in BAD_RUNS for path in OPERATORS
        if path == "batch" or not any(k.startswith("max_") for k in case[2])]


@pytest.mark.parametrize(("path", "case", "given", "kwargs", "message"), RUNS, ids=[f"{c[1]}-{c[0]}" for c in RUNS])
def test_a_bad_run_fails_before_anything_is_uploaded_or_billed(case, given, kwargs, message, path, airflow_db, emulator,
                                                              client, gemini_conn, tmp_path):
    import pendulum
    from airflow.sdk import DAG

    from tests.dagbag import recording_failures, test_dag

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    if given == ("FIFO", None):
        source = {"input_path": str(fifo.rename(tmp_path / "in.jsonl"))}
    elif isinstance(given, tuple):
        name, content = given
        source = {"input_path": name if content is None else _file(tmp_path, name, content)}
    elif given == FIFO_MEDIA:
        source = {"records": [{"id": "a", "photo": str(fifo)}]}
    else:
        source = {"records": given}
    stand_ins = {SAME_AS_INPUT: source.get("input_path"), LINK_TO_INPUT: str(tmp_path / "link.jsonl"),
                 KEYS_ARE_INPUT: str(tmp_path / "r.jsonl")}
    if kwargs.get("output_path") == LINK_TO_INPUT:
        (tmp_path / "link.jsonl").symlink_to(source["input_path"])
    kwargs = {**kwargs, **({"output_path": stand_ins[kwargs["output_path"]]} if kwargs.get("output_path") in stand_ins
                           else {})}
    before = Path(source["input_path"]).read_bytes() if Path(source.get("input_path", "/")).is_file() else None
    operator, options = OPERATORS[path]
    task = recording_failures(operator)
    with DAG(dag_id="bad_input", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        task(task_id="t", **{**BASE, **options, "output_path": str(tmp_path / "out" / "results.jsonl"),
                             "retries": 1, **source, **kwargs})
    dag_run = test_dag(dag, tmp_path / "no-dags")
    # Failed on its first try although it may retry: bad input is an AirflowFailException.
    [ti] = dag_run.get_task_instances()
    assert dag_run.state == "failed" and ti.state == "failed" and ti.try_number == 1
    [error] = task.errors
    assert all(part in error for part in message), error
    # Nothing reached the API that could be billed or left behind, and no results file was made.
    assert list(client.files.list()) == [] and list(client.batches.list()) == []
    assert emulator.state.counters["ok"] == 0
    assert not (tmp_path / "out" / "results.jsonl").exists()
    if before is not None:  # the input is as it was, for the next try
        assert Path(source["input_path"]).read_bytes() == before
