"""Reproducibility bundles: everything needed to rerun stored experiments elsewhere, in one zip.

A bundle is an export archive (:meth:`mucomp.store.ExperimentStore.export`'s layout, so a bundle
with weights is also an archive ``mucomp import`` accepts) whose ``manifest.json`` carries one more
block, ``bundle``: readable, indented JSON that says per experiment

- ``config``: the stored config with every seed (``seeds`` repeats them: ``train_seed`` trains the
  references, ``data_seed`` draws a random forget set and the fixed subsets, ``seed`` drives the
  unlearning run);
- ``scenario``: data set, architecture, forget set, their sizes, ``data_sha256`` (the split arrays,
  :func:`~mucomp.data.data_sha256`) and ``forget_sha256`` (the forget indices);
- ``references``: the identities of the Original and the Retrained model the experiment's figures
  were computed against (the ones its result recorded; ``references_recorded``: "run", or
  "export" for results made before results recorded them, then the store's newest): the stored
  reference id, its checkpoint (a Hub repo and file, or the local recipe and its hash) and
  ``weights_sha256``;
- ``base``: ``original`` or the bundled experiment it started from (bases are bundled too);
- ``code`` and ``environment``: the mucomp version that ran it, and the code, libraries, device
  and precision (``environment_recorded`` says whether the run recorded them or, for results that
  do not carry them, the export did);
- ``metrics``: the experiment's whole metrics block; ``weights_sha256`` (the hash of its weights,
  recorded even when the weights are not bundled) and ``weights_included``.

Layout::

    manifest.json              {"format": "mucomp-experiments", "ids": [...], ..., "bundle": {...}}
    <id>/result.json           the stored result, byte for byte
    <id>/model.safetensors     the weights (unless the bundle was made without them)

Everything read from a bundle is untrusted: :func:`read_bundle` applies the archive checks of
``mucomp import`` (entry names, duplicates, sizes, the result schema, the weights against the
architecture, references against their hashes) and checks the bundle block itself: strict JSON,
its own typed schema, and that it says what the results say (same ids, configs, kinds, metrics,
environment and references). :func:`import_archive` applies the same checks to a bundle.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mucomp.names import (
    ID_PATTERN,
    KINDS,
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    MAX_RESULT_BYTES,
    MODEL_FILE,
    PROTECTED_KINDS,
    RESULT_FILE,
    SCHEMA_VERSION,
)
from mucomp.schema import ExperimentId
from mucomp.store.errors import StoreError

if TYPE_CHECKING:
    from mucomp.store import Experiment, ExperimentStore

BUNDLE_FORMAT = "mucomp-bundle"
BUNDLE_VERSION = 1
#: The per-experiment manifest file of a Hub folder (a one-experiment ``bundle`` block).
EXPERIMENT_MANIFEST_FILE = "bundle.json"
#: Most experiments one bundle may hold.
MAX_EXPERIMENTS = 10_000


# --- the bundle block's schema (untrusted input: bounded, strict) --------------------------------
Text = Annotated[str, Field(strict=True, max_length=512)]
Sha = Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(strict=True, ge=0, le=2**53)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class ReferenceIdentity(_Open):
    """One reference model: which stored reference, which checkpoint, which weights."""

    kind: Literal["original", "retrained"]
    experiment_id: Text | None = None
    checkpoint: Text | None = None
    weights_sha256: Sha | None = None
    source: Literal["hub", "local"] | None = None
    hub_repo: Text | None = None
    hub_file: Text | None = None
    recipe_hash: Text | None = None


class ScenarioIdentity(_Open):
    """The images an experiment was measured on."""

    key: Text
    dataset: Text
    arch: Text | None = None
    forget: Text
    n_forget: Count
    n_train: Count
    n_test: Count
    data_sha256: Sha
    forget_sha256: Sha


class ExperimentManifest(_Open):
    """One experiment of a bundle (see the module docstring)."""

    id: ExperimentId
    kind: Literal[KINDS]  # type: ignore[valid-type]
    schema_version: Annotated[int, Field(strict=True, ge=1, le=1000)]
    group: Text | None = None
    method_label: Text | None = None
    created_at: Text | None = None
    config: dict[Text, Any]
    seeds: dict[Text, Count] = {}
    scenario: ScenarioIdentity
    base: Text | None = None
    references: dict[Literal["original", "retrained"], ReferenceIdentity] = {}
    code: dict[Text, Any] = {}
    environment: dict[Text, Any] = {}
    environment_recorded: Literal["run", "export"] = "export"
    #: "run": ``references`` are the ones the result recorded; "export": the exporting store's newest.
    references_recorded: Literal["run", "export"] = "export"
    metrics: dict[Text, Any]
    weights_sha256: Sha | None = None
    weights_included: bool


class BundleBlock(_Open):
    """The ``bundle`` block of a manifest (or a Hub folder's ``bundle.json``)."""

    format: Literal["mucomp-bundle"]
    version: Literal[1]
    created_at: Text | None = None
    exported_by: dict[Text, Any] = {}
    experiments: Annotated[dict[Text, ExperimentManifest], Field(max_length=MAX_EXPERIMENTS)]
    groups: dict[Text, Any] = {}


@dataclass
class BundleEntry:
    """One experiment of a checked bundle: its manifest, its result (checked, current schema), the
    stored bytes of that result and the weights (None when not bundled)."""

    id: str
    manifest: dict
    result: dict
    result_bytes: bytes
    model_bytes: bytes | None


@dataclass
class Bundle:
    """A checked bundle: its ``bundle`` block and its experiments, bases before what starts from them."""

    block: dict
    entries: dict[str, BundleEntry] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(self.entries)


# --- making a bundle ------------------------------------------------------------------------------
def group_members(store: ExperimentStore, group: str) -> list[str]:
    """The ids of every stored experiment of replicate group ``group``, oldest first."""
    members = [row["id"] for row in store.entries() if row.get("group") == group]
    if not members:
        raise StoreError(f"no stored experiment belongs to group {group!r}; `mucomp list --json` shows each "
                         "experiment's group")
    return members


def bundle_members(store: ExperimentStore, ids: list[str]) -> list[Experiment]:
    """The experiments ``ids`` and every stored experiment they start from (``config.base``),
    each once, bases first: a rerun needs its base rerun before it."""
    ordered: dict[str, Experiment] = {}

    def visit(experiment_id: str, path: tuple[str, ...]) -> None:
        if experiment_id in ordered:
            return
        if experiment_id in path:
            raise StoreError(f"the bases of {path[0]} form a cycle ({' -> '.join(path + (experiment_id,))})")
        experiment = store.load(experiment_id)
        if experiment.kind == "comparator":  # mucomp.sharing.comparator.KIND
            raise StoreError(f"{experiment_id} was imported from the published comparator's result file without "
                             "weights: a bundle of it could not be rerun. Share the comparator's file instead")
        base = experiment.config.get("base")
        if isinstance(base, str) and base != "original":
            if not store.exists(base):
                raise StoreError(f"{experiment_id} starts from {base}, which is not in the store: a bundle of it "
                                 "could not be rerun. Bundle the experiments that are complete instead")
            visit(base, path + (experiment_id,))
        ordered[experiment_id] = experiment

    for experiment_id in ids:
        visit(experiment_id, ())
    if not ordered:
        raise StoreError("choose at least one experiment to bundle")
    return list(ordered.values())


def bundle_problem(store: ExperimentStore, experiment_id: str, rows: list[dict] | None = None) -> str | None:
    """Why ``experiment_id`` can't be bundled (a base it starts from is gone), or None.

    Reads the listing ``rows`` a page holds already (a base belongs to its experiment's scenario,
    so it is among them), else the store's index: cheap enough to ask on every render.
    """
    known = {row["id"]: row for row in rows or []}
    seen = set()
    current = experiment_id
    while current not in seen:
        seen.add(current)
        try:
            row = known.get(current) or store.entry(current)
        except StoreError as err:
            return str(err)
        if row.get("kind") == "comparator":  # mucomp.sharing.comparator.KIND
            return ("it was imported from the published comparator's result file without weights: there is nothing "
                    "to rerun (its file stays the source)")
        base = row["config"].get("base")
        if not isinstance(base, str) or base == "original":
            return None
        if base not in known and not store.exists(base):
            return f"it starts from {base}, which is no longer stored"
        current = base
    return "its bases form a cycle"


def _reference_identities(store: ExperimentStore, scenario: Any, recorded: Any) -> dict[str, dict]:
    """The references an experiment's figures were computed against, as identities: the ones its
    result ``recorded`` (``references``: id and weights hash per kind), else, for results made
    before experiments recorded them, the newest stored reference of each kind of ``scenario``."""
    if isinstance(recorded, dict) and recorded:
        return {kind: _recorded_identity(store, scenario, kind, block) for kind, block in recorded.items()
                if isinstance(block, dict)}
    from mucomp.data import Scenario

    found: dict[str, dict] = {}
    for row in store.entries(dataset=scenario.dataset):
        if row["kind"] not in PROTECTED_KINDS:
            continue
        try:
            if Scenario.from_config(row["config"]).key != scenario.key:
                continue
        except (ValueError, KeyError, TypeError):
            continue  # a reference of a scenario this mucomp can't rebuild: not this one
        found[row["kind"]] = row  # rows are oldest first: the newest wins
    return {kind: _row_identity(scenario, kind, row) for kind, row in found.items()}


def _recorded_identity(store: ExperimentStore, scenario: Any, kind: str, block: dict) -> dict:
    """The identity of the ``kind`` reference a result recorded (``{"id", "weights_sha256"}``),
    completed from its stored entry when this store still holds it with those weights."""
    try:
        row = store.entry(block.get("id"))
    except (StoreError, TypeError, ValueError):
        row = None
    if row is not None and row.get("kind") == kind and row["config"].get("weights_sha256") == block.get("weights_sha256"):
        return _row_identity(scenario, kind, row)
    return {"kind": kind, "experiment_id": block.get("id"), "checkpoint": None,
            "weights_sha256": block.get("weights_sha256")}


def _row_identity(scenario: Any, kind: str, row: dict) -> dict:
    from mucomp.references import cache_path

    checkpoint = str(row["config"].get("checkpoint") or "")
    identity: dict[str, Any] = {"kind": kind, "experiment_id": row["id"], "checkpoint": checkpoint or None,
                                "weights_sha256": row["config"].get("weights_sha256")}
    parts = checkpoint.split("/")
    if len(parts) >= 3:  # "<owner>/<repo>/<file>": a published Hub checkpoint
        identity.update(source="hub", hub_repo="/".join(parts[:2]), hub_file="/".join(parts[2:]))
    elif len(parts) == 2:  # "<recipe hash>/<name>": trained here with a local recipe
        identity.update(source="local", recipe_hash=parts[0])
        if cache_path(scenario, kind).parent.name == parts[0]:
            from mucomp.recipes import RECIPES

            identity["recipe"] = RECIPES[scenario.dataset].as_dict()  # the recipe behind that hash
    return identity


def _scenario_identity(config: dict) -> tuple[Any, dict]:
    from mucomp.data import Scenario, data_sha256

    scenario = Scenario.from_config(config)
    data = scenario.data
    return scenario, {
        "key": scenario.key, "dataset": scenario.dataset, "arch": scenario.arch, "forget": scenario.forget_set.text,
        "n_forget": int(scenario.forget_indices.size), "n_train": len(data.train), "n_test": len(data.test),
        "data_sha256": data_sha256(scenario.dataset), "forget_sha256": scenario.forget_sha256,
    }


def experiment_manifest(store: ExperimentStore, experiment: Experiment, *, weights: bool,
                        export_environment: dict) -> dict:
    """The bundle manifest of one stored experiment (see the module docstring). ``weights``:
    whether its weights go into the bundle; ``export_environment`` is recorded for results
    that do not carry the environment they ran in."""
    from mucomp.store import weights_sha256

    result = experiment.result
    config = result["config"]
    scenario, scenario_identity = _scenario_identity(config)
    has_weights = experiment.model_path.is_file()
    recorded = result.get("environment")
    ran_in = recorded if isinstance(recorded, dict) else export_environment
    code = {"code_version": result.get("code_version"),
            **{k: ran_in.get(k) for k in ("mucomp", "git_commit", "git_dirty", "source_sha256")}}
    base = config.get("base")
    return {
        "id": experiment.id,
        "kind": experiment.kind,
        "schema_version": SCHEMA_VERSION,  # what config and metrics below follow
        "group": result.get("group"),
        "method_label": result.get("method_label"),
        "created_at": result.get("created_at"),
        "config": config,
        "seeds": {k: v for k, v in config.items() if k.endswith("seed") and isinstance(v, int)},
        "scenario": scenario_identity,
        "base": base if isinstance(base, str) else None,
        "references": _reference_identities(store, scenario, result.get("references")),
        "references_recorded": "run" if isinstance(result.get("references"), dict) else "export",
        "code": code,
        "environment": ran_in,
        "environment_recorded": "run" if isinstance(recorded, dict) else "export",
        "metrics": result["metrics"],
        "weights_sha256": weights_sha256(experiment.state_dict()) if has_weights else None,
        "weights_included": bool(weights and has_weights),
    }


def bundle_block(manifests: list[dict], *, exported_by: dict, created_at: str | None) -> dict:
    """A ``bundle`` block of experiment manifests, with each replicate group's statistics
    (:func:`mucomp.groups.summarize`: mean and 95 % t-interval per metric)."""
    from mucomp.groups import summarize

    groups: dict[str, list[dict]] = {}
    for manifest in manifests:
        if manifest.get("group") and manifest.get("kind") == "unlearned":
            groups.setdefault(manifest["group"], []).append(manifest)
    return {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "created_at": created_at,
        "exported_by": exported_by,
        "experiments": {m["id"]: m for m in manifests},
        "groups": {g: {metric: {k: v for k, v in stats.items() if k != "values"}
                       for metric, stats in summarize(members).items()} for g, members in groups.items()},
    }


def archive_manifest(ids: list[str], block: dict, exported_at: str) -> dict:
    """``manifest.json`` of a bundle: an export manifest (so ``mucomp import`` reads it) + ``bundle``."""
    from mucomp import __version__

    return {"format": "mucomp-experiments", "schema_version": SCHEMA_VERSION, "code_version": __version__,
            "exported_at": exported_at, "ids": list(ids), "bundle": block}


def write_bundle(
    store: ExperimentStore,
    ids: list[str],
    destination: str | os.PathLike | io.BufferedIOBase,
    *,
    weights: bool = True,
) -> list[str]:
    """Write a bundle of ``ids`` (and their bases) to ``destination`` (a path or a binary file
    object); returns the bundled ids, bases first. ``weights=False`` leaves the weights out (the
    manifest still records their hash)."""
    from mucomp.environment import environment
    from mucomp.store import now_iso

    experiments = bundle_members(store, ids)
    here = environment()
    manifests = [experiment_manifest(store, e, weights=weights, export_environment=here) for e in experiments]
    created = now_iso()
    block = bundle_block(manifests, exported_by=here, created_at=created)
    order = [e.id for e in experiments]
    if isinstance(destination, (str, os.PathLike)):  # a file: written whole or not at all
        with atomic_path(destination) as partial:
            return _write_zip(partial, experiments, manifests, order, block, created)
    return _write_zip(destination, experiments, manifests, order, block, created)


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike) -> Iterator[Path]:
    """A temporary path in ``destination``'s folder to write to; renamed onto ``destination``
    (``os.replace``) when the block completes, removed when it fails, so an interrupted write never
    leaves a truncated file there (a file that was there stays as it was). A process killed
    outright leaves at most the hidden ``.<name>.<random>.partial`` beside it."""
    final = Path(destination)
    if not final.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder to write into", str(final.parent))
    partial = final.with_name(f".{final.name}.{secrets.token_hex(4)}.partial")
    try:
        yield partial
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _write_zip(destination: Any, experiments: list[Experiment], manifests: list[dict], order: list[str],
               block: dict, created: str) -> list[str]:
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_FILE, json.dumps(archive_manifest(order, block, created), indent=1, allow_nan=False))
        for experiment, manifest in zip(experiments, manifests, strict=True):
            archive.write(experiment.path / RESULT_FILE, f"{experiment.id}/{RESULT_FILE}")
            if manifest["weights_included"]:
                archive.write(experiment.model_path, f"{experiment.id}/{MODEL_FILE}")
    return order


def bundle_bytes(store: ExperimentStore, ids: list[str], *, weights: bool = True) -> bytes:
    """The bytes of :func:`write_bundle` (what the Screen page offers for download)."""
    buffer = io.BytesIO()
    write_bundle(store, ids, buffer, weights=weights)
    return buffer.getvalue()


# --- reading a bundle (untrusted) -----------------------------------------------------------------
_REFUSED = "nothing was rerun or imported"


def check_block(data: bytes | str, where: str) -> dict:
    """Strict JSON of a ``bundle`` block (``where`` names it in messages), checked against
    :class:`BundleBlock`; returns the parsed dict. StoreError says what is wrong."""
    from mucomp.schema import ResultSchemaError, parse_json

    if len(data) > MAX_MANIFEST_BYTES:
        raise StoreError(f"{where} is larger than {MAX_MANIFEST_BYTES // 1024**2} MB; {_REFUSED}")
    try:
        value = parse_json(data)
    except ResultSchemaError as err:
        raise StoreError(f"{where} is unreadable ({err}); {_REFUSED}") from err
    return validate_block(value, where)


def validate_block(block: Any, where: str) -> dict:
    """A parsed ``bundle`` block checked against :class:`BundleBlock` (see :func:`check_block`)."""
    from mucomp.schema import describe

    if not isinstance(block, dict) or block.get("format") != BUNDLE_FORMAT:
        raise StoreError(f"{where} holds no reproducibility bundle (an export of experiments is not one: make one "
                         f"with `mucomp export --bundle ID... -o FILE`); {_REFUSED}")
    version = block.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > BUNDLE_VERSION:
        raise StoreError(f"{where} is a version-{version} bundle, newer than this mucomp reads ({BUNDLE_VERSION}); "
                         f"upgrade mucomp. {_REFUSED.capitalize()}")
    try:
        BundleBlock.model_validate(block)
    except ValidationError as err:
        raise StoreError(f"{where}: {describe(err)}; {_REFUSED}") from None
    for key, manifest in block["experiments"].items():
        if manifest["id"] != key:
            raise StoreError(f"{where}: the manifest under {key!r} claims id {manifest['id']!r}; {_REFUSED}")
    return block


def read_bundle(source: Any, *, check_weights: bool = True) -> Bundle:
    """Check a bundle completely (see the module docstring) and return it; StoreError says why not.
    ``check_weights=False`` leaves the weights to the caller (an import checks them as it stores)."""
    from mucomp.store.archive import check_model_files, read_entries

    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise StoreError(f"not a zip archive of a mucomp bundle ({err}); {_REFUSED}. Give the zip "
                         "`mucomp export --bundle` wrote (copy it again if the copy was cut short)") from err
    with archive:
        # The checks of `mucomp import`: entry names, duplicates, total size, the export manifest.
        files, loose = read_entries(archive)
        info = archive.getinfo(MANIFEST_FILE)
        if info.file_size > MAX_MANIFEST_BYTES:
            raise StoreError(f"manifest.json is larger than {MAX_MANIFEST_BYTES // 1024**2} MB; {_REFUSED}")
        raw = archive.read(info)
    from mucomp.schema import ResultSchemaError, parse_json

    try:
        manifest = parse_json(raw)  # strict this time: no NaN, bounded depth and integers
    except ResultSchemaError as err:
        raise StoreError(f"manifest.json is unreadable ({err}); {_REFUSED}") from err
    block = validate_block(manifest.get("bundle"), "manifest.json")
    listed = manifest.get("ids")
    if (not isinstance(listed, list) or not all(isinstance(i, str) for i in listed) or len(set(listed)) != len(listed)
            or set(listed) != set(files) or set(listed) != set(block["experiments"])):
        raise StoreError(f"manifest.json does not list exactly the experiments in the bundle; {_REFUSED}")
    entries = {}
    for experiment_id in listed:
        entries[experiment_id] = _check_entry(experiment_id, files[experiment_id], block["experiments"][experiment_id])
    if check_weights:
        check_model_files([(i, e.result, e.model_bytes) for i, e in entries.items() if e.model_bytes is not None])
    return Bundle(block, _bases_first(entries))


def _check_entry(experiment_id: str, content: dict[str, bytes], manifest: dict) -> BundleEntry:
    from mucomp.schema import UPGRADES, ResultSchemaError, parse_json, parse_result_bytes

    if RESULT_FILE not in content:
        raise StoreError(f"{experiment_id} has no result.json; {_REFUSED}")
    if len(content[RESULT_FILE]) > MAX_RESULT_BYTES:
        raise StoreError(f"{experiment_id}/result.json is too large; {_REFUSED}")
    try:
        result = parse_result_bytes(content[RESULT_FILE])
    except ResultSchemaError as err:
        raise StoreError(f"{experiment_id}/result.json is unreadable ({err}); {_REFUSED}") from err
    if result["id"] != experiment_id:
        raise StoreError(f"{experiment_id}/result.json claims id {result['id']!r}; {_REFUSED}")
    # The manifest is what a reader sees first: it must say what the result says, read at the
    # schema version the manifest was written with (a newer mucomp upgrades results further).
    version = manifest["schema_version"]
    if version > SCHEMA_VERSION:
        raise StoreError(f"{experiment_id}: the bundle was made by a newer mucomp (schema {version}); upgrade mucomp. "
                         f"{_REFUSED.capitalize()}")
    stated = parse_json(content[RESULT_FILE])
    while stated["schema_version"] < version:
        stated = UPGRADES[stated["schema_version"]](stated)
    for key in ("kind", "config", "metrics"):
        if manifest[key] != stated[key]:
            raise StoreError(f"{experiment_id}: the bundle manifest's {key} differs from its result.json (the bundle "
                             f"was edited); {_REFUSED}")
    _check_environment(experiment_id, manifest, stated.get("environment"))
    _check_references(experiment_id, manifest, stated.get("references"))
    if isinstance(stated.get("references"), dict) and not isinstance(stated.get("environment"), dict):
        # Every run that records its references records its environment too: without it the
        # reproduce tolerance would follow the manifest's export-time claim.
        raise StoreError(f"{experiment_id}: its result.json records the references its run was compared with but "
                         f"not the environment the run had (the bundle was edited); {_REFUSED}")
    model = content.get(MODEL_FILE)
    if manifest["weights_included"] != (model is not None):
        raise StoreError(f"{experiment_id}: the manifest says its weights are {'' if manifest['weights_included'] else 'not '}"
                         f"bundled, but the archive {'lacks' if model is None else 'holds'} them; {_REFUSED}")
    return BundleEntry(experiment_id, manifest, result, content[RESULT_FILE], model)


def _check_environment(experiment_id: str, manifest: dict, recorded: Any) -> None:
    """The manifest's environment must be the one the result recorded, when it recorded one: the
    reproduce tolerance follows it, so a bundle can't loosen its own check (claiming an export-time
    environment, or another run's, for a result that records its own)."""
    if isinstance(recorded, dict):
        if manifest["environment_recorded"] != "run":
            raise StoreError(f"{experiment_id}: the bundle manifest says its environment was recorded at export, but "
                             f"its result.json records the environment its run had (the bundle was edited); {_REFUSED}")
        if manifest["environment"] != recorded:
            raise StoreError(f"{experiment_id}: the bundle manifest's environment differs from the one its "
                             f"result.json recorded (the bundle was edited); {_REFUSED}")
    elif manifest["environment_recorded"] == "run":
        raise StoreError(f"{experiment_id}: the bundle manifest says the run recorded its environment, but its "
                         f"result.json records none (the bundle was edited); {_REFUSED}")


def _check_references(experiment_id: str, manifest: dict, recorded: Any) -> None:
    """The manifest's references must be the ones the result recorded, when it recorded them (an
    import keeps apart or refuses results computed against another Retrained model, so neither
    file may drop or swap them)."""
    if isinstance(recorded, dict):
        listed = {kind: (manifest["references"].get(kind) or {}).get("weights_sha256") for kind in recorded}
        if manifest["references_recorded"] != "run" or listed != {
                kind: (block or {}).get("weights_sha256") for kind, block in recorded.items()}:
            raise StoreError(f"{experiment_id}: the bundle manifest's references differ from the ones its result.json "
                             f"recorded (the bundle was edited); {_REFUSED}")
    elif manifest["references_recorded"] == "run":
        raise StoreError(f"{experiment_id}: the bundle manifest says the run recorded its references, but its "
                         f"result.json records none (the bundle was edited); {_REFUSED}")


def run_environment(entry: BundleEntry) -> tuple[dict, bool]:
    """``(environment, recorded by the run)`` of a checked bundle entry: the one its result recorded
    when it has one (what the reproduce tolerance and settings follow), else the manifest's
    (the exporting shell's, for results from before results recorded it)."""
    recorded = entry.result.get("environment")
    if isinstance(recorded, dict):
        return recorded, True
    manifest = entry.manifest.get("environment")
    return (manifest if isinstance(manifest, dict) else {}), False


def _bases_first(entries: dict[str, BundleEntry]) -> dict[str, BundleEntry]:
    """``entries`` reordered so that every experiment comes after the bundled base it starts from;
    a base that is not bundled, or bases forming a cycle, are refused."""
    ordered: dict[str, BundleEntry] = {}

    def visit(experiment_id: str, path: tuple[str, ...]) -> None:
        if experiment_id in ordered:
            return
        if experiment_id in path:
            raise StoreError(f"the bases of the bundle form a cycle ({' -> '.join(path + (experiment_id,))}); {_REFUSED}")
        entry = entries[experiment_id]
        base = entry.result["config"].get("base")
        if entry.result["kind"] == "unlearned" and isinstance(base, str) and base != "original":
            if base not in entries:
                raise StoreError(f"{experiment_id} starts from {base}, which the bundle does not hold; {_REFUSED}")
            visit(base, path + (experiment_id,))
        ordered[experiment_id] = entry

    for experiment_id in entries:
        visit(experiment_id, ())
    return ordered


# --- importing --------------------------------------------------------------------------------------
def _archive_order(source: str | os.PathLike) -> list[str]:
    """The experiment ids of an export-shaped zip in the order of its entries (the order an import
    writes them in); [] when it can't be read (the import then says why). Folders that are no
    valid id (``..``, ``__MACOSX``, the empty name of ``/abs``) are left out: the import refuses
    the archive naming that entry, which a store look-up of the name would not."""
    try:
        with zipfile.ZipFile(source) as archive:
            names = [info.filename.split("/", 1)[0] for info in archive.infolist() if "/" in info.filename]
    except (zipfile.BadZipFile, OSError, ValueError):
        return []
    return [name for name in dict.fromkeys(names) if ID_PATTERN.fullmatch(name)]


def _has_bundle_block(source: str | os.PathLike) -> bool:
    """Whether the zip at ``source`` is a bundle (its manifest has a ``bundle`` block), so that an
    import checks it as ``mucomp reproduce`` does; False when it can't be read (the import says why)."""
    try:
        with zipfile.ZipFile(source) as archive:
            info = archive.getinfo(MANIFEST_FILE)
            if info.file_size > MAX_MANIFEST_BYTES:
                return True  # read_bundle refuses it with the reason
            manifest = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, RuntimeError, RecursionError):
        return False
    return isinstance(manifest, dict) and "bundle" in manifest


def import_archive(store: ExperimentStore, source: str | os.PathLike, *, on_conflict: str = "error",
                   allow_references: bool = False) -> list[str]:
    """:meth:`ExperimentStore.import_` of the zip at ``source``; a disk that fills up part-way raises
    StoreError naming the experiments stored before it did (they stay: each is complete), the
    one that could not be written and those not tried."""
    if _has_bundle_block(source):
        # A bundle's manifest must say what its results say (StoreError: why not); the weights are
        # checked once, by the import below.
        read_bundle(source, check_weights=False)
    ids = _archive_order(source)
    before = {i for i in ids if store.exists(i)}
    try:
        return store.import_(source, on_conflict=on_conflict, allow_references=allow_references)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        stored = [i for i in ids if i not in before and store.exists(i)]
        missing = [i for i in ids if i not in before and not store.exists(i)]
        done = (f"{len(stored)} experiment(s) were stored before it did ({', '.join(stored)}; they are complete)"
                if stored else "nothing was stored")
        failed = f"{missing[0]} could not be written" if missing else "the last one could not be written"
        rest = f", nor {len(missing) - 1} after it" if len(missing) > 1 else ""
        raise StoreError(f"the disk holding {store.root} is full ({err.strerror or err}): {done}; {failed}{rest}. "
                         "Free some space and run it again with --skip-existing to add the rest") from err
