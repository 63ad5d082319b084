"""The keys of a run's rows, kept on disk so that memory does not grow with the number of rows.

A set of a million keys takes about 80 MB in Python; this index keeps them in a temporary SQLite
file (the standard library's ``sqlite3``; no journal, no sync: it lives only as long as one
landing or one pass over the input) with an int per key (its shard, or its row) and whether the
output has answered it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

NEW, DUPLICATE, UNKNOWN = "new", "duplicate", "unknown"


class KeyIndex:
    """Keys in insertion order, each with an int ``value`` and a ``seen`` mark. Use as a context manager."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="gemini-keys-")
        # One user at a time, but not always one thread: a generator holding an index (build_requests)
        # and dropped before its end is closed by the garbage collector in whichever thread runs it.
        import sqlite3  # here: a DAG file that imports the operators never needs it

        self._db = sqlite3.connect(Path(self._folder.name) / "keys.db", isolation_level=None,
                                   check_same_thread=False)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -16000;
            CREATE TABLE keys (key TEXT PRIMARY KEY, value INTEGER NOT NULL, seen INTEGER NOT NULL DEFAULT 0);
            BEGIN;
            """
        )

    def __enter__(self) -> KeyIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()
        self._folder.cleanup()

    def add(self, key: str, value: int = 0) -> bool:
        """Add a key; False (and nothing changed) when it is already there."""
        return self._db.execute("INSERT OR IGNORE INTO keys (key, value) VALUES (?, ?)", (key, value)).rowcount == 1

    def add_all(self, items: Iterable[tuple[str, int]]) -> None:
        """Add ``(key, value)`` pairs known to be unique (a repeated key keeps its first value)."""
        self._db.executemany("INSERT OR IGNORE INTO keys (key, value) VALUES (?, ?)", items)

    def value(self, key: str) -> int | None:
        found = self._db.execute("SELECT value FROM keys WHERE key = ?", (key,)).fetchone()
        return None if found is None else int(found[0])

    def mark_seen(self, key: str) -> str:
        """Mark a key answered: ``new`` the first time, ``duplicate`` after, ``unknown`` if never added."""
        if self._db.execute("UPDATE keys SET seen = 1 WHERE key = ? AND seen = 0", (key,)).rowcount == 1:
            return NEW
        found = self._db.execute("SELECT 1 FROM keys WHERE key = ?", (key,)).fetchone()
        return DUPLICATE if found else UNKNOWN

    def unseen(self) -> Iterator[tuple[str, int]]:
        """``(key, value)`` of every key not marked seen, in the order they were added."""
        yield from self._db.execute("SELECT key, value FROM keys WHERE seen = 0 ORDER BY rowid")
