"""Ensembles on the Ray backend: members made on the nodes, cached in the driver's home.

A :class:`~mucomp.execution.requests.MakeEnsembleMember` task makes (or finds in its node's cache)
its member under the node's ``MUCOMP_HOME`` (:func:`~mucomp.execution.ray_tasks.node_home`;
references trained there as needed) and returns the member's cache file with its ensemble's
description. A :class:`~mucomp.execution.requests.RunEnsemble` task is sent the driver's cached
members of both sides (put into the node's cache first), makes only the ones still missing, scores
both ensembles and returns the two records with every member file the driver lacks.

The driver (:func:`store_outcome`) treats what a task returns as untrusted: the descriptions must
be its own ensembles', each member file must pass the cache's own checks for the driver's
scenario (:func:`~mucomp.experiment.ensembles.read_member`: format, seed, forget indices, sizes)
and the records must be the driver's ensembles (keys, seeds, forget indices) and validate; one
that fails refuses the whole outcome and nothing is stored. Accepted files are written atomically
under the driver's home (never the driver process's ``$MUCOMP_HOME``: the executor is a thread),
the records with :func:`~mucomp.experiment.ensembles.save_records`' rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import secrets
import time
import zipfile
from pathlib import Path
from typing import Any

from mucomp.execution.requests import MakeEnsembleMember, RunEnsemble

#: Largest member file taken from a task, packed and unpacked (a Fashion-MNIST member is ~0.5 MB).
MAX_MEMBER_BYTES = 256 * 1024**2
#: Most arrays in a member file (it holds 14).
MAX_MEMBER_ENTRIES = 64
ENSEMBLE_REQUESTS = (MakeEnsembleMember, RunEnsemble)


class EnsembleTransferError(ValueError):
    """What an ensemble task returned was refused; the message says what and why."""


def _specs(request: MakeEnsembleMember | RunEnsemble) -> dict:
    """``{kind: EnsembleSpec}`` of the ensembles a request makes members of."""
    from mucomp.experiment.ensembles import EnsembleSpec

    if isinstance(request, MakeEnsembleMember):
        return {request.spec.kind: request.spec}
    return {kind: EnsembleSpec(request.config, kind) for kind in ("retrained", "unlearned")}


def _expected_seeds(request: MakeEnsembleMember | RunEnsemble) -> dict[str, list[int]]:
    """``{kind: seeds}`` of the members a request uses."""
    if isinstance(request, MakeEnsembleMember):
        return {request.spec.kind: [int(request.seed)]}
    return {kind: spec.member_seeds(request.n) for kind, spec in _specs(request).items()}


def ensemble_keys(request: Any) -> frozenset[str]:
    """The cache keys (:attr:`~mucomp.experiment.ensembles.EnsembleSpec.key`) of the ensembles an
    ensemble request makes members of; empty for any other request."""
    if not isinstance(request, ENSEMBLE_REQUESTS):
        return frozenset()
    return frozenset(spec.key for spec in _specs(request).values())


# ---------------------------------------------------------------------------------------------
# The driver side


def task_environment(env: dict[str, str | None]) -> dict[str, str | None]:
    """A job's environment for its ensemble task: the driver's reference thread count travels with
    it (it is part of the members' description: the node makes the driver's ensemble)."""
    from mucomp import settings

    return {**env, "MUCOMP_REFERENCE_THREADS": str(settings.reference_threads())}


def driver_members(request: MakeEnsembleMember | RunEnsemble, home: Path) -> list[dict]:
    """The member files cached under ``home`` that a :class:`RunEnsemble` task is sent (the first
    ``n`` seeds of both sides; none for a member job): ``[{"kind", "seed", "data"}]``."""
    from mucomp.experiment.ensembles import member_path

    if not isinstance(request, RunEnsemble):
        return []
    specs, found = _specs(request), []
    for kind, seeds in _expected_seeds(request).items():
        for seed in seeds:
            path = member_path(specs[kind], seed, home)
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_size <= MAX_MEMBER_BYTES:
                    found.append({"kind": kind, "seed": seed, "data": path.read_bytes()})
    return found


def store_outcome(request: MakeEnsembleMember | RunEnsemble, payload: Any, home: Path) -> dict:
    """Check what an ensemble task returned (``payload``: ``{"descriptions", "members",
    "records"}``) against the driver's own ensembles and store it under ``home``; returns figures
    for the job's summary (``members_from_node``). Raises :class:`EnsembleTransferError` (nothing
    stored) for anything that is not the driver's ensemble."""
    from mucomp.experiment.cache_files import write_description
    from mucomp.experiment.ensembles import save_records

    if not isinstance(payload, dict):
        raise EnsembleTransferError(f"the Ray task returned {type(payload).__name__}, not an ensemble outcome")
    specs = _specs(request)
    _check_descriptions(specs, payload.get("descriptions"))
    staged = _stage_members(request, specs, payload.get("members"), Path(home))
    try:
        records = _checked_records(request, specs, payload.get("records")) if isinstance(request, RunEnsemble) \
            else None
        for kind, tmp, target in staged:
            write_description(target.parent, specs[kind].description())
            os.replace(tmp, target)
    finally:
        for _, tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    if records is not None:
        save_records(records, Path(home))
    return {"members_from_node": len(staged)}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _check_descriptions(specs: dict, descriptions: Any) -> None:
    """The node made the driver's ensembles: the same description (recipe, threads, method, ...)."""
    if not isinstance(descriptions, dict):
        raise EnsembleTransferError("the Ray task returned no description of its ensembles")
    for kind, spec in specs.items():
        ours, theirs = spec.description(), descriptions.get(kind)
        if _canonical(ours) == _canonical(theirs):
            continue
        theirs = theirs if isinstance(theirs, dict) else {}
        differ = sorted(k for k in set(ours) | set(theirs) if _canonical(ours.get(k)) != _canonical(theirs.get(k)))
        raise EnsembleTransferError(
            f"the Ray node made the {kind} ensemble's models with another set-up than the driver's "
            f"({', '.join(map(str, differ)) or 'the description'} differ): run the same mucomp version and "
            "settings on every node")


def _check_unpacked(data: bytes, what: str) -> None:
    """An npz (a zip) of few entries that unpacks to at most :data:`MAX_MEMBER_BYTES`."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise EnsembleTransferError(f"{what} from the Ray task was refused: not an npz file ({err})") from err
    if len(entries) > MAX_MEMBER_ENTRIES or sum(e.file_size for e in entries) > MAX_MEMBER_BYTES:
        raise EnsembleTransferError(f"{what} from the Ray task was refused: it unpacks to more than "
                                    f"{MAX_MEMBER_ENTRIES} arrays or {MAX_MEMBER_BYTES // 1024**2} MB")


def _stage_member(spec: Any, seed: int, data: Any, home: Path) -> tuple[Path, Path]:
    """Untrusted member file bytes written next to their place under ``home`` and checked like a
    cached member of the driver's scenario; returns ``(temporary file, target)``."""
    from mucomp.experiment.ensembles import MemberFileError, member_path, read_member

    what = f"the {spec.kind} ensemble's member of seed {seed}"
    if not isinstance(data, bytes) or len(data) > MAX_MEMBER_BYTES:
        raise EnsembleTransferError(f"{what} from the Ray task was refused: not a file of at most "
                                    f"{MAX_MEMBER_BYTES // 1024**2} MB")
    _check_unpacked(data, what)
    target = member_path(spec, seed, home)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}-{secrets.token_hex(3)}.npz")
    tmp.write_bytes(data)
    try:
        read_member(tmp, seed, spec.scenario)
    except MemberFileError as err:
        tmp.unlink(missing_ok=True)
        raise EnsembleTransferError(f"{what} from the Ray task was refused: {err}") from err
    return tmp, target


def _stage_members(request: Any, specs: dict, items: Any, home: Path) -> list[tuple[str, Path, Path]]:
    """Every returned member checked and staged (:func:`_stage_member`); ``[(kind, tmp, target)]``."""
    expected = _expected_seeds(request)
    if not isinstance(items, list):
        raise EnsembleTransferError("the Ray task returned no list of member files")
    staged: list[tuple[str, Path, Path]] = []
    try:
        seen: set[tuple[str, int]] = set()
        for item in items:
            kind, seed = (item.get("kind"), item.get("seed")) if isinstance(item, dict) else (None, None)
            if kind not in expected or type(seed) is not int or seed not in expected[kind] or (kind, seed) in seen:
                raise EnsembleTransferError(f"the Ray task returned a member this job does not make "
                                            f"({kind!r}, seed {seed!r}) or one twice")
            seen.add((kind, seed))
            staged.append((kind, *_stage_member(specs[kind], seed, item.get("data"), home)))
        if isinstance(request, MakeEnsembleMember) and not staged:
            raise EnsembleTransferError("the Ray task returned no member file")
    except BaseException:
        for _, tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return staged


def _checked_records(request: RunEnsemble, specs: dict, records: Any) -> dict:
    """The two records, validated, of the driver's ensembles (keys, seeds, forget indices); their
    wall seconds counted on the driver's clock from the submission."""
    from pydantic import ValidationError

    from mucomp.schema import describe
    from mucomp.store.ensembles import EnsembleResult

    if not isinstance(records, dict):
        raise EnsembleTransferError("the Ray task returned no ensemble records")
    seeds = _expected_seeds(request)
    forget = [int(i) for i in specs["unlearned"].scenario.forget_indices]
    checked = {}
    for kind, spec in specs.items():
        try:
            record = EnsembleResult.model_validate(records.get(kind))
        except ValidationError as err:
            raise EnsembleTransferError(f"the {kind} record from the Ray task was refused: {describe(err)}") from err
        own = seeds[kind] if kind == "retrained" else seeds["unlearned"]
        if (record.kind != kind or record.key != spec.record_key() or record.unlearn_seeds != own
                or record.retrained_seeds != seeds["retrained"] or record.forget_indices != forget):
            raise EnsembleTransferError(f"the {kind} record from the Ray task was refused: it is not this job's "
                                        "ensemble (its key, seeds or forget indices differ)")
        if request.started_at is not None:
            record = record.model_copy(update={"seconds": max(0.0, time.time() - request.started_at)})
        checked[kind] = record
    return checked


# ---------------------------------------------------------------------------------------------
# The node side


def _seed_node_cache(specs: dict, members: list[dict], cancelled: Any) -> dict[tuple[str, int], bytes]:
    """Put the driver's member files into this node's cache (under ``$MUCOMP_HOME``, the node's
    home); returns them by ``(kind, seed)``. One the cache refuses is made again on the node."""
    from mucomp.experiment.cache_files import write_description
    from mucomp.experiment.ensembles import member_path
    from mucomp.locks import locked

    sent = {}
    for item in members:
        kind, seed, data = item["kind"], int(item["seed"]), item["data"]
        spec = specs[kind]
        path = member_path(spec, seed)
        sent[(kind, seed)] = data
        with locked(path.with_suffix(".lock"), cancelled=cancelled, waiting_for=f"ensemble member {seed}"):
            with contextlib.suppress(OSError):
                if path.read_bytes() == data:
                    continue
            write_description(path.parent, spec.description())
            tmp = path.with_name(f".{path.stem}-{secrets.token_hex(3)}.npz")
            tmp.write_bytes(data)
            os.replace(tmp, path)
    return sent


def node_work(request: MakeEnsembleMember | RunEnsemble, env: dict, origin: str | None, members: list | None,
              progress: Any, cancelled: Any, returned: dict) -> tuple[None, dict]:
    """An ensemble job in a Ray task under the node's home (``env``'s ``MUCOMP_HOME``): the member
    made or found, or the ensembles made (the driver's ``members`` cached first) and scored without
    storing. Fills ``returned`` with what the driver stores (see :func:`store_outcome`); returns
    ``(None, summary)``."""
    from mucomp.execution.execute import ensemble_records, ensemble_summary, member_job
    from mucomp.execution.requests import ensure_method, job_environment_applied
    from mucomp.experiment.ensembles import member_path

    with job_environment_applied(env):
        ensure_method(origin)
        specs = _specs(request)
        sent: dict[tuple[str, int], bytes] = {}
        records = None
        if isinstance(request, MakeEnsembleMember):
            summary = member_job(request, progress, cancelled)
        else:
            sent = _seed_node_cache(specs, members or [], cancelled)
            # The driver counts the wall seconds on its own clock (the node's may be set otherwise).
            records = ensemble_records(dataclasses.replace(request, started_at=None), progress, cancelled,
                                       save=False)
            summary = ensemble_summary(records)
        files = []
        for kind, seeds in _expected_seeds(request).items():
            for seed in seeds:
                data = member_path(specs[kind], seed).read_bytes()
                if sent.get((kind, seed)) != data:
                    files.append({"kind": kind, "seed": seed, "data": data})
        returned.update(descriptions={kind: spec.description() for kind, spec in specs.items()}, members=files,
                        records=None if records is None else {k: r.to_json_dict() for k, r in records.items()})
    return None, summary
