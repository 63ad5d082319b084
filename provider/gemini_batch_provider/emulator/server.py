"""Running the emulator: in the foreground (the CLI) or in a background thread (tests, benchmarks)."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

from aiohttp import web

from .app import create_app
from .state import STATE, EmulatorConfig, State


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmulatorThread:
    """An emulator served from a daemon thread with its own event loop.

    Use as a context manager; ``base_url`` is the address to give the SDK
    (``http_options.base_url``) and ``state`` the emulator's resources, for assertions.
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        # Bound here and served as is: a port looked up free and bound later can be taken meanwhile
        # by another test process.
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://{host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="gemini-emulator", daemon=True)

    @property
    def state(self) -> State:
        assert self._runner is not None
        return self._runner.app[STATE]

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the emulator's loop (state is not thread-safe) and return its result."""

        async def wrapper() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result()

    def configure(self, part: str, **settings: Any) -> None:
        """Change how the running emulator behaves, on its own loop: ``part`` names what to change,
        ``batches`` (the Gemini API's batch runner), ``vertex`` (Vertex AI's) or ``config``, e.g.
        ``configure("batches", outcome="stall", pending_s=30)``. Raises AttributeError for a
        setting it does not have."""
        target = getattr(self.state, part)
        unknown = [name for name in settings if not hasattr(target, name)]
        if unknown:
            raise AttributeError(f"the emulator's {part} has no setting {unknown}")

        def apply() -> None:
            for name, value in settings.items():
                setattr(target, name, value)

        self.call(apply)

    def start(self) -> EmulatorThread:
        self._thread.start()

        async def start() -> web.AppRunner:
            # Calls still in flight at stop (slow answers on purpose) are cut after a moment.
            runner = web.AppRunner(create_app(self.config, self.base_url), access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            await web.SockSite(runner, self._socket).start()
            return runner

        self._runner = asyncio.run_coroutine_threadsafe(start(), self._loop).result()
        return self

    def stop(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            # Handlers cut at shutdown (slow answers on purpose) end here, not as "destroyed" tasks.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
