"""``mucomp push`` / ``mucomp pull``: experiments in a Hugging Face *dataset* repo.

Layout of the repo (one folder per experiment, as :func:`push` writes it)::

    README.md                   the dataset card (:func:`mucomp.sharing.card.dataset_card`)
    <id>/result.json            the stored result, byte for byte
    <id>/bundle.json            the experiment's reproducibility manifest (a one-experiment bundle block)
    <id>/model.safetensors      the weights, when pushed with ``weights=True``

:func:`push` creates the repo if needed (``HfApi.create_repo(..., repo_type="dataset",
exist_ok=True)``) and uploads every folder and the card in one commit (``HfApi.upload_folder``);
the card lists every experiment of the repo, those pushed earlier included (their
``bundle.json`` is read back first). Pushing an experiment again without weights deletes the
weights it had on the repo, so that folder and manifest agree.

:func:`pull` lists the repo at one commit, refuses it when the files are too large, downloads only
the expected files (``snapshot_download(..., repo_type="dataset", allow_patterns=...)``),
assembles them into a bundle and checks it completely (:func:`mucomp.sharing.bundle.read_bundle`);
then imports it with :meth:`ExperimentStore.import_`, the very checks of ``mucomp import``, or
writes it as a bundle file for ``mucomp reproduce``. Nothing of the repo is trusted: folder names,
file names, sizes and contents are all checked before anything is written.

The token comes from huggingface_hub (``HF_TOKEN``, or the login saved by ``hf auth login``), never
from a file of the project; pushing without one says how to get one. ``endpoint`` (default
``HF_ENDPOINT`` / huggingface.co) points the calls at another Hub, e.g. the tests' local stand-in.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mucomp.names import ID_PATTERN, MANIFEST_FILE, MAX_IMPORT_BYTES, MAX_RESULT_BYTES, MODEL_FILE, RESULT_FILE
from mucomp.sharing.bundle import (
    EXPERIMENT_MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    archive_manifest,
    bundle_block,
    bundle_members,
    check_block,
    experiment_manifest,
    read_bundle,
)

if TYPE_CHECKING:
    from mucomp.store import ExperimentStore

CARD_FILE = "README.md"
#: Files a repo may hold beside the experiment folders (read by nobody, refused by nobody).
REPO_FILES = (CARD_FILE, ".gitattributes")
_LIMITS = {RESULT_FILE: MAX_RESULT_BYTES, EXPERIMENT_MANIFEST_FILE: MAX_MANIFEST_BYTES, MODEL_FILE: MAX_IMPORT_BYTES}


class HubError(RuntimeError):
    """A push or pull that could not be done; the message says why and what to do."""


@dataclass
class PushResult:
    """What :func:`push` uploaded: the repo's URL, the commit, the experiments and the paths."""

    repo_id: str
    url: str
    commit: str | None
    ids: list[str]
    files: list[str]
    card: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class PullResult:
    """What :func:`pull` did: the experiments ``imported`` (or ``written`` to a bundle file), those
    left as they were (``skipped``) and repo files it ignored."""

    repo_id: str
    commit: str
    ids: list[str]
    imported: list[str] = field(default_factory=list)
    written: str | None = None
    ignored: list[str] = field(default_factory=list)


def hub_endpoint() -> str | None:
    """The Hub to talk to: ``HF_ENDPOINT`` if set, else None (huggingface_hub's default, huggingface.co).

    Read at call time, not at huggingface_hub's import, so a changed ``HF_ENDPOINT`` counts.
    """
    return os.environ.get("HF_ENDPOINT") or None


def hub_token(required: bool) -> str | None:
    """The token huggingface_hub would use (``HF_TOKEN``, else the saved login), or HubError when
    ``required`` and there is none."""
    import huggingface_hub

    token = huggingface_hub.get_token()
    if token is None and required:
        raise HubError("no Hugging Face token: log in with `hf auth login`, or set HF_TOKEN to a token with write "
                       "access (https://huggingface.co/settings/tokens). On a Space, add it as a secret named "
                       "HF_TOKEN. mucomp never reads a token from a file in the project")
    return token


#: The Space variable (or local environment variable) naming the dataset repo the app pushes to.
APP_REPO_ENV = "MUCOMP_HUB_REPO"


@dataclass(frozen=True)
class AppPush:
    """Whether and where the app's Screen page may push (:func:`app_push`).

    ``repo_id``: the repo to push to, or the suggested one (None: the user types it);
    ``fixed_repo``: visitors can't choose another (on a Space, whose token is its owner's);
    ``problem``: why the app can't push now, and what to do (None: it can)."""

    on_space: bool
    token: str | None
    repo_id: str | None
    fixed_repo: bool
    problem: str | None


def app_push(environ: Mapping[str, str] | None = None) -> AppPush:
    """What the app may push, read from ``environ`` (default ``os.environ``) and huggingface_hub's token.

    On a Hugging Face Space (``SPACE_ID`` set) the Space's owner enables it with a secret ``HF_TOKEN``
    (write access) and a variable :data:`APP_REPO_ENV` naming the dataset repo: every visitor pushes
    with the owner's token, so visitors never pick the repo (and push only what their browser made,
    :func:`app_push_refusal`). Locally the user's own login (``hf auth login``) or ``HF_TOKEN`` is used
    and any repo may be typed; :data:`APP_REPO_ENV`, when set, is the suggestion."""
    environ = os.environ if environ is None else environ
    on_space = bool(environ.get("SPACE_ID"))
    repo_id = (environ.get(APP_REPO_ENV) or "").strip() or None
    token = hub_token(required=False)
    problem = None
    if repo_id is not None:
        try:
            check_repo_id(repo_id)
        except HubError as err:
            problem = f"{APP_REPO_ENV}={repo_id!r} is not a dataset repo id ({err}); set it to OWNER/NAME"
            repo_id = None
    if on_space and token is None:
        problem = ("this Space has no Hugging Face token: its owner can add a secret HF_TOKEN with write access "
                   f"and a variable {APP_REPO_ENV} naming the dataset repo (Settings → Variables and secrets)")
    elif on_space and repo_id is None and problem is None:
        problem = (f"this Space does not say where to push: its owner can add a variable {APP_REPO_ENV} naming "
                   "the dataset repo, e.g. your-name/unlearning-runs (Settings → Variables and secrets)")
    elif token is None:
        problem = ("no Hugging Face token: log in with `hf auth login` (or set HF_TOKEN to a token with write "
                   "access) and restart the app; `mucomp push` does the same from the command line")
    return AppPush(on_space, token, repo_id, on_space, problem)


def app_push_refusal(result: Mapping[str, Any], owner: str | None, settings: AppPush) -> str | None:
    """Why the app won't push the experiment ``result`` for the browser ``owner`` (None: it will).
    On a Space only experiments this browser made go out under the owner's token."""
    if settings.problem is not None:
        return settings.problem
    if settings.on_space and (owner is None or result.get("owner") != owner):
        return "on a Space, only the experiments this browser made can be pushed"
    return None


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is ``owner/name`` as the Hub allows, else HubError."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(f"REPO: {err}") from None
    if repo_id.count("/") != 1:
        raise HubError(f"REPO: {repo_id!r} must be OWNER/NAME, e.g. your-name/unlearning-runs")
    return repo_id


@contextlib.contextmanager
def _hub_errors(what: str, repo_id: str, endpoint: str | None) -> Iterator[None]:
    """huggingface_hub's and the network's errors as one HubError saying what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = endpoint or constants.ENDPOINT
    try:
        yield
    except OfflineModeIsEnabled as err:
        raise HubError(f"{what} {repo_id}: HF_HUB_OFFLINE is set, so the Hub is not contacted; unset it") from err
    except RevisionNotFoundError as err:
        raise HubError(f"{what} {repo_id}: {where} has no such revision ({_first(err)})") from err
    except RepositoryNotFoundError as err:
        raise HubError(f"{what} {repo_id}: {where} has no dataset repo {repo_id}, or it is private and the token "
                       "can't read it; check the name, or log in (`hf auth login`)") from err
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        if status == 401:
            raise HubError(f"{what} {repo_id}: {where} refused the token (401); log in again (`hf auth login`) or "
                           "set HF_TOKEN to a valid token") from err
        if status == 412:
            raise HubError(f"{what} {repo_id}: someone else pushed to {repo_id} meanwhile (412); push again, so that "
                           "the card lists their experiments too") from err
        if status == 403:
            raise HubError(f"{what} {repo_id}: the token may not write to {repo_id} (403): use a token with write "
                           "access to that namespace") from err
        raise HubError(f"{what} {repo_id}: {where} answered {status} ({_first(err)})") from err
    except Exception as err:
        # huggingface_hub's HTTP client raises its own connection errors (httpx-style, not OSError).
        if type(err).__module__.split(".")[0].startswith(("httpx", "httpcore")) or isinstance(err, OSError):
            raise HubError(f"{what} {repo_id}: {where} can't be reached ({type(err).__name__}: {_first(err)}); "
                           "check the network") from err
        raise


def _first(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _api(endpoint: str | None, token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token, library_name="mucomp")


def _read_capped(path: Path, limit: int, name: str) -> bytes:
    """The bytes of a downloaded file, refused past ``limit`` (the listing's sizes can lie)."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise HubError(f"{name} is larger than {limit // 1024**2} MB; nothing was imported")
    return data


def _listing(api: Any, repo_id: str, revision: str) -> tuple[dict[str, dict[str, int]], list[str]]:
    """``({folder: {file: size}}, ignored paths)`` of a repo's experiment folders at ``revision``."""
    from huggingface_hub.hf_api import RepoFile

    folders: dict[str, dict[str, int]] = {}
    ignored = []
    for item in api.list_repo_tree(repo_id, repo_type="dataset", revision=revision, recursive=True):
        if not isinstance(item, RepoFile):
            continue
        parts = item.path.split("/")
        if len(parts) == 2 and ID_PATTERN.fullmatch(parts[0]) and parts[1] in _LIMITS:
            size = int(item.lfs.size if item.lfs is not None else item.size)
            if size > _LIMITS[parts[1]]:
                raise HubError(f"{item.path} on {repo_id} is larger than mucomp reads ({size} bytes); nothing was "
                               "imported")
            folders.setdefault(parts[0], {})[parts[1]] = size
        elif item.path not in REPO_FILES:
            ignored.append(item.path)
    return folders, ignored


def _download(api: Any, repo_id: str, revision: str, paths: list[str], into: Path, token: str | None) -> Path:
    from huggingface_hub import snapshot_download

    if not paths:
        return into
    return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, local_dir=into,
                                  allow_patterns=paths, endpoint=api.endpoint, token=token))


# --- push -----------------------------------------------------------------------------------------
def push(
    repo_id: str,
    store: ExperimentStore,
    ids: list[str],
    *,
    weights: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    private: bool | None = None,
) -> PushResult:
    """Push ``ids`` (and the experiments they start from) to the dataset repo ``repo_id`` in one
    commit, with a dataset card of every experiment the repo then holds (see the module docstring)."""
    from mucomp.environment import environment
    from mucomp.sharing.card import dataset_card

    check_repo_id(repo_id)
    experiments = bundle_members(store, ids)
    token = token or hub_token(required=True)
    api = _api(endpoint, token)
    here = environment()
    manifests = {e.id: experiment_manifest(store, e, weights=weights, export_environment=here) for e in experiments}
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mucomp-push-") as tmp:
        staging, earlier = Path(tmp) / "upload", Path(tmp) / "earlier"
        with _hub_errors("push to", repo_id, endpoint):
            url = api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
            info = api.repo_info(repo_id, repo_type="dataset")
            folders, _ = _listing(api, repo_id, info.sha)
            others = sorted(f for f in folders if f not in manifests and EXPERIMENT_MANIFEST_FILE in folders[f])
            got = _download(api, repo_id, info.sha, [f"{f}/{EXPERIMENT_MANIFEST_FILE}" for f in others], earlier, token)
        card_manifests = list(manifests.values())
        for folder in others:  # pushed earlier: on the card too, when their manifest is readable
            try:
                block = check_block(_read_capped(got / folder / EXPERIMENT_MANIFEST_FILE, MAX_MANIFEST_BYTES,
                                                 f"{folder}/{EXPERIMENT_MANIFEST_FILE}"), f"{folder}/{EXPERIMENT_MANIFEST_FILE}")
                card_manifests.append(block["experiments"][folder])
            except (HubError, KeyError, RuntimeError) as err:  # StoreError is a RuntimeError
                warnings.append(f"{folder} on {repo_id} is left off the card: {err}")
        files = []
        for experiment in experiments:
            folder = staging / experiment.id
            folder.mkdir(parents=True)
            shutil.copyfile(experiment.path / RESULT_FILE, folder / RESULT_FILE)
            # No date in the folder's manifest (the commit has one): pushing an unchanged experiment
            # again uploads the same bytes, which the Hub skips.
            block = bundle_block([manifests[experiment.id]], exported_by=here, created_at=None)
            (folder / EXPERIMENT_MANIFEST_FILE).write_text(json.dumps(block, indent=1, allow_nan=False) + "\n",
                                                           encoding="utf-8")
            names = [RESULT_FILE, EXPERIMENT_MANIFEST_FILE]
            if manifests[experiment.id]["weights_included"]:
                shutil.copyfile(experiment.model_path, folder / MODEL_FILE)
                names.append(MODEL_FILE)
            files += [f"{experiment.id}/{name}" for name in names]
        card = dataset_card(repo_id, card_manifests)
        (staging / CARD_FILE).write_text(card, encoding="utf-8")
        files.append(CARD_FILE)
        # Weights a previous push left for an experiment now pushed without them: removed, so the
        # folder says what its manifest says.
        stale = [f"{i}/{MODEL_FILE}" for i, m in manifests.items()
                 if not m["weights_included"] and MODEL_FILE in folders.get(i, {})]
        with _hub_errors("push to", repo_id, endpoint):
            # parent_commit: the card lists what the repo held at info.sha; a push by someone else
            # since then is refused by the Hub (412) instead of being dropped from the card.
            commit = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=staging,
                                       commit_message=f"mucomp push: {len(experiments)} experiment(s)",
                                       delete_patterns=stale or None, parent_commit=info.sha)
    return PushResult(repo_id, str(url), getattr(commit, "oid", None), [e.id for e in experiments], files, card,
                      warnings)


# --- pull -----------------------------------------------------------------------------------------
def pull(
    repo_id: str,
    store: ExperimentStore,
    *,
    output: str | Path | None = None,
    revision: str | None = None,
    on_conflict: str = "error",
    allow_references: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
) -> PullResult:
    """Download the experiments of the dataset repo ``repo_id`` and import them into ``store``
    (``mucomp import``'s checks; ``on_conflict`` and ``allow_references`` as there), or with
    ``output`` write them as a bundle file instead. HubError / StoreError say why not; nothing
    is imported unless every experiment passes."""
    from mucomp.store import now_iso

    check_repo_id(repo_id)
    token = token or hub_token(required=False)  # public repos need none
    api = _api(endpoint, token)
    with tempfile.TemporaryDirectory(prefix="mucomp-pull-") as tmp:
        with _hub_errors("pull", repo_id, endpoint):
            commit = api.repo_info(repo_id, repo_type="dataset", revision=revision).sha
            folders, ignored = _listing(api, repo_id, commit)
            complete = {f: files for f, files in folders.items() if {RESULT_FILE, EXPERIMENT_MANIFEST_FILE} <= set(files)}
            ignored += [f"{f}/ (no {RESULT_FILE} and {EXPERIMENT_MANIFEST_FILE})" for f in sorted(set(folders) - set(complete))]
            if not complete:
                raise HubError(f"{repo_id} holds no mucomp experiments (folders with {RESULT_FILE} and "
                               f"{EXPERIMENT_MANIFEST_FILE}, as `mucomp push` writes them)")
            if sum(sum(files.values()) for files in complete.values()) > MAX_IMPORT_BYTES:
                raise HubError(f"{repo_id} holds more than {MAX_IMPORT_BYTES // 1024**3} GB of experiments; nothing "
                               "was imported")
            paths = [f"{f}/{name}" for f, files in sorted(complete.items()) for name in sorted(files)]
            got = _download(api, repo_id, commit, paths, Path(tmp) / "download", token)
        archive_path = Path(tmp) / "bundle.zip"
        _assemble(got, sorted(complete), archive_path, now_iso())
        bundle = read_bundle(archive_path)  # every check, before anything is written
        result = PullResult(repo_id, commit, bundle.ids, ignored=ignored)
        if output is not None:
            shutil.copyfile(archive_path, output)
            result.written = str(output)
            return result
        weightless = [i for i, entry in bundle.entries.items() if entry.model_bytes is None]
        if weightless:
            raise HubError(f"{len(weightless)} experiment(s) of {repo_id} were pushed without weights "
                           f"({', '.join(weightless[:5])}{', ...' if len(weightless) > 5 else ''}), and an experiment "
                           "without weights can't be contrasted or used as a base, so nothing was imported. Write "
                           f"them as a bundle (`mucomp pull {repo_id} -o bundle.zip`) and rerun them here "
                           "(`mucomp reproduce bundle.zip --keep`), or ask for a push with --weights")
        result.imported = store.import_(archive_path, on_conflict=on_conflict, allow_references=allow_references)
        return result


def _assemble(root: Path, folders: list[str], destination: Path, created_at: str) -> None:
    """A bundle zip of the downloaded folders: their results and weights (where the manifest says
    they were pushed) and one manifest merging every folder's ``bundle.json``."""
    manifests, exported_by = [], {}
    blocks = {}
    for folder in folders:
        where = f"{folder}/{EXPERIMENT_MANIFEST_FILE}"
        block = check_block(_read_capped(root / folder / EXPERIMENT_MANIFEST_FILE, MAX_MANIFEST_BYTES, where), where)
        if set(block["experiments"]) != {folder}:
            raise HubError(f"{where} describes {', '.join(sorted(block['experiments'])) or 'nothing'}, not {folder}; "
                           "nothing was imported")
        blocks[folder] = block
        manifests.append(block["experiments"][folder])
        exported_by = exported_by or block.get("exported_by", {})
    merged = bundle_block(manifests, exported_by=exported_by, created_at=created_at)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_FILE, json.dumps(archive_manifest(folders, merged, created_at), indent=1,
                                                   allow_nan=False))
        for folder in folders:
            archive.writestr(f"{folder}/{RESULT_FILE}",
                             _read_capped(root / folder / RESULT_FILE, MAX_RESULT_BYTES, f"{folder}/{RESULT_FILE}"))
            model = root / folder / MODEL_FILE
            # Only where the manifest says the weights were pushed (read_bundle checks the two agree).
            if blocks[folder]["experiments"][folder]["weights_included"] and model.is_file():
                archive.writestr(f"{folder}/{MODEL_FILE}", _read_capped(model, MAX_IMPORT_BYTES, f"{folder}/{MODEL_FILE}"))
