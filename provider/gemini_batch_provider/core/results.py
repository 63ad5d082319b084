"""Landing results: the batch output file parsed as a stream and joined back to the input by key.

Every input key gets exactly one results row, whatever the output file holds: a row for each key
found (the first line wins if a key repeats), then a ``missing`` row for each input key the output
never mentioned. Lines for keys that were not in the input are counted and skipped. Result rows are
written as they are read; the keys are kept on disk (``KeyIndex``), so memory stays flat. Rows the
caller wants to run again online (``rerun``) are not written but handed back, so that each key
still lands once.

Results row (one JSON object per line)::

    {"key": str,
     "status": "succeeded" | "failed" | "invalid_output" | "missing" | "expired" | "cancelled",
     "path": "batch" | "online" | "flex" | "reused",
     "text": str | None, "parsed": JSON value | None, "embedding": [float] | None,
     "usage": {usage_metadata fields, and "service_tier" on the online paths} | None,
     "error": {code, message, status} | None,
     "finish_reason": "STOP" | "MAX_TOKENS" | "SAFETY" | ... | None, "thoughts": str | None,
     "images": [{"file": str, "mime_type": str}] | None,
     "request_digest": str | None, "answered_at": str, "reused_from": "batch" | "online" | "flex" | None}

``request_digest`` is the SHA-256 of the model and the request as sent (``core.answers``; None for
a row whose request has media, or whose request was never built); ``answered_at`` when the answer
landed (ISO 8601, UTC); a ``reused`` row (``path`` ``reused``) keeps the answer time, usage and
answer of the earlier run's row it was taken from, and ``reused_from`` names the path that paid for
it (None for rows answered by this run).

``text`` is the answer without its thought parts; ``thoughts`` their text, given when the request
asked for them (``thinking_config.include_thoughts``), else None. ``usage`` holds the
``usage_metadata`` counts (``thoughts_token_count`` among them) and, where the API gives them,
``prompt_tokens_details`` / ``candidates_tokens_details`` (``[{"modality", "token_count"}]``).

``images`` are the pictures of an image model's answer (``response_modalities`` with ``IMAGE``),
each landed as a file beside the results (``ResultsWriter.images_folder``) and named here by its
path or URL; None when the answer holds none. A row with pictures and no text succeeds, its
``text`` None.

``finish_reason`` is the first candidate's ``finishReason`` in the API's own words
(https://ai.google.dev/api/generate-content#FinishReason): ``MAX_TOKENS`` marks an answer cut at
``max_output_tokens``, which, given a ``response_schema``, lands ``invalid_output``.

``parsed`` is the answer parsed and validated against the operator's ``response_schema`` (None
without one, see ``core.schema``); ``embedding`` the vector of an embeddings row (None otherwise;
the API reports no token usage for embeddings).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import quote

import orjson

from .cost import ModelPrice, cost_usd
from .keys import NEW, UNKNOWN, KeyIndex
from .transient import error_status
from .vocabulary import RowPath, RowStatus

if TYPE_CHECKING:
    from google.genai import types

    from .answers import Digests

USAGE_FIELDS = (
    "prompt_token_count", "candidates_token_count", "thoughts_token_count",
    "cached_content_token_count", "total_token_count",
)
# Tokens by modality, kept where the API gives them: audio prompt and image answer tokens have prices of their own.
MODALITY_FIELDS = ("prompt_tokens_details", "candidates_tokens_details")


def _row(key: str, status: str, path: str, *, text: str | None = None, usage: dict[str, Any] | None = None,
         error: dict[str, Any] | None = None, embedding: list[float] | None = None,
         finish_reason: str | None = None, thoughts: str | None = None,
         images: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"key": key, "status": str(status), "path": str(path), "text": text, "parsed": None, "embedding": embedding,
            "usage": usage, "error": error, "finish_reason": finish_reason, "thoughts": thoughts, "images": images,
            "request_digest": None, "answered_at": None, "reused_from": None}


def now_iso() -> str:
    """The current time as ISO 8601 in UTC, to the second: a row's ``answered_at``."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _api_word(value: Any) -> str | None:
    """An SDK enum member (``FinishReason.SAFETY``) as the API's word (``SAFETY``)."""
    return None if value is None else str(getattr(value, "value", value))


def _error(message: str, status: str, code: int | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "status": status}


def _details(details: Any) -> list[dict[str, Any]]:
    """A ``*TokensDetails`` list (``ModalityTokenCount``) as ``[{"modality", "token_count"}]``."""
    found = []
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict):
            modality, count = item.get("modality"), item.get("tokenCount", item.get("token_count"))
        else:
            modality, count = _api_word(item.modality), item.token_count
        found.append({"modality": str(modality), "token_count": int(count or 0)})
    return found


def _usage(response: types.GenerateContentResponse) -> dict[str, Any] | None:
    meta = response.usage_metadata
    if meta is None:
        return None
    usage: dict[str, Any] = {name: getattr(meta, name) for name in USAGE_FIELDS if getattr(meta, name) is not None}
    for name in MODALITY_FIELDS:
        if getattr(meta, name):
            usage[name] = _details(getattr(meta, name))
    return usage


def embedding_row(key: str, path: str, values: Any) -> dict[str, Any]:
    """The row of an embedding: ``succeeded`` with its vector, or ``failed`` when it holds no numbers."""
    if not isinstance(values, list) or not values or not all(isinstance(v, (int, float)) for v in values):
        return error_row(key, path, "the response holds no embedding values", "INVALID_RESPONSE")
    return _row(key, RowStatus.SUCCEEDED, path, embedding=values)


def error_row(key: str, path: str, message: str, status: str, code: int | None = None) -> dict[str, Any]:
    """A ``failed`` results row for an error the API (or the transport) gave for this row."""
    return _row(key, RowStatus.FAILED, path, error=_error(message, status, code))


_TEXT_PART_FIELDS = frozenset({"text", "thought", "thoughtSignature"})
_WIRE_USAGE = {"promptTokenCount": "prompt_token_count", "candidatesTokenCount": "candidates_token_count",
               "thoughtsTokenCount": "thoughts_token_count", "cachedContentTokenCount": "cached_content_token_count",
               "totalTokenCount": "total_token_count"}
_WIRE_DETAILS = {"promptTokensDetails": "prompt_tokens_details", "candidatesTokensDetails": "candidates_tokens_details"}


def _wire_usage(meta: dict[str, Any]) -> dict[str, Any]:
    usage: dict[str, Any] = {_WIRE_USAGE[k]: int(v) for k, v in meta.items() if k in _WIRE_USAGE}
    usage.update({_WIRE_DETAILS[k]: _details(v) for k, v in meta.items() if k in _WIRE_DETAILS and v})
    return usage


def _plain_text_row(key: str, response: Any, path: str) -> dict[str, Any] | None:
    """The row of a response of the common shape (a first candidate made of text parts and plain
    int usage counts) read straight from the wire dict; None for any other shape.

    The same row the SDK's type gives (``GenerateContentResponse.text`` joins the first
    candidate's non-thought text parts), about five times faster: validating the SDK type costs
    ~20 us a row, a third of a million-row landing's time.
    """
    try:
        candidate = response["candidates"][0]
        parts = candidate["content"]["parts"]
        if not parts or any(not _TEXT_PART_FIELDS.issuperset(part) for part in parts):
            return None
        text = "".join(part["text"] for part in parts if "text" in part and not part.get("thought"))
        thoughts = "".join(part["text"] for part in parts if "text" in part and part.get("thought")) or None
        if not all(isinstance(part.get("text", ""), str) for part in parts) or not text:
            return None
        meta = response.get("usageMetadata")
        usage = None if meta is None else _wire_usage(meta)
        finish = candidate.get("finishReason")
        if finish is not None and not isinstance(finish, str):
            return None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    return _row(key, RowStatus.SUCCEEDED, path, text=text, usage=usage, finish_reason=finish, thoughts=thoughts)


def parse_output_line(item: dict[str, Any]) -> dict[str, Any]:
    """One output line as a results row: ``{"key", "response"}`` or ``{"key", "error"}`` (Gemini
    API), or ``{"key", "status", "response"}`` (Vertex AI; a non-empty ``status`` is the row's error)."""
    key = str(item.get("key"))
    if isinstance(item.get("status"), str) and item["status"]:
        return error_row(key, RowPath.BATCH, item["status"], "ROW_FAILED")
    if isinstance(item.get("error"), dict):  # gRPC code, often no status (core.transient)
        err = item["error"]
        code = err.get("code") if isinstance(err.get("code"), int) else None
        return error_row(key, RowPath.BATCH, str(err.get("message", "")), error_status(code, err.get("status")), code)
    response = item.get("response")
    if isinstance(response, dict) and "embedding" in response:  # an EmbedContentResponse
        embedding = response["embedding"]
        return embedding_row(key, RowPath.BATCH, embedding.get("values") if isinstance(embedding, dict) else None)
    return wire_response_row(key, RowPath.BATCH, response)


def wire_response_row(key: str, path: str, response: Any) -> dict[str, Any]:
    """The results row for a ``GenerateContentResponse`` as the wire's JSON gives it (``response_row``'s
    row): read straight from the dict when of the common shape, else through the SDK's type."""
    row = _plain_text_row(key, response, path)
    if row is not None:
        return row
    import pydantic
    from google.genai import types  # here: rows the SDK must read are the rare ones, and DAG files never need it

    try:
        # The SDK's own reader of the wire's JSON: it decodes base64 bytes and passes over fields
        # its types do not know yet (such as usageMetadata.serviceTier in google-genai 3.6).
        response = types.GenerateContentResponse._from_response(response=response, kwargs={})
    except pydantic.ValidationError as exc:
        return error_row(key, path, f"unreadable response: {exc.errors()[0]['msg']}", "INVALID_RESPONSE")
    return response_row(key, path, response)


def response_row(key: str, path: str, response: types.GenerateContentResponse) -> dict[str, Any]:
    """The results row for a ``GenerateContentResponse``: ``succeeded`` with its text, else ``failed``."""
    usage = _usage(response)
    candidate = response.candidates[0] if response.candidates else None
    finish = _api_word(candidate and candidate.finish_reason)
    parts = (candidate.content.parts if candidate and candidate.content else None) or []
    # The first candidate's text parts, thoughts apart, as GenerateContentResponse.text joins them
    # (read here, as .text warns on every answer that also holds a picture).
    text = "".join(part.text for part in parts if part.text and not part.thought) or None
    images = [{"mime_type": part.inline_data.mime_type, "data": part.inline_data.data} for part in parts
              if part.inline_data and part.inline_data.data and str(part.inline_data.mime_type).startswith("image/")]
    if text is None and not images:
        reason = finish or _api_word(response.prompt_feedback and response.prompt_feedback.block_reason)
        return _row(key, RowStatus.FAILED, path, usage=usage, finish_reason=finish,
                    error=_error(f"no text in the response ({reason})", "NO_TEXT"))
    thoughts = "".join(part.text for part in parts if part.thought and part.text) or None
    return _row(key, RowStatus.SUCCEEDED, path, text=text, usage=usage, finish_reason=finish, thoughts=thoughts,
                images=images or None)


def images_folder_name(results_name: str) -> str:
    """The folder beside a results file that holds its rows' pictures: ``results_images`` for
    ``results.jsonl``."""
    return f"{results_name.split('.', 1)[0] or results_name}_images"


def image_name(key: str, index: int, mime_type: str) -> str:
    """The file name of a row's ``index``-th picture: its key, percent-encoded so that any key makes
    one file name and no two keys the same one (a long key by its hash), and the type's extension."""
    name = quote(key, safe="")
    if len(name) > 200:  # file names stop at 255 bytes
        name = "key-" + hashlib.sha256(key.encode()).hexdigest()
    return f"{name}-{index}{mimetypes.guess_extension(mime_type) or '.bin'}"


class ResultsWriter:
    """Writes results rows to ``path`` atomically (a ``.part`` file renamed on close) and tallies them:
    counts by status and path, token usage, and, when ``price`` is set, each row's cost at it (its
    own tier, thinking and cached tokens; ``cost_usd``, US dollars).

    ``check`` (e.g. ``OutputSchema.check``) turns each row into the row written, on both paths.
    A row's pictures are written into ``images_folder`` (``images_folder_name``, beside ``path``)
    and the row names each file (``image_location``).
    """

    price: ModelPrice | None = None
    #: Each key's ``request_digest`` (``core.answers.Digests``), recorded in its row (None: not
    #: recorded); closed with the writer.
    digests: Digests | None = None

    def __init__(self, path: Path, check: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.path = path
        self.check = check
        path.parent.mkdir(parents=True, exist_ok=True)
        self._part = path.with_name(path.name + ".part")
        self._out = self._part.open("wb")
        self.counts: Counter[str] = Counter({status.value: 0 for status in RowStatus})
        self.usage: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.service_tiers: Counter[str] = Counter()  # the rows this run paid for, by the tier that served them
        self.cost_usd = 0.0
        self.images_folder = path.with_name(images_folder_name(path.name))
        self.saved_usd = 0.0  # what the reused rows cost when they were answered
        self._answers: BinaryIO | None = None
        self.before_publish: Callable[[], None] | None = None  # called once every row is written

    def write(self, row: dict[str, Any]) -> None:
        if self.check is not None:
            row = self.check(row)
        if row.get("answered_at") is None:
            row = {**row, "answered_at": now_iso(),
                   "request_digest": self.digests.get(row["key"]) if self.digests is not None else None}
        if row.get("images") and row["path"] != RowPath.REUSED:  # a reused row names the earlier run's files
            row = {**row, "images": [self._save_image(row["key"], index, image)
                                     for index, image in enumerate(row["images"])]}
        line = orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)  # UTF-8, as json.dumps would
        self._out.write(line)
        self.counts[row["status"]] += 1
        self.paths[row["path"]] += 1
        reused = row["path"] == RowPath.REUSED
        if self._answers and not reused and row["status"] == RowStatus.SUCCEEDED and row.get("request_digest"):
            self._answers.write(line)
        if not reused and row["usage"] and row["usage"].get("service_tier"):
            self.service_tiers[row["usage"]["service_tier"]] += 1
        if self.price is not None and row["usage"]:
            paid_by = row.get("reused_from") or row["path"]
            cost = cost_usd(row["usage"], self.price, batch=paid_by in (RowPath.BATCH, RowPath.FLEX))
            if reused:
                self.saved_usd += cost
            else:
                self.cost_usd += cost
        if not reused:  # tokens this run spent
            self.usage.update({name: value for name, value in (row["usage"] or {}).items() if name in USAGE_FIELDS})

    def _save_image(self, key: str, index: int, image: dict[str, Any]) -> dict[str, Any]:
        """Write one picture (``{"mime_type", "data": bytes}``) whole; the row's reference to it."""
        name = image_name(key, index, image["mime_type"])
        self.images_folder.mkdir(exist_ok=True)
        part = self.images_folder / (name + ".part")
        part.write_bytes(image["data"])
        os.replace(part, self.images_folder / name)
        return {"file": self.image_location(name), "mime_type": image["mime_type"]}

    def image_location(self, name: str) -> str:
        """Where the picture ``name`` ends up."""
        return str(self.images_folder / name)

    @property
    def location(self) -> str:
        """Where the results end up (the summary's ``output_path``)."""
        return str(self.path)

    def keep_answers(self, path: Path) -> None:
        """Also write to ``path`` the rows an answer store keeps (``core.answers``): ``succeeded``
        answers with a digest that this run paid for (not ``reused``)."""
        self._answers = path.open("wb")

    def _close_sides(self) -> None:
        if self._answers:
            self._answers.close()
        if self.digests is not None:
            self.digests.close()

    def close(self) -> None:
        """Publish the results, whole, once ``before_publish`` (when set) has run."""
        self._out.close()
        self._close_sides()
        if self.before_publish is not None:
            self.before_publish()
        os.replace(self._part, self.path)

    def abort(self) -> None:
        self._out.close()
        self._close_sides()
        self._part.unlink(missing_ok=True)


def no_result_row(key: str, status: str, message: str, path: str = RowPath.BATCH) -> dict[str, Any]:
    """The row of a key the ``path`` gave no answer for: ``missing``, ``expired`` or ``cancelled``."""
    return _row(key, status, path, error=_error(message, status.upper()))


def join_results(
    keys: Iterable[tuple[str, int]],
    output_lines: Iterable[bytes],
    writer: ResultsWriter,
    rerun: Callable[[dict[str, Any]], bool] | None = None,
    why_missing: Callable[[str, int], tuple[str, str]] | None = None,
) -> tuple[dict[str, int], set[str]]:
    """Write one results row per input key, from ``output_lines`` (raw batch output JSONL).

    ``keys`` gives ``(key, shard_index)`` per input row. A key with no output line gets the
    ``(status, message)`` that ``why_missing(key, shard_index)`` gives (default: ``missing``). A row
    for which ``rerun(row)`` is true (a ``failed`` or ``missing`` one, say) is not written: its key
    is returned, for the caller to land it another way (rows re-run are few by design; the other
    keys are kept on disk, not in memory). Returns ``(skipped, rerun_keys)``; ``skipped`` counts
    output lines that name no input key, repeat a key, or are not JSON:
    ``{"unknown_keys": n, "duplicate_keys": n, "unreadable_lines": n}``.
    """
    again: set[str] = set()
    skipped = Counter({"unknown_keys": 0, "duplicate_keys": 0, "unreadable_lines": 0})

    def land(row: dict[str, Any]) -> None:
        if rerun is not None and rerun(row):
            again.add(row["key"])
        else:
            writer.write(row)

    with KeyIndex() as index:
        index.add_all(keys)
        for raw in output_lines:
            if not raw.strip():
                continue
            try:
                item = orjson.loads(raw)
            except orjson.JSONDecodeError:
                skipped["unreadable_lines"] += 1
                continue
            key = item.get("key") if isinstance(item, dict) else None
            # A line without a key (or with one no input key can be) is no input's: str(None) is "None"
            usable = isinstance(key, (str, int)) and not isinstance(key, bool)
            mark = index.mark_seen(str(key)) if usable else UNKNOWN
            if mark == NEW:
                land(parse_output_line(item))
            else:
                skipped["unknown_keys" if mark == UNKNOWN else "duplicate_keys"] += 1
        why = why_missing or (lambda _key, _shard: (RowStatus.MISSING, "the batch output has no line for this key"))
        for key, shard in index.unseen():
            land(no_result_row(key, *why(key, shard)))
    return dict(skipped), again
