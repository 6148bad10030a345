"""Checking an export archive completely before anything of it is written.

An archive made by :meth:`ExperimentStore.export` holds ``manifest.json`` and, per experiment,
``<id>/result.json`` and ``<id>/model.safetensors``. :func:`read_archive` refuses (with a
:class:`StoreError` saying what and "nothing was imported") anything else:

- entry names other than those, an id that is not exactly 3-64 of ``[a-z0-9-]``, an entry that
  appears twice (zip allows it; "the last one wins" would hide the first), sizes past the limits;
- a result that does not validate against :mod:`mucomp.schema`, or whose id differs from its folder;
- a missing model file, or weights that do not fit the scenario's architecture exactly (keys,
  shapes, dtypes) or hold NaN / infinite values;
- a reference model (``original`` / ``retrained``) unless ``allow_references``; even then only one
  whose recorded ``config.weights_sha256`` is the hash of its weights and whose id is the one this
  mucomp computes for its scenario, kind and checkpoint (:func:`check_reference`).
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mucomp.config import ScenarioDefinition, reference_experiment_id
from mucomp.names import (
    ID_PATTERN,
    MANIFEST_FILE,
    MAX_IMPORT_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_RESULT_BYTES,
    MODEL_FILE,
    PROTECTED_KINDS,
    RESULT_FILE,
)
from mucomp.specs import DATASETS
from mucomp.store.errors import StoreError
from mucomp.weights import WeightsFileError, check_weights, mismatch_text, read_weights, weights_sha256

if TYPE_CHECKING:
    import torch

_NOTHING = "nothing was imported"
#: What to do about an archive that is not an intact mucomp export (damaged, cut short, repacked).
_AGAIN = "Import the zip `mucomp export` wrote, unchanged"
_CHUNK = 1024 * 1024


@dataclass
class ArchiveEntry:
    """One experiment of a checked archive: its result (checked, upgraded) and the raw bytes."""

    result: dict
    result_bytes: bytes
    model_bytes: bytes


def read_archive(source: Any, *, allow_references: bool = False) -> dict[str, ArchiveEntry]:
    """Validate an export zip completely and return ``{id: ArchiveEntry}`` (see the module docstring)."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise StoreError(f"not a zip archive of mucomp experiments ({err}); {_NOTHING}. {_AGAIN} "
                         "(copy it again if the copy was cut short)") from err
    with archive:
        files, manifest = read_entries(archive)
    listed = manifest.get("ids")
    if not isinstance(listed, list) or sorted(map(str, listed)) != sorted(files) or len(set(map(str, listed))) != len(listed):
        raise StoreError(f"manifest.json does not list exactly the experiments in the archive; {_NOTHING}")
    entries = {experiment_id: _check_experiment(experiment_id, content, allow_references)
               for experiment_id, content in files.items()}
    check_model_files([(i, e.result, e.model_bytes) for i, e in entries.items()])
    return entries


def read_entries(archive: zipfile.ZipFile) -> tuple[dict[str, dict[str, bytes]], dict]:
    """The members of an export-shaped zip, checked for layout and size: ``({id: {file name:
    bytes}}, manifest)``; the manifest's other keys are the caller's (an export, a bundle) to check.
    StoreError says what is wrong; nothing is stored."""
    infos = [info for info in archive.infolist() if not info.is_dir()]
    twice = sorted(name for name, n in Counter(info.filename for info in infos).items() if n > 1)
    if twice:
        raise StoreError(f"the archive holds {', '.join(map(repr, twice))} more than once; {_NOTHING}. "
                         "Export the experiments again with `mucomp export`")
    if sum(info.file_size for info in infos) > MAX_IMPORT_BYTES:
        raise StoreError(f"the archive unpacks to more than 2 GB; {_NOTHING}")
    names = [info.filename for info in infos]
    if MANIFEST_FILE not in names:
        raise StoreError(f"the archive has no manifest.json; it was not exported by mucomp. {_NOTHING.capitalize()}")
    files: dict[str, dict[str, bytes]] = {}
    for info in infos:
        if info.filename == MANIFEST_FILE:
            continue
        parts = info.filename.split("/")
        if len(parts) != 2 or parts[1] not in (RESULT_FILE, MODEL_FILE) or not ID_PATTERN.fullmatch(parts[0]):
            raise StoreError(f"unexpected entry {info.filename!r} in the archive (a mucomp export holds only "
                             f"{MANIFEST_FILE} and ID/{RESULT_FILE}, ID/{MODEL_FILE}); {_NOTHING}. "
                             f"{_AGAIN} (not one repacked by another tool)")
        limit = MAX_RESULT_BYTES if parts[1] == RESULT_FILE else MAX_IMPORT_BYTES
        files.setdefault(parts[0], {})[parts[1]] = _read_member(archive, info, limit)
    try:
        manifest = json.loads(_read_member(archive, archive.getinfo(MANIFEST_FILE), MAX_MANIFEST_BYTES))
    except (ValueError, RecursionError) as err:
        raise StoreError(f"manifest.json is unreadable ({type(err).__name__}); {_NOTHING}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != "mucomp-experiments":
        raise StoreError(f"manifest.json does not describe a mucomp export; {_NOTHING}")
    return files, manifest


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, refused when its declared size or the bytes it actually unpacks to exceed
    ``limit``: counted while reading, in chunks, so an oversized member is never held whole
    (zipfile also stops at the declared size and checks the CRC)."""
    too_large = StoreError(f"{info.filename} is larger than {limit // 1024**2} MB, more than mucomp writes; {_NOTHING}")
    if info.file_size > limit:
        raise too_large
    chunks, size = [], 0
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as err:
        raise StoreError(f"{info.filename} in the archive is damaged ({err}); {_NOTHING}") from err
    return b"".join(chunks)


def _check_experiment(experiment_id: str, content: dict[str, bytes], allow_references: bool) -> ArchiveEntry:
    from mucomp.schema import ResultSchemaError, parse_result_bytes

    if RESULT_FILE not in content:
        raise StoreError(f"{experiment_id} has no result.json; {_NOTHING}")
    try:
        result = parse_result_bytes(content[RESULT_FILE])
    except ResultSchemaError as err:
        raise StoreError(f"{experiment_id}/result.json is unreadable ({err}); {_NOTHING}") from err
    if result["id"] != experiment_id:
        raise StoreError(f"{experiment_id}/result.json claims id {result['id']!r}; {_NOTHING}")
    if result["kind"] in PROTECTED_KINDS and not allow_references:
        raise StoreError(
            f"{experiment_id} is a reference model ({result['kind']}); references are made on this machine "
            f"(Home, or `mucomp references`), not imported, so an archive can't change what every experiment "
            f"is measured against. {_NOTHING.capitalize()}. To import a reference that matches its weights "
            "anyway, pass --allow-references"
        )
    if MODEL_FILE not in content:
        raise StoreError(f"{experiment_id} has no model.safetensors: an experiment without weights can't be "
                         f"contrasted or used as a base; {_NOTHING}")
    return ArchiveEntry(result, content[RESULT_FILE], content[MODEL_FILE])


def check_model_files(items: list[tuple[str, dict, bytes]]) -> None:
    """Every model file fits its scenario's architecture (strict keys, shapes and dtypes, finite
    values); references also match their recorded hash and id."""
    if not items:
        return
    for experiment_id, result, model_bytes in items:
        try:
            tensors = read_weights(MODEL_FILE, model_bytes)
        except WeightsFileError as err:
            raise StoreError(f"{experiment_id}/{MODEL_FILE} is not a valid safetensors file ({err.detail}); {_NOTHING}") from err
        problem = weights_problem(result["config"]["dataset"], tensors, result["config"].get("arch"))
        if problem:
            raise StoreError(f"{experiment_id}/{MODEL_FILE}: {problem}; {_NOTHING}")
        if result["kind"] in PROTECTED_KINDS:
            check_reference(experiment_id, result, tensors)


def weights_problem(dataset: str, tensors: dict[str, torch.Tensor], arch: str | None = None) -> str | None:
    """Why ``tensors`` can't be the weights of ``arch`` (default: ``dataset``'s architecture), or
    None if they can (:func:`mucomp.weights.check_weights`)."""
    from mucomp.models import expected_weights  # here: listing the store never imports torch

    spec = DATASETS[dataset]
    arch = arch or spec.arch
    if arch not in spec.archs:
        return f"{arch!r} is not an architecture of {dataset} ({', '.join(spec.archs)})"
    check = check_weights(tensors, expected_weights(arch, spec.num_classes))
    named = dataset if arch == spec.arch else f"{dataset} ({arch})"  # the arch where it is not the default
    if check.missing or check.unexpected or check.shapes:
        shapes = [] if check.missing or check.unexpected else [s.split(" ", 1)[0] for s in check.shapes]
        return (f"the weights do not fit the {named} architecture "
                f"({mismatch_text(check.missing, check.unexpected, shapes)})")
    return check.problem(arch)


def check_reference(experiment_id: str, result: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse an imported reference unless its weights are the ones it names: the recorded
    ``config.weights_sha256`` equals the hash of ``tensors``, and its id is the one this mucomp
    gives the reference of its scenario, kind and checkpoint."""
    config = result["config"]
    recorded = config.get("weights_sha256")
    if recorded is None:
        raise StoreError(f"{experiment_id} is a reference without a recorded weights hash (stored by an older "
                         f"mucomp); prepare the references on this machine instead. {_NOTHING.capitalize()}")
    if recorded != weights_sha256(tensors):
        raise StoreError(f"{experiment_id}: its weights are not the ones its result records (hash mismatch); "
                         f"{_NOTHING}")
    scenario = ScenarioDefinition.from_config(config)
    checkpoint = str(config.get("checkpoint") or "")
    expected = reference_experiment_id(scenario, result["kind"], checkpoint)
    # A version-2 reference of seed s became training and data seed s; its id kept the old form.
    legacy = reference_experiment_id(ScenarioDefinition(scenario.dataset, scenario.forget_class, scenario.train_seed),
                                     result["kind"], checkpoint) \
        if scenario.forget_class is not None and scenario.data_seed == scenario.train_seed else None
    if experiment_id not in (expected, legacy):
        raise StoreError(f"{experiment_id} is not the id of the {result['kind']} reference it claims to be "
                         f"(expected {expected}); {_NOTHING}")
