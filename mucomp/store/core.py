"""The experiment store: one folder per experiment under ``$MUCOMP_HOME/experiments``.

Each folder holds ``result.json`` (every figure the pages show, the config, a schema version, the
code version and timings; its schema is :mod:`mucomp.schema`) and ``model.safetensors`` (the
weights). Experiments are immutable: a folder is written completely under a temporary name and
then renamed into place in one atomic step, so a process killed while saving leaves either no
experiment or the whole experiment, never half of one. Ids are generated here, never taken from
user text, and every id that reaches a path is validated first (``re.fullmatch``).

A result is validated against the schema when it is saved, imported and read. One that does not
validate (damaged, hand-edited, of a newer version) is *unreadable*: listings report it with the
reason instead of failing, and it can still be deleted.

Listings come from the SQLite index beside the folders (:mod:`mucomp.store.index`), written
under the store's file lock in the same step as each save, delete and import, and repaired from
the folders whenever it is missing or stale.

Export writes a zip of chosen experiments; import checks the whole archive first
(:mod:`mucomp.store.archive`) and refuses to overwrite an experiment that already exists.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import shutil
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mucomp import __version__, settings
from mucomp.names import (
    ID_PATTERN,
    MANIFEST_FILE,
    MAX_RESULT_BYTES,
    MODEL_FILE,
    PROTECTED_KINDS,
    RESULT_FILE,
    SCENARIO_KEYS,
    SCHEMA_VERSION,
)
from mucomp.store.archive import read_archive
from mucomp.store.errors import (
    ExperimentExistsError,
    ExperimentNotFoundError,
    InvalidIdError,
    StoreError,
    UnreadableExperimentError,
)
from mucomp.store.index import ListingIndex, light_of, summary_of
from mucomp.weights import safetensors_metadata, weights_sha256

if TYPE_CHECKING:
    import torch

REQUIRED_KEYS = ("schema_version", "id", "kind", "created_at", "config", "metrics")
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
LOCK_FILE = "store.lock"


def validate_id(experiment_id: object) -> str:
    """Return ``experiment_id`` if it is a well-formed store id, else raise InvalidIdError.

    Ids are exactly 3-64 characters of lowercase letters, digits and ``-``, starting with a letter
    or digit; nothing else (no ``/``, ``..``, spaces or a trailing newline) can reach a path.
    """
    if not isinstance(experiment_id, str) or not ID_PATTERN.fullmatch(experiment_id):
        raise InvalidIdError(
            f"{experiment_id!r} is not a valid experiment id (3-64 lowercase letters, digits and '-')"
        )
    return experiment_id


def validate_result(result: object) -> dict:
    """``result`` checked against the stored-result schema and upgraded to the current version
    (:func:`mucomp.schema.check_result`); StoreError says which fields are wrong."""
    from mucomp.schema import ResultSchemaError, check_result  # pydantic: only when a result is checked

    try:
        return check_result(result)
    except ResultSchemaError as err:
        raise StoreError(f"result.json: {err}") from err


def unreadable_message(experiment_id: str, reason: str) -> str:
    """What to tell a user about an unreadable experiment: why, and what to do."""
    return (f"experiment {experiment_id} can't be read: {reason}. Delete it (`mucomp delete {experiment_id}`) "
            "or, if it came from a newer mucomp, upgrade mucomp")


@dataclass
class Experiment:
    """A stored experiment: its ``result`` (the checked result.json, current schema) and its folder."""

    id: str
    result: dict
    path: Path

    @property
    def kind(self) -> str:
        return self.result["kind"]

    @property
    def config(self) -> dict:
        return self.result["config"]

    @property
    def metrics(self) -> dict:
        return self.result["metrics"]

    @property
    def protected(self) -> bool:
        """Reference models can't be deleted."""
        return self.kind in PROTECTED_KINDS

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stored weights (CPU tensors)."""
        from safetensors.torch import load_file

        return load_file(str(self.model_path))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ExperimentStore:
    """Experiments on disk under ``root`` (default ``$MUCOMP_HOME/experiments``).

    Safe to use from several threads and processes at once: writes are atomic renames of complete
    folders, and each rename and its index row are written under one thread-and-file lock
    (:func:`mucomp.locks.locked`, ``<root>/.locks/store.lock``).
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else settings.home() / "experiments"
        self.root.mkdir(parents=True, exist_ok=True)
        self.problems: dict[str, str] = {}
        self._index = ListingIndex(self.root, RESULT_FILE, self._read_for_index, self._locked)
        self._sweep_leftovers()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from mucomp.locks import locked

        with locked(self.root / ".locks" / LOCK_FILE, waiting_for="another process writing the store"):
            yield

    # --- ids and paths ---------------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh, unused id: 8 random hex characters."""
        while True:
            candidate = secrets.token_hex(4)
            if not (self.root / candidate).exists():
                return candidate

    def _folder(self, experiment_id: str) -> Path:
        folder = self.root / validate_id(experiment_id)
        # Defence in depth: the id pattern already rules out separators.
        if folder.resolve().parent != self.root.resolve():
            raise StoreError(f"{experiment_id!r} would leave the store")
        return folder

    def exists(self, experiment_id: str) -> bool:
        return (self._folder(experiment_id) / RESULT_FILE).is_file()

    # --- writing -----------------------------------------------------------------------------------
    def save(self, result: dict, state_dict: dict[str, torch.Tensor] | None = None) -> Experiment:
        """Store a new experiment atomically and return it.

        ``result`` gets ``id`` (generated if absent), ``schema_version``, ``created_at``,
        ``code_version`` and, for an unlearned experiment, its replicate ``group``
        (:func:`mucomp.groups.group_id` of its config; a ``group`` given is replaced, see
        :func:`mucomp.schema.with_group`); NaN becomes ``null``; it must then validate
        against :mod:`mucomp.schema` (StoreError names the wrong fields). A reference's config
        records ``weights_sha256``. An id that already exists (also one another process stores at
        the same moment) raises ExperimentExistsError: experiments are never overwritten.
        """
        from mucomp.metrics import to_json_safe

        result = dict(result)
        result.setdefault("id", self.new_id())
        config = result.get("config")
        # A config of the version-2 shape (one forget class, one seed; callers and tests that
        # predate forget sets) is read as version 2, so the reader fills in the version-3 fields.
        legacy = isinstance(config, dict) and "forget" not in config and "forget_class" in config
        result.setdefault("schema_version", 2 if legacy else SCHEMA_VERSION)
        result.setdefault("created_at", now_iso())
        result.setdefault("code_version", __version__)
        if result.get("kind") in PROTECTED_KINDS and state_dict is not None and isinstance(result.get("config"), dict):
            result["config"] = {**result["config"], "weights_sha256": weights_sha256(state_dict)}
        result = validate_result(to_json_safe(result))
        payload = json.dumps(result, allow_nan=False, indent=1).encode()
        if len(payload) > MAX_RESULT_BYTES:  # it could never be read back: refuse it now, and say so
            raise StoreError(f"{result['id']}: the result would be {len(payload) / 1024**2:.0f} MB, more than the "
                             f"{MAX_RESULT_BYTES // 1024**2} MB a result may have; nothing was stored")
        model_bytes = None
        if state_dict is not None:
            from safetensors.torch import save

            tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
            model_bytes = save(tensors, metadata=safetensors_metadata(id=result["id"], kind=result["kind"]))
        self._write_folder(result["id"], payload, model_bytes, result)
        return Experiment(result["id"], result, self._folder(result["id"]))

    def _write_folder(self, experiment_id: str, result_bytes: bytes, model_bytes: bytes | None, result: dict) -> None:
        """Write a complete folder under a temporary name, then rename it into place and record it
        in the index, under the store lock.

        The existence check gives the usual case a clear message early; renaming a folder onto an
        existing non-empty one fails (ENOTEMPTY / EEXIST), so the rename itself is the check that
        counts (also against a process of an older mucomp that takes no lock); either way the
        temporary folder is removed.
        """
        final = self._folder(experiment_id)
        tmp = self.root / f"{_TMP_PREFIX}{experiment_id}-{secrets.token_hex(3)}"
        tmp.mkdir()
        try:
            _write_synced(tmp / RESULT_FILE, result_bytes)
            if model_bytes is not None:
                _write_synced(tmp / MODEL_FILE, model_bytes)
            with self._locked():
                if final.exists():
                    raise _exists_error(experiment_id)
                try:
                    os.rename(tmp, final)  # atomic on one file system: all or nothing
                except OSError as err:
                    if isinstance(err, FileExistsError) or err.errno == errno.ENOTEMPTY:
                        raise _exists_error(experiment_id) from err  # another process stored it since the check
                    raise
                self._index.put(experiment_id, result)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.root)

    # --- reading -----------------------------------------------------------------------------------
    def load(self, experiment_id: str) -> Experiment:
        """The experiment ``experiment_id``, its result checked and upgraded to the current schema.

        ExperimentNotFoundError if there is none; UnreadableExperimentError (a StoreError) if its
        result.json does not validate.
        """
        folder = self._folder(experiment_id)
        result, problem = self._read(experiment_id)
        if result is None:
            if problem is None:
                raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in {self.root}")
            raise UnreadableExperimentError(unreadable_message(experiment_id, problem), problem)
        return Experiment(experiment_id, result, folder)

    def _read(self, experiment_id: str) -> tuple[dict | None, str | None]:
        """``(checked result, None)``, ``(None, why it is unreadable)`` or ``(None, None)`` (absent)."""
        path = self._folder(experiment_id) / RESULT_FILE
        try:
            if path.stat().st_size > MAX_RESULT_BYTES:
                return None, f"result.json is larger than {MAX_RESULT_BYTES // 1024**2} MB"
            data = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as err:
            return None, f"result.json can't be opened ({type(err).__name__})"
        from mucomp.schema import ResultSchemaError, parse_result_bytes

        try:
            result = parse_result_bytes(data)
        except ResultSchemaError as err:
            return None, str(err)
        if result["id"] != experiment_id:
            return None, f"the folder holds the result of {result['id']!r}"
        return result, None

    def _read_for_index(self, experiment_id: str) -> tuple[dict | None, str | None]:
        result, problem = self._read(experiment_id)
        return result, problem if result is not None or problem else "the folder has no result.json"

    def ids(self) -> list[str]:
        """The ids of every experiment folder (readable or not), sorted; nothing is parsed."""
        if not self.root.is_dir():
            return []
        with os.scandir(self.root) as found:
            return sorted(e.name for e in found if ID_PATTERN.fullmatch(e.name) and e.is_dir())

    def _indexed(self, column: str) -> tuple[list[dict], dict[str, str]]:
        """Index rows (``"summary"`` or ``"light"``) of every readable experiment, oldest first, and
        the unreadable ones; a damaged or unusable index is rebuilt, or bypassed."""
        folders = self.ids()
        for attempt in range(2):
            try:
                return self._index.rows(folders, column)
            except (sqlite3.Error, OSError, ValueError):
                if attempt == 0:
                    self._index.reset()  # damaged: rebuilt from the folders on the retry
        return self._scan(folders, column)

    def _scan(self, folders: list[str], column: str) -> tuple[list[dict], dict[str, str]]:
        """The slow path without an index (e.g. a read-only store): read every folder."""
        readable, unreadable = [], {}
        for name in folders:
            result, problem = self._read_for_index(name)
            if result is None:
                unreadable[name] = problem
            else:
                readable.append(summary_of(result) if column == "summary" else light_of(result))
        readable.sort(key=lambda r: (str(r.get("created_at") or ""), r["id"]))
        return readable, unreadable

    def entries(self, **config_filter: Any) -> list[dict]:
        """The listing fields of every readable experiment, oldest first (from the index: nothing
        heavy is parsed): ``id``, ``kind``, ``created_at``, ``owner``, ``method_label``,
        ``code_version``, ``schema_version``, ``config`` and the scalar ``metrics``.
        ``config_filter`` keeps those whose config matches (e.g. ``dataset="digits"``).
        Unreadable experiments are recorded in :attr:`problems` (id -> why)."""
        return self._filtered("summary", config_filter)

    def light_results(self, **config_filter: Any) -> list[dict]:
        """Like :meth:`entries`, but whole results without the per-image blocks (``attack``,
        ``embedding``, ``cka``): what a table of experiments and its per-epoch curves need."""
        return self._filtered("light", config_filter)

    def _filtered(self, column: str, config_filter: dict) -> list[dict]:
        rows, self.problems = self._indexed(column)
        return [r for r in rows if all(r["config"].get(k) == v for k, v in config_filter.items())]

    def entry(self, experiment_id: str) -> dict:
        """The listing fields of one experiment (see :meth:`entries`), from the index.

        ExperimentNotFoundError if there is none; UnreadableExperimentError if it does not validate.
        """
        if not self._folder(experiment_id).is_dir():
            raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in {self.root}")
        rows, problems = self._indexed("summary")
        if experiment_id in problems:
            raise UnreadableExperimentError(unreadable_message(experiment_id, problems[experiment_id]),
                                            problems[experiment_id])
        for row in rows:
            if row["id"] == experiment_id:
                return row
        raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in {self.root}")

    def unreadable(self) -> dict[str, str]:
        """``{id: why}`` for every experiment folder whose result does not validate."""
        return self._indexed("summary")[1]

    def list(self, **config_filter: Any) -> list[Experiment]:
        """Every readable experiment (whole results), oldest first; ``config_filter`` as in
        :meth:`entries`. Unreadable folders are skipped and recorded in :attr:`problems`."""
        found = []
        for row in self.entries(**config_filter):
            try:
                found.append(self.load(row["id"]))
            except StoreError as err:  # changed since the index was read
                self.problems[row["id"]] = str(err)
        return found

    # --- deleting ----------------------------------------------------------------------------------
    def delete(self, experiment_id: str, owner: str | None = None) -> None:
        """Delete an experiment. References can't be deleted; an experiment that records an
        ``owner`` can only be deleted by that owner when ``owner`` is given (the app passes its
        browser session; the local CLI passes none).

        The rule is :func:`deletion_refusal`'s. An unreadable experiment can be deleted too (its claims are not trusted, so a "reference"
        that does not validate is no reference): from the CLI always, from a session only when its
        file names that session as owner.
        """
        folder = self._folder(experiment_id)
        try:
            experiment = self.load(experiment_id)
        except UnreadableExperimentError:
            experiment = None
            if owner is not None and _raw_owner(folder / RESULT_FILE) != owner:
                raise StoreError(f"{experiment_id} can't be read, so the session that made it can't be checked; "
                                 f"delete it on the server with `mucomp delete {experiment_id}`") from None
        except ExperimentNotFoundError:
            if not folder.is_dir():
                raise
            experiment = None  # a folder without result.json: nothing to protect
        if experiment is not None:
            refusal = deletion_refusal(experiment.result, owner)
            if refusal is not None:
                raise StoreError(f"{experiment_id}: {refusal}")
        trash = self.root / f"{_TRASH_PREFIX}{experiment_id}-{secrets.token_hex(3)}"
        with self._locked():
            os.rename(folder, trash)  # gone from listings at once
            self._index.remove(experiment_id)
        shutil.rmtree(trash, ignore_errors=True)

    # --- export / import ---------------------------------------------------------------------------
    def result_bytes(self, experiment_id: str) -> bytes:
        """The stored ``result.json`` of an experiment, as stored (for a download)."""
        return (self._folder(experiment_id) / RESULT_FILE).read_bytes()

    def weights_bytes(self, experiment_id: str) -> bytes | None:
        """The stored weights file (safetensors) of an experiment, or None when it has none."""
        path = self._folder(experiment_id) / MODEL_FILE
        return path.read_bytes() if path.is_file() else None

    def has_weights(self, experiment_id: str) -> bool:
        return (self._folder(experiment_id) / MODEL_FILE).is_file()

    def export(self, experiment_ids: list[str], destination: str | os.PathLike | io.BufferedIOBase) -> list[str]:
        """Write the chosen experiments to a zip (path or binary file object); returns the ids."""
        experiments = [self.load(i) for i in experiment_ids]
        if not experiments:
            raise StoreError("choose at least one experiment to export")
        manifest = {
            "format": "mucomp-experiments",
            "schema_version": SCHEMA_VERSION,
            "code_version": __version__,
            "exported_at": now_iso(),
            "ids": [e.id for e in experiments],
        }
        with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST_FILE, json.dumps(manifest, indent=1))
            for experiment in experiments:
                archive.write(experiment.path / RESULT_FILE, f"{experiment.id}/{RESULT_FILE}")
                if experiment.model_path.is_file():
                    archive.write(experiment.model_path, f"{experiment.id}/{MODEL_FILE}")
        return manifest["ids"]

    def import_(
        self,
        source: str | os.PathLike | io.BufferedIOBase,
        on_conflict: str = "error",
        *,
        allow_references: bool = False,
    ) -> list[str]:
        """Import every experiment of an exported zip; returns the imported ids.

        The whole archive is checked before anything is written (:func:`~mucomp.store.archive.read_archive`:
        names, duplicates, sizes, the result schema, the weights against the scenario's
        architecture; references only with ``allow_references`` and only when they match their
        weights). ``on_conflict``: ``"error"`` refuses the whole import if an id already exists;
        ``"skip"`` leaves existing experiments as they are and imports the rest. An imported
        reference never replaces or shadows one: a reference of the same scenario and kind already
        stored counts as a conflict.

        Another process may store one of the ids while the import runs: ``"skip"`` skips it too;
        ``"error"`` stops there with an ExperimentExistsError whose ``imported`` (and message)
        lists the experiments written before it (they stay: each is complete).
        """
        if on_conflict not in ("error", "skip"):
            raise ValueError("on_conflict must be 'error' or 'skip'")
        entries = read_archive(source, allow_references=allow_references)
        self._refuse_other_references(entries)
        existing = [i for i in entries if self._folder(i).exists() or self._shadows_reference(entries[i].result)]
        if existing and on_conflict == "error":
            raise ExperimentExistsError(
                f"the store already has {', '.join(existing)}; nothing was imported. Delete them first "
                "or skip the existing ones",
                existing,
            )
        imported = []
        for experiment_id, entry in entries.items():
            if experiment_id in existing:
                continue
            try:
                self._write_folder(experiment_id, entry.result_bytes, entry.model_bytes, entry.result)
            except ExperimentExistsError as err:
                if on_conflict == "skip":
                    continue
                done = f"only {', '.join(imported)} had been imported" if imported else "nothing was imported"
                raise ExperimentExistsError(
                    f"another process stored {experiment_id} during the import; {done}. Delete it "
                    "first or skip the existing ones",
                    [experiment_id],
                    imported,
                ) from err
            imported.append(experiment_id)
        return imported

    def _refuse_other_references(self, entries: dict) -> None:
        """Refuse (before writing anything) an archive holding experiments computed against another
        Retrained model than this store's (or the archive's own) for their scenario: their gaps,
        privacy scores and attacks measure distance to another model, and a group would pool them.
        """
        from mucomp.groups import reference_conflict, stored_references

        references = stored_references([entry.result for entry in entries.values()])
        references.update(stored_references(self.entries()))  # this store's own come first
        conflicts = {i: reason for i, entry in entries.items() if (reason := reference_conflict(entry.result, references))}
        if conflicts:
            first = next(iter(conflicts.values()))
            raise StoreError(
                f"{', '.join(sorted(conflicts))} can't be imported beside this store's experiments: {first}. "
                "Nothing was imported. Import them into another store (set MUCOMP_HOME to a new folder) together "
                "with the references they were computed against."
            )

    def _shadows_reference(self, result: dict) -> bool:
        """Whether ``result`` is a reference and the store has one of its scenario and kind already."""
        if result["kind"] not in PROTECTED_KINDS:
            return False
        config = result["config"]
        scenario = {k: config.get(k) for k in SCENARIO_KEYS}
        return any(r["kind"] == result["kind"] for r in self.entries(**scenario))

    # --- housekeeping ------------------------------------------------------------------------------
    def _sweep_leftovers(self, older_than_s: float = 3600.0) -> None:
        """Remove temporary and trash folders left by killed processes (old enough to be dead)."""
        cutoff = time.time() - older_than_s
        for folder in self.root.iterdir():
            if folder.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)) and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def deletion_refusal(result: dict, owner: str | None) -> str | None:
    """Why the browser session ``owner`` (None: the local command line) can't delete the stored
    ``result``, or None when it can: references never; from a browser session only the experiments
    that session made (not another session's, not a command-line run's); from the command line
    every other experiment."""
    if result.get("kind") in PROTECTED_KINDS:
        return f"it is a reference model ({result.get('kind')}); references can't be deleted"
    recorded = result.get("owner")
    if owner is not None and recorded != owner:
        return ("it was made in another session; only that session can delete it" if recorded is not None else
                "it was made on the command line; delete it there with `mucomp delete ID`")
    return None


def _raw_owner(path: Path) -> str | None:
    """The ``owner`` string an unreadable result.json names, if it can be found at all."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(MAX_RESULT_BYTES))
    except (OSError, ValueError, RecursionError):
        return None
    owner = data.get("owner") if isinstance(data, dict) else None
    return owner if isinstance(owner, str) else None


def _exists_error(experiment_id: str) -> ExperimentExistsError:
    return ExperimentExistsError(
        f"an experiment {experiment_id} already exists; it is never overwritten", [experiment_id]
    )


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


