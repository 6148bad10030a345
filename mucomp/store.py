"""The experiment store: one folder per experiment under ``$MUCOMP_HOME/experiments``.

Each folder holds ``result.json`` (every figure the pages show, the config, a schema version, the
code version and timings) and ``model.safetensors`` (the weights). Experiments are immutable: a
folder is written completely under a temporary name and then renamed into place in one atomic
step, so a process killed while saving leaves either no experiment or the whole experiment, never
half of one. Ids are generated here, never taken from user text, and every id that reaches a path
is validated first.

Export writes a zip of chosen experiments; import checks the whole archive (names, sizes, JSON
schema, safetensors headers) before writing anything and refuses to overwrite an experiment that
already exists.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from mucomp import __version__, settings
from mucomp.metrics import to_json_safe
from mucomp.models import WeightsFileError, read_weights

SCHEMA_VERSION = 1
RESULT_FILE = "result.json"
MODEL_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
KINDS = ("original", "retrained", "unlearned", "custom")
PROTECTED_KINDS = ("original", "retrained")
REQUIRED_KEYS = ("schema_version", "id", "kind", "created_at", "config", "metrics")
MAX_IMPORT_BYTES = 2 * 1024**3  # uncompressed archive content
MAX_RESULT_BYTES = 256 * 1024**2
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"


class StoreError(RuntimeError):
    """A store operation was refused or failed; the message says why and what to do."""


class ExperimentNotFoundError(StoreError, KeyError):
    """No experiment with that id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidIdError(StoreError, ValueError):
    """A malformed experiment id (the caller's argument error, never the store's failure)."""


class ExperimentExistsError(StoreError):
    """Writing would replace stored experiments (``ids``); they were left as they are.

    ``imported`` lists what an import had written before it met them (empty when the conflict was
    found before anything was written).
    """

    def __init__(self, message: str, ids: list[str], imported: list[str] | None = None):
        super().__init__(message)
        self.ids = ids
        self.imported = list(imported or [])

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def validate_id(experiment_id: object) -> str:
    """Return ``experiment_id`` if it is a well-formed store id, else raise InvalidIdError.

    Ids are 3-64 characters of lowercase letters, digits and ``-``, starting with a letter or
    digit; nothing else (no ``/``, ``..`` or spaces) can reach a path.
    """
    if not isinstance(experiment_id, str) or not ID_PATTERN.match(experiment_id):
        raise InvalidIdError(
            f"{experiment_id!r} is not a valid experiment id (3-64 lowercase letters, digits and '-')"
        )
    return experiment_id


def validate_result(result: object) -> dict:
    """Check that ``result`` looks like a stored result of a schema this version can read."""
    if not isinstance(result, dict):
        raise StoreError("result.json must hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in result]
    if missing:
        raise StoreError(f"result.json lacks the keys {missing}; it is not a mucomp experiment")
    version = result["schema_version"]
    if not isinstance(version, int) or version < 1 or version > SCHEMA_VERSION:
        raise StoreError(
            f"result.json has schema version {version!r}; this mucomp ({__version__}) reads 1..{SCHEMA_VERSION}. "
            "Upgrade mucomp to read it."
        )
    validate_id(result["id"])
    if result["kind"] not in KINDS:
        raise StoreError(f"unknown experiment kind {result['kind']!r}; expected one of {KINDS}")
    if not isinstance(result["config"], dict) or not isinstance(result["metrics"], dict):
        raise StoreError("result.json: 'config' and 'metrics' must be JSON objects")
    return result


def _check_safetensors(data: bytes) -> None:
    """Raise StoreError unless ``data`` is a well-formed safetensors file of tensors."""
    try:
        tensors = read_weights(MODEL_FILE, data)
    except WeightsFileError as err:
        raise StoreError(f"{MODEL_FILE} is not a valid safetensors file ({err.detail})") from err
    if not tensors:
        raise StoreError(f"{MODEL_FILE} holds no tensors")


@dataclass
class Experiment:
    """A stored experiment: its ``result`` (the parsed result.json) and its folder."""

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

    Safe to use from several threads of one process; several processes may share a store
    (writes are atomic renames of complete folders).
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else settings.home() / "experiments"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.problems: dict[str, str] = {}
        self._sweep_leftovers()

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

        ``result`` gets ``id`` (generated if absent), ``schema_version``, ``created_at`` and
        ``code_version`` filled in when missing; NaN becomes ``null``. An id that already exists
        (also one another process stores at the same moment) raises ExperimentExistsError:
        experiments are never overwritten.
        """
        result = dict(result)
        result.setdefault("id", self.new_id())
        result.setdefault("schema_version", SCHEMA_VERSION)
        result.setdefault("created_at", now_iso())
        result.setdefault("code_version", __version__)
        result = to_json_safe(result)
        validate_result(result)
        payload = json.dumps(result, allow_nan=False, indent=1).encode()
        model_bytes = None
        if state_dict is not None:
            from safetensors.torch import save

            tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
            model_bytes = save(tensors, metadata={"id": result["id"], "kind": result["kind"]})
        self._write_folder(result["id"], payload, model_bytes)
        return self.load(result["id"])

    def _write_folder(self, experiment_id: str, result_bytes: bytes, model_bytes: bytes | None) -> None:
        """Write a complete folder under a temporary name, then rename it into place.

        The existence check only gives the usual case a clear message early: another process may
        store the same id between the check and the rename (the lock covers this process only).
        Renaming a folder onto an existing non-empty one fails (ENOTEMPTY / EEXIST), so the
        rename itself is the check that counts; either way the temporary folder is removed.
        """
        final = self._folder(experiment_id)
        tmp = self.root / f"{_TMP_PREFIX}{experiment_id}-{secrets.token_hex(3)}"
        tmp.mkdir()
        try:
            _write_synced(tmp / RESULT_FILE, result_bytes)
            if model_bytes is not None:
                _write_synced(tmp / MODEL_FILE, model_bytes)
            with self._lock:
                if final.exists():
                    raise _exists_error(experiment_id)
                try:
                    os.rename(tmp, final)  # atomic on one file system: all or nothing
                except OSError as err:
                    if isinstance(err, FileExistsError) or err.errno == errno.ENOTEMPTY:
                        raise _exists_error(experiment_id) from err  # another process stored it since the check
                    raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.root)

    # --- reading -----------------------------------------------------------------------------------
    def load(self, experiment_id: str) -> Experiment:
        """The experiment ``experiment_id``; ExperimentNotFoundError if there is none."""
        folder = self._folder(experiment_id)
        path = folder / RESULT_FILE
        if not path.is_file():
            raise ExperimentNotFoundError(f"no experiment {experiment_id!r} in {self.root}")
        try:
            result = validate_result(json.loads(path.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StoreError(f"experiment {experiment_id}: result.json is unreadable ({err})") from err
        if result["id"] != experiment_id:
            raise StoreError(f"experiment folder {experiment_id} holds a result for {result['id']!r}")
        return Experiment(experiment_id, result, folder)

    def ids(self) -> list[str]:
        """The ids of every experiment folder (readable or not), sorted; nothing is parsed."""
        if not self.root.is_dir():
            return []
        return sorted(
            folder.name for folder in self.root.iterdir()
            if not folder.name.startswith(".") and ID_PATTERN.match(folder.name) and folder.is_dir()
        )

    def list(self, **config_filter) -> list[Experiment]:
        """Every readable experiment, oldest first; ``config_filter`` keeps those whose config
        matches (e.g. ``dataset="digits", forget_class=3``). Unreadable folders are skipped and
        recorded in :attr:`problems`."""
        found = []
        self.problems = {}
        for name in self.ids():
            try:
                experiment = self.load(name)
            except StoreError as err:
                self.problems[name] = str(err)
                continue
            if all(experiment.config.get(k) == v for k, v in config_filter.items()):
                found.append(experiment)
        found.sort(key=lambda e: (e.result.get("created_at", ""), e.id))
        return found

    # --- deleting ----------------------------------------------------------------------------------
    def delete(self, experiment_id: str, owner: str | None = None) -> None:
        """Delete an experiment. References can't be deleted; an experiment that records an
        ``owner`` can only be deleted by that owner when ``owner`` is given (the app passes its
        browser session; the local CLI passes none)."""
        experiment = self.load(experiment_id)
        if experiment.protected:
            raise StoreError(f"{experiment_id} is a reference model ({experiment.kind}); references can't be deleted")
        recorded = experiment.result.get("owner")
        if owner is not None and recorded is not None and recorded != owner:
            raise StoreError(f"{experiment_id} was made in another session; only that session can delete it")
        trash = self.root / f"{_TRASH_PREFIX}{experiment_id}-{secrets.token_hex(3)}"
        with self._lock:
            os.rename(experiment.path, trash)  # gone from listings at once
        shutil.rmtree(trash, ignore_errors=True)

    # --- export / import ---------------------------------------------------------------------------
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

    def import_(self, source: str | os.PathLike | io.BufferedIOBase, on_conflict: str = "error") -> list[str]:
        """Import every experiment of an exported zip; returns the imported ids.

        The whole archive is checked before anything is written: only ``manifest.json`` and
        ``<id>/result.json`` / ``<id>/model.safetensors`` entries with valid ids, sizes within
        limits, readable results of a known schema whose id matches the folder, valid safetensors.
        ``on_conflict``: ``"error"`` refuses the whole import if an id already exists;
        ``"skip"`` leaves existing experiments as they are and imports the rest.

        Another process may store one of the ids while the import runs: ``"skip"`` skips it too;
        ``"error"`` stops there with an ExperimentExistsError whose ``imported`` (and message)
        lists the experiments written before it (they stay: each is complete).
        """
        if on_conflict not in ("error", "skip"):
            raise ValueError("on_conflict must be 'error' or 'skip'")
        entries = _read_archive(source)
        existing = [i for i in entries if self._folder(i).exists()]  # a damaged folder counts too
        if existing and on_conflict == "error":
            raise ExperimentExistsError(
                f"the store already has {', '.join(existing)}; nothing was imported. Delete them first "
                "or skip the existing ones",
                existing,
            )
        imported = []
        for experiment_id, (result_bytes, model_bytes) in entries.items():
            if experiment_id in existing:
                continue
            try:
                self._write_folder(experiment_id, result_bytes, model_bytes)
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

    # --- housekeeping ------------------------------------------------------------------------------
    def _sweep_leftovers(self, older_than_s: float = 3600.0) -> None:
        """Remove temporary and trash folders left by killed processes (old enough to be dead)."""
        cutoff = time.time() - older_than_s
        for folder in self.root.iterdir():
            if folder.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)) and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


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


def _read_archive(source) -> dict[str, tuple[bytes, bytes | None]]:
    """Validate an export zip completely and return ``{id: (result bytes, model bytes or None)}``."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as err:
        raise StoreError(f"not a zip archive of mucomp experiments ({err}); nothing was imported") from err
    with archive:
        infos = archive.infolist()
        if sum(info.file_size for info in infos) > MAX_IMPORT_BYTES:
            raise StoreError("the archive unpacks to more than 2 GB; nothing was imported")
        names = [info.filename for info in infos if not info.is_dir()]
        if MANIFEST_FILE not in names:
            raise StoreError("the archive has no manifest.json; it was not exported by mucomp. Nothing was imported")
        try:
            manifest = json.loads(archive.read(MANIFEST_FILE))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StoreError(f"manifest.json is unreadable ({err}); nothing was imported") from err
        if not isinstance(manifest, dict) or manifest.get("format") != "mucomp-experiments":
            raise StoreError("manifest.json does not describe a mucomp export; nothing was imported")
        files: dict[str, dict[str, bytes]] = {}
        for name in names:
            if name == MANIFEST_FILE:
                continue
            parts = name.split("/")
            if len(parts) != 2 or parts[1] not in (RESULT_FILE, MODEL_FILE) or not ID_PATTERN.match(parts[0]):
                raise StoreError(f"unexpected entry {name!r} in the archive; nothing was imported")
            info = archive.getinfo(name)
            if parts[1] == RESULT_FILE and info.file_size > MAX_RESULT_BYTES:
                raise StoreError(f"{name} is too large; nothing was imported")
            files.setdefault(parts[0], {})[parts[1]] = archive.read(name)
    listed = manifest.get("ids")
    if not isinstance(listed, list) or sorted(listed) != sorted(files):
        raise StoreError("manifest.json does not list exactly the experiments in the archive; nothing was imported")
    entries = {}
    for experiment_id, content in files.items():
        if RESULT_FILE not in content:
            raise StoreError(f"{experiment_id} has no result.json; nothing was imported")
        try:
            result = json.loads(content[RESULT_FILE])
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StoreError(f"{experiment_id}/result.json is unreadable ({err}); nothing was imported") from err
        try:
            validate_result(result)
        except StoreError as err:
            raise StoreError(f"{experiment_id}: {err}; nothing was imported") from err
        if result["id"] != experiment_id:
            raise StoreError(f"{experiment_id}/result.json claims id {result['id']!r}; nothing was imported")
        model_bytes = content.get(MODEL_FILE)
        if model_bytes is not None:
            _check_safetensors(model_bytes)
        entries[experiment_id] = (content[RESULT_FILE], model_bytes)
    return entries
