"""A local emulator of the Gemini Developer API, driven by the unmodified google-genai SDK.

Point a client at it with ``http_options={"base_url": emulator_url}``; it serves the Files API
(resumable upload, get, list, delete, download), Batches (create from a file or inline requests,
get, list, cancel, delete), ``generateContent``, ``countTokens`` and ``models``. It depends on
nothing else in this project.
"""

from .app import create_app
from .batches import RowErrors
from .faults import FaultConfig
from .server import EmulatorThread, free_port
from .state import EmulatorConfig

__all__ = ["EmulatorConfig", "EmulatorThread", "FaultConfig", "RowErrors", "create_app", "free_port"]
