"""What differs between the google-genai releases this provider runs on, in one place.

The provider runs on google-genai 2.33 and newer 2.x, and on 3.x (``pyproject.toml``). 2.x is what
``apache-airflow-providers-google`` allows (through ``google-cloud-aiplatform``, ``<3``), so it is
what an environment with Google's provider, such as every Cloud Composer image, has.

- **The sync HTTP client.** 3.x sends sync calls through ``httpx2``, a fork of ``httpx`` under its own
  import name; 2.x through ``httpx`` unless ``GOOGLE_GENAI_HTTP_CLIENT=httpx2`` asks otherwise. Their
  transport errors are different classes: ``TRANSPORT_ERRORS`` holds those of every client installed.
- **The async client's dropped connections.** Before 2.33 the SDK's aiohttp path slept 1-10 s and
  sent a call again by itself when the connection dropped, even with ``HttpRetryOptions(attempts=1)``:
  behind the online engine's rate limiter and retry count. From 2.33 on, as on 3.x, the retry
  options decide, hence that floor.
- **Streaming a download to disk** (``files.download(destination=...)``, 1 MiB chunks) is the same on
  every supported release (2.21 was the first 2.x to have it).
- **Types.** The fields this provider sends (``GenerateContentConfig``, ``BatchJob``, ``HttpOptions``,
  ``EmbedContentConfig``) are the same on every supported release; 3.x adds fields it does not use.
  3.x's default API version for the Gemini Developer API is ``v1`` (2.x's ``v1beta``): the
  connection names ``v1beta`` itself (``hooks.connection``), so both send the same paths.

The async side is aiohttp on both, and the wire protocol is the same (the emulator serves both).
This module imports nothing of the SDK, so core modules can import it without loading the SDK.
"""

from __future__ import annotations

import importlib


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors = []
    for module in ("httpx", "httpx2"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except ImportError:  # only the client its SDK release needs is installed
            continue
    return tuple(errors)


#: The transport errors (refused or dropped connections, timeouts) of the SDK's sync HTTP clients
#: installed here: ``httpx.TransportError`` (google-genai 2.x's default) and ``httpx2.TransportError`` (3.x's).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = _transport_errors()
