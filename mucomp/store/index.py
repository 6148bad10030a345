"""The listing index: what a listing needs of every experiment, in one SQLite file.

Reading 1,000 ``result.json`` files (about 0.5 MB each on digits, mostly per-image blocks) to draw
a table of ids and a dozen numbers costs seconds; one SQLite query costs milliseconds. The index
lives beside the experiment folders as ``.index.sqlite3`` (a dot-name: never taken for an
experiment) and holds per experiment:

- ``stamp``: ``inode:size:mtime_ns`` of its ``result.json`` when the row was written;
- ``summary``: the listing fields (id, kind, created_at, owner, method_label, the whole config and
  the scalar metrics) as JSON: what ``mucomp list`` prints;
- ``light``: the result without the per-image blocks (:data:`HEAVY_BLOCKS`), only its
  :data:`LIGHT_FIELDS`, as JSON: what the Screen table, the pickers and the per-epoch curves read;
- ``problem``: why it is unreadable (then no summary).

The folders are the truth and the index a cache of them. Every listing stats each folder's
``result.json`` (cheap) and re-reads only the folders whose stamp changed, appeared or vanished,
so an index that is missing, stale (a folder written by an older mucomp, edited by hand, or a
process killed between a save's rename and its index write) or damaged is repaired from the
folders, never trusted over them. Writes happen under the store's file lock, in the same locked
step as the rename that saves, deletes or imports the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

INDEX_FILE = ".index.sqlite3"
#: Bumped whenever the stored columns or their meaning change: a different value rebuilds the rows.
#: 3: light rows keep only :data:`LIGHT_FIELDS`; groups are derived from the config.
#: 4: the listing fields hold ``references`` (what a group must not pool across).
INDEX_FORMAT = "4"
#: The per-image blocks a listing never carries (``audits``: U-LiRA's per-image figures, the
#: relearning curves; the pages read them from the one result they show).
HEAVY_BLOCKS = ("attack", "embedding", "cka", "audits")
SUMMARY_FIELDS = ("id", "kind", "group", "created_at", "owner", "method_label", "code_version", "schema_version",
                  "references")
#: What a light row keeps: the listing fields and the small typed blocks the Screen, the pickers
#: and the per-epoch curves read. Nothing else, so no field a file adds reaches every listing.
LIGHT_FIELDS = (*SUMMARY_FIELDS, "config", "metrics", "epochs", "timings", "evaluation", "environment",
                "updated_at", "reference_check", "published_check")
MISSING = "missing"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    stamp TEXT NOT NULL,
    problem TEXT,
    created_at TEXT,
    summary TEXT,
    light TEXT
);
"""


def summary_of(result: dict) -> dict:
    """The listing fields of a checked result: :data:`SUMMARY_FIELDS`, the config and the
    metrics that are not per-class lists (``cost`` included)."""
    row = {key: result.get(key) for key in SUMMARY_FIELDS}
    row["config"] = result["config"]
    row["metrics"] = {k: v for k, v in result["metrics"].items() if not isinstance(v, list)}
    return row


def light_of(result: dict) -> dict:
    """A checked result without its per-image blocks: its :data:`LIGHT_FIELDS` that it has."""
    return {k: result[k] for k in LIGHT_FIELDS if k in result}


def stamp_of(folder: Path, result_file: str) -> str:
    """``inode:size:mtime_ns`` of a folder's result file, or :data:`MISSING`."""
    try:
        st = os.stat(folder / result_file)
    except OSError:
        return MISSING
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


class ListingIndex:
    """The SQLite index of one store folder (see the module docstring).

    ``read_result(id) -> (result or None, problem or None)`` reads one folder; ``lock()`` is the
    store's cross-process lock, held while the index is written.
    """

    def __init__(self, root: Path, result_file: str, read_result: Callable[[str], tuple[dict | None, str | None]],
                 lock: Callable[[], contextlib.AbstractContextManager]) -> None:
        self.root = root
        self.path = root / INDEX_FILE
        self._result_file = result_file
        self._read = read_result
        self._lock = lock

    # --- connection ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            yield connection
        finally:
            connection.close()

    def _prepare(self, connection: sqlite3.Connection) -> None:
        connection.executescript(_SCHEMA)
        row = connection.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None or row[0] != self._format():
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("DELETE FROM entries")
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (self._format(),))
            connection.execute("COMMIT")

    @staticmethod
    def _format() -> str:
        from mucomp.names import SCHEMA_VERSION  # a newer schema reads more: rebuild every row

        return f"{INDEX_FORMAT}/{SCHEMA_VERSION}"

    # --- writing (the caller holds the store lock) ------------------------------------------------
    def put(self, experiment_id: str, result: dict | None, problem: str | None = None) -> None:
        """Record one folder as it is now (``result``: its checked result, or None with ``problem``)."""
        self._write(lambda c: self._put_row(c, experiment_id, result, problem))

    def remove(self, experiment_id: str) -> None:
        """Forget one folder (it was deleted)."""
        self._write(lambda c: c.execute("DELETE FROM entries WHERE id = ?", (experiment_id,)))

    def _write(self, change: Callable[[sqlite3.Connection], Any]) -> None:
        # Best effort: the folder rename already happened and is what counts. A failed index write
        # (disk full, read-only, damaged file) leaves a stale row that the next listing repairs.
        with contextlib.suppress(sqlite3.Error, OSError), self._connect() as connection:
            self._prepare(connection)
            connection.execute("BEGIN IMMEDIATE")
            change(connection)
            connection.execute("COMMIT")

    def _put_row(self, connection: sqlite3.Connection, experiment_id: str, result: dict | None,
                 problem: str | None) -> None:
        stamp = stamp_of(self.root / experiment_id, self._result_file)
        if result is None:
            values = (experiment_id, stamp, problem or "unreadable", None, None, None)
        else:
            values = (experiment_id, stamp, None, str(result.get("created_at") or ""),
                      _dumps(summary_of(result)), _dumps(light_of(result)))
        connection.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)", values)

    # --- reading --------------------------------------------------------------------------------
    def rows(self, folders: list[str], column: str) -> tuple[list[dict], dict[str, str]]:
        """``(readable, unreadable)`` for the experiment ``folders``: the decoded ``column``
        (``"summary"`` or ``"light"``) of each readable one, oldest first, and ``{id: problem}``.

        Stale and missing rows are re-read from their folders and written back first. Raises
        sqlite3.Error / OSError when the index can't be used at all (the caller scans instead).
        """
        stamps = {name: stamp_of(self.root / name, self._result_file) for name in folders}
        with self._connect() as connection:
            self._prepare(connection)
            known = dict(connection.execute("SELECT id, stamp FROM entries").fetchall())
            stale = [name for name, stamp in stamps.items() if known.get(name) != stamp]
            gone = [name for name in known if name not in stamps]
            if stale or gone:
                self._repair(connection, stale, gone)
            query = f"SELECT id, problem, {column} FROM entries ORDER BY created_at, id"  # noqa: S608 (fixed names)
            readable, unreadable = [], {}
            for experiment_id, problem, payload in connection.execute(query):
                if experiment_id not in stamps:
                    continue
                if problem is not None:
                    unreadable[experiment_id] = problem
                else:
                    readable.append(json.loads(payload))
        return readable, unreadable

    def _repair(self, connection: sqlite3.Connection, stale: list[str], gone: list[str]) -> None:
        """Re-read ``stale`` folders and drop ``gone`` rows, under the store lock. Folders are
        parsed before the write transaction so readers are never blocked for long."""
        with self._lock():
            fresh = {name: self._read(name) for name in stale}
            connection.execute("BEGIN IMMEDIATE")
            try:
                for name, (result, problem) in fresh.items():
                    self._put_row(connection, name, result, problem)
                connection.executemany("DELETE FROM entries WHERE id = ?", [(name,) for name in gone])
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def reset(self) -> None:
        """Remove a damaged index file (the next listing rebuilds it from the folders)."""
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))
