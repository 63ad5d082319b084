"""What the emulator's model reads from media parts: ``inlineData`` (base64) and ``fileData`` (a
Files API URI, or ``gs://`` on Vertex AI).

Each medium is described from its content, so that answers differ per input: an image by its size
and dominant colour (Pillow, when installed; else the size from a PNG or JPEG header), a text by its
first words, anything else by its type and size.
"""

from __future__ import annotations

import base64
import binascii
import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

from .errors import InvalidRequest

_URL_SAFE = str.maketrans("-_", "+/")
# fileUri -> content; raises InvalidRequest for a file that does not exist (any more).
FileReader = Callable[[str], bytes]

_COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "gray": (128, 128, 128), "red": (200, 30, 30),
    "green": (40, 160, 60), "blue": (40, 80, 200), "yellow": (230, 210, 50), "orange": (240, 140, 30),
    "brown": (130, 80, 40), "purple": (130, 60, 160), "pink": (240, 150, 180), "beige": (220, 200, 160),
}


def media_of(contents: Any, read_file: FileReader | None) -> list[tuple[str, bytes]]:
    """``(MIME type, content)`` of every media part of ``contents``, in order; InvalidRequest for
    undecodable base64 or a file that can't be read."""
    found = []
    for content in contents if isinstance(contents, list) else []:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            inline = part.get("inlineData") or part.get("inline_data") if isinstance(part, dict) else None
            linked = part.get("fileData") or part.get("file_data") if isinstance(part, dict) else None
            if inline is not None:
                try:  # standard or URL-safe alphabet, both of which proto JSON takes (the SDK sends the latter)
                    data = base64.b64decode(str(inline.get("data") or "").translate(_URL_SAFE), validate=True)
                except (binascii.Error, ValueError):
                    raise InvalidRequest("inlineData.data is not valid base64") from None
                found.append((str(inline.get("mimeType") or inline.get("mime_type") or ""), data))
            elif linked is not None:
                uri = str(linked.get("fileUri") or linked.get("file_uri") or "")
                if read_file is None:
                    raise InvalidRequest(f"fileData.fileUri {uri}: this endpoint reads no files")
                found.append((str(linked.get("mimeType") or linked.get("mime_type") or ""), read_file(uri)))
    return found


def describe(mime: str, data: bytes) -> str:
    """One clause about a medium, from its content."""
    if mime.startswith("image/"):
        return _describe_image(data)
    if mime.startswith("text/"):
        words = data.decode("utf-8", errors="replace").split()
        return f"a text that begins '{' '.join(words[:8])}'"
    return f"a {mime} document of {len(data)} bytes"


def _describe_image(data: bytes) -> str:
    try:
        from PIL import Image
    except ImportError:
        size = _header_size(data)
        return f"a {size[0]}x{size[1]} image" if size else f"an image of {len(data)} bytes"
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            red, green, blue = image.convert("RGB").resize((1, 1)).getpixel((0, 0))
    except Exception as exc:  # Pillow raises many kinds for undecodable data
        raise InvalidRequest(f"an image part could not be decoded ({type(exc).__name__})") from None
    colour = min(_COLOURS, key=lambda name: sum((a - b) ** 2 for a, b in zip(_COLOURS[name], (red, green, blue),
                                                                              strict=True)))
    return f"a {width}x{height} image, mostly {colour}"


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR or a JPEG's first SOF marker."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    index = 2
    while data[:2] == b"\xff\xd8" and index + 9 < len(data):
        marker, length = data[index + 1], struct.unpack(">H", data[index + 2 : index + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    return None


PICTURE_SIDE = 64  # pixels; the live API's pictures are 1024x1024, this small one keeps test data small


def picture(digest: str) -> bytes:
    """A PNG the emulator's image model answers with: a square of one colour, chosen by ``digest``
    (a hex string), so that the same request gets the same picture and ``describe`` can tell them
    apart. Written with zlib alone, as Pillow is optional."""
    colour = list(_COLOURS.values())[int(digest[:8], 16) % len(_COLOURS)]
    row = b"\x00" + bytes(colour) * PICTURE_SIDE  # filter byte "none", then RGB pixels

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", PICTURE_SIDE, PICTURE_SIDE, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * PICTURE_SIDE))
            + chunk(b"IEND", b""))
