"""Media in records: the images and documents rows carry, checked, fetched, staged and put in requests.

A media field holds a local path, an ``http(s)://`` URL, a ``gs://`` URI or raw bytes (or a list of
them). Its MIME type comes from the content's first bytes (the name only for types with no magic
number, such as plain text), and must be one Gemini takes
(https://ai.google.dev/gemini-api/docs/image-understanding, .../document-processing).

The work runs in three steps, so that a run with bad media is refused before anything is uploaded:

1. ``scan``: every row's media, local ones checked (exists, readable, type, size); a bad one raises
   InputError naming the row, the field and the fix.
2. ``fetch``: URLs (and ``gs://`` URIs for the Gemini API) downloaded concurrently to a folder, then
   checked the same way; any failure refuses the run, still before anything is uploaded.
3. ``stage``: media up to ``inline_max_bytes`` go inline (``inlineData``, base64); larger ones are
   uploaded once per content (SHA-256) with bounded concurrency by the uploader given (the Files API,
   or Cloud Storage for Vertex AI) and referenced as ``fileData``. ``gs://`` URIs on Vertex AI go
   into the request as they are.

``part(value)`` then gives each value's wire part; ``RequestSpec`` places them where the template
names the field.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import mimetypes
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .limits import FILE_LIMIT_BYTES, INLINE_MAX_BYTES

if TYPE_CHECKING:
    import aiohttp

    from .backend import BatchBackend

SUPPORTED = frozenset({
    "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif", "application/pdf", "text/plain",
    "text/html", "text/csv", "text/markdown", "audio/wav", "audio/mp3", "audio/mpeg", "audio/ogg", "audio/flac",
    "video/mp4", "video/webm",
})
# First bytes of each type Gemini takes that has them (offset, bytes).
_MAGIC = (
    ("image/png", 0, b"\x89PNG\r\n\x1a\n"), ("image/jpeg", 0, b"\xff\xd8\xff"), ("application/pdf", 0, b"%PDF-"),
    ("image/webp", 8, b"WEBP"), ("image/heic", 4, b"ftypheic"), ("image/heif", 4, b"ftypmif1"),
    ("video/mp4", 4, b"ftyp"), ("audio/wav", 8, b"WAVE"), ("audio/ogg", 0, b"OggS"), ("audio/flac", 0, b"fLaC"),
    ("audio/mpeg", 0, b"ID3"), ("video/webm", 0, b"\x1a\x45\xdf\xa3"),
    # Types Gemini does not take, named so that the refusal says what the file is.
    ("image/gif", 0, b"GIF8"), ("image/tiff", 0, b"II*\x00"), ("image/tiff", 0, b"MM\x00*"), ("image/bmp", 0, b"BM"),
)



def sniff(head: bytes, name: str) -> str | None:
    """The MIME type of content starting with ``head``: from its magic bytes, else (for types that
    have none, such as text) from ``name``; None when neither tells."""
    for mime, offset, magic in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return mime
    guessed = mimetypes.guess_type(name)[0]
    if guessed and guessed.startswith("text/"):
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # a character cut at the end of head is no proof
                return "application/octet-stream"
    return guessed


@dataclass
class Medium:
    """One distinct piece of media: where its bytes are, what it is, and how a request refers to it."""

    source: str  # the path or URL as the record gives it ("<bytes>" for raw bytes)
    where: str  # "row 3, field 'image'": the first row that named it, for messages
    mime: str = ""
    size: int = 0
    sha256: str = ""
    local: Path | None = None  # the content on disk (the file itself, or its download)
    data: bytes | None = None  # raw bytes given in the record
    uri: str | None = None  # fileData URI once staged (uploaded, or gs:// on Vertex AI)


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class MediaStager:
    """The media of one run; see the module.

    :param fields: record fields holding media.
    :param folder: where downloads go (the caller removes it).
    :param inline_max_bytes: media up to this size go inline in each request; larger ones are uploaded.
    :param max_bytes: largest medium accepted (default: the Files API's 2 GB).
    :param backend: the API the media go to (``core.backend``): it reads ``gs://`` URIs itself
        (``takes_gcs_media``) or they are downloaded with its ``read_media``; large media are
        uploaded with its ``upload_media``.
    :param concurrency: downloads and uploads in flight at most.
    """

    def __init__(self, fields: Iterable[str], folder: Path, *, inline_max_bytes: int = INLINE_MAX_BYTES,
                 max_bytes: int = FILE_LIMIT_BYTES, backend: BatchBackend, concurrency: int = 8) -> None:
        self.fields = tuple(fields)
        self.folder = folder
        self.inline_max_bytes = inline_max_bytes
        self.max_bytes = max_bytes
        self.backend = backend
        self.concurrency = concurrency
        self.media: dict[str, Medium] = {}  # by source (raw bytes: by their hash)
        self.staged = False
        self.uploaded: list[str] = []  # URIs this run uploaded, for the cleanup

    # --- 1. scan ---------------------------------------------------------------------------------

    def scan(self, records: Iterable[dict[str, Any]]) -> None:
        """Register every row's media; local files and bytes are checked now (InputError)."""
        for row, record in enumerate(records):
            for name in self.fields:
                for value in _values(record.get(name)):
                    self._register(value, f"row {row}, field {name!r}")

    def _key(self, value: Any) -> str:
        if isinstance(value, (bytes, bytearray)):
            return "bytes:" + hashlib.sha256(value).hexdigest()
        return str(value)

    def _register(self, value: Any, where: str) -> None:
        if value is None or value == "":
            raise InputError(f"{where}: no media; give a path, a URL, a gs:// URI or bytes, or drop the row")
        if not isinstance(value, (str, Path, bytes, bytearray)):
            raise InputError(f"{where}: media must be a path, URL, gs:// URI or bytes, got {type(value).__name__}")
        key = self._key(value)
        if key in self.media:
            return
        medium = Medium(source="<bytes>" if isinstance(value, (bytes, bytearray)) else str(value), where=where)
        self.media[key] = medium
        if isinstance(value, (bytes, bytearray)):
            medium.data = bytes(value)
            self._check(medium, medium.data[:64], len(medium.data), "bytes")
            medium.sha256 = key.removeprefix("bytes:")
        elif medium.source.startswith(("http://", "https://")):
            return  # fetched in step 2
        elif medium.source.startswith("gs://"):
            if self.backend.takes_gcs_media:  # the API reads it itself; the type from its name, nothing else at hand
                medium.mime, medium.uri = self._supported(medium, mimetypes.guess_type(medium.source)[0]), medium.source
        else:
            self._check_file(medium, Path(medium.source).expanduser())

    def _check_file(self, medium: Medium, path: Path) -> None:
        if not path.is_absolute():
            raise InputError(f"{medium.where}: {medium.source!r} is a relative path; give an absolute one")
        try:
            # Looked at before it is opened: opening a FIFO blocks until something writes to it, and a
            # device or socket is no file to send. O_NONBLOCK keeps a FIFO swapped in since from blocking.
            if not stat.S_ISREG(path.stat().st_mode):
                raise InputError(f"{medium.where}: {medium.source} is not a regular file (a folder, FIFO, socket or "
                                 "device); give the path of a file")
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise InputError(f"{medium.where}: {medium.source} is not a regular file; give the path of a file")
                head = handle.read(64)
                size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise InputError(f"{medium.where}: can't read {medium.source} ({exc.strerror}); check the path and "
                             "that the worker can read it") from None
        medium.local = path
        self._check(medium, head, size, path.name)

    def _supported(self, medium: Medium, mime: str | None) -> str:
        if mime not in SUPPORTED:
            raise InputError(f"{medium.where}: {medium.source} is {mime or 'of an unknown type'}, which Gemini does "
                             f"not take; convert it to one of PNG, JPEG, WEBP, HEIC, PDF or text")
        return mime

    def _check(self, medium: Medium, head: bytes, size: int, name: str) -> None:
        medium.mime = self._supported(medium, sniff(head, name))
        if size == 0 or size > self.max_bytes:
            raise InputError(f"{medium.where}: {medium.source} has {size} bytes; media must have 1 to "
                             f"{self.max_bytes} bytes")
        medium.size = size

    # --- 2. fetch --------------------------------------------------------------------------------

    async def fetch(self) -> None:
        """Download every URL (and, for the Gemini API, ``gs://`` URI), ``concurrency`` at a time,
        and check what came; InputError for the first that fails, before anything is uploaded."""
        todo = [m for m in self.media.values() if m.local is None and m.data is None and m.uri is None]
        if not todo:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        import aiohttp  # here, not up front: DAG files that import the operators never pay for it

        slots = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=300, sock_connect=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async def one(index: int, medium: Medium) -> None:
                async with slots:
                    target = self.folder / f"download-{index:06d}"
                    if medium.source.startswith("gs://"):
                        await asyncio.to_thread(self._read_gcs, medium, target)
                    else:
                        target = await self._download(session, medium, target)
                    self._check_file(medium, target)

            await asyncio.gather(*(one(i, m) for i, m in enumerate(todo)))

    def _read_gcs(self, medium: Medium, target: Path) -> None:
        try:
            self.backend.read_media(medium.source, target)
        except Exception as exc:  # google-cloud-storage's NotFound, Forbidden, ...
            raise InputError(f"{medium.where}: can't read {medium.source} ({type(exc).__name__}: {exc})") from None

    async def _download(self, session: aiohttp.ClientSession, medium: Medium, target: Path) -> Path:
        import aiohttp

        try:
            async with session.get(medium.source) as response:
                if response.status != 200:
                    raise InputError(f"{medium.where}: {medium.source} answered HTTP {response.status}; fix the URL "
                                     "or drop the row")
                size = 0
                with target.open("wb") as out:
                    async for chunk in response.content.iter_chunked(1 << 16):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise InputError(f"{medium.where}: {medium.source} is over {self.max_bytes} bytes")
                        out.write(chunk)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise InputError(f"{medium.where}: can't download {medium.source} ({type(exc).__name__}: {exc}); "
                             "check the URL and that the worker can reach it") from None
        # Named with the URL's suffix, for the type check of text (which has no magic bytes).
        return target.rename(target.with_name(target.name + Path(medium.source.split("?")[0]).suffix))

    # --- 3. stage --------------------------------------------------------------------------------

    async def stage(self) -> None:
        """Upload, once per content, every medium over ``inline_max_bytes`` that is not a URI yet."""
        for medium in self.media.values():
            if not medium.sha256 and medium.local is not None:
                medium.sha256 = await asyncio.to_thread(_file_sha256, medium.local)
        by_content: dict[str, list[Medium]] = {}
        for medium in self.media.values():
            if medium.uri is None and medium.size > self.inline_max_bytes:
                by_content.setdefault(medium.sha256, []).append(medium)
        slots = asyncio.Semaphore(self.concurrency)

        async def one(same: list[Medium]) -> None:
            first = same[0]
            async with slots:
                path = first.local if first.local is not None else self._spill(first)
                uri = await self.backend.upload_media(path, first.mime, first.sha256)
            self.uploaded.append(uri)
            for medium in same:
                medium.uri = uri

        await asyncio.gather(*(one(same) for same in by_content.values()))
        self.staged = True

    def _spill(self, medium: Medium) -> Path:
        """Raw bytes to a file, for an uploader that takes files."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"bytes-{medium.sha256[:16]}"
        path.write_bytes(medium.data or b"")
        return path

    # --- parts ---------------------------------------------------------------------------------

    def parts(self, value: Any) -> list[dict[str, Any]]:
        """The wire parts of a media field's value. Before ``stage``, stand-ins of the right kind
        (for checking rows and estimating tokens without reading any content)."""
        result = []
        for item in _values(value):
            medium = self.media[self._key(item)]
            if medium.uri is not None or (not self.staged and medium.size > self.inline_max_bytes):
                result.append({"fileData": {"mimeType": medium.mime, "fileUri": medium.uri or "pending"}})
            elif not self.staged:
                result.append({"inlineData": {"mimeType": medium.mime, "data": ""}})
            else:
                data = medium.data if medium.data is not None else medium.local.read_bytes()  # type: ignore[union-attr]
                result.append({"inlineData": {"mimeType": medium.mime, "data": base64.b64encode(data).decode()}})
        return result


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
