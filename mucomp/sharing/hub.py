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
the expected files (each through huggingface_hub's client from its ``resolve`` URL at that commit,
read no further than the size the listing gave it), assembles them into a bundle and checks it
completely (:func:`mucomp.sharing.bundle.read_bundle`); then imports it with
:meth:`ExperimentStore.import_`, the very checks of ``mucomp import``, or writes it as a bundle
file for ``mucomp reproduce`` (an existing folder as ``output`` is refused before anything is
downloaded). Nothing of the repo is trusted: folder names, file names, sizes and contents are all
checked before anything is written.

Every Hub call waits at most :func:`mucomp.sharing.hubhttp.hub_timeout` seconds (``MUCOMP_HUB_TIMEOUT``,
default 30) to connect or for the next bytes, then fails with "the Hub at X cannot be reached".

On a Space (``SPACE_ID`` set), or whenever ``owner`` is given, a push takes only what that browser
session made: a base of someone else's is left out, and the push says so.

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
    from mucomp.store import Experiment, ExperimentStore

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

    from mucomp.sharing.hubhttp import HubNoAnswer, hub_timeout

    where = endpoint or constants.ENDPOINT
    try:
        yield
    except HubNoAnswer as err:
        raise HubError(f"{what} {repo_id}: the Hub at {where} cannot be reached (no answer within {err.seconds:g} s); "
                       "check the network or try later") from err
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
        library = type(err).__module__.split(".")[0].startswith(("httpx", "httpcore"))
        if library and "Timeout" in type(err).__name__:  # one outside `patient()` (e.g. an upload thread)
            raise HubError(f"{what} {repo_id}: the Hub at {where} cannot be reached (no answer within "
                           f"{hub_timeout():g} s); check the network or try later") from err
        if library or isinstance(err, OSError):
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


_CHUNK = 1024**2


def _download(api: Any, repo_id: str, revision: str, sizes: dict[str, int], into: Path, token: str | None) -> Path:
    """Download each ``{path: listed size in bytes}`` of the repo at ``revision`` to ``into/path``;
    a file that sends more bytes than its listed size is refused as soon as it does (the listing
    was checked against the limits, so nothing larger ever reaches the disk), one that sends fewer too."""
    from huggingface_hub import get_session, hf_hub_url, hf_raise_for_status
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token, library_name="mucomp")
    for path, size in sizes.items():
        url = hf_hub_url(repo_id, path, repo_type="dataset", revision=revision, endpoint=api.endpoint)
        with get_session().stream("GET", url, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            written = _save(response.iter_bytes(_CHUNK), into / path, size, f"{path} on {repo_id}")
        if written != size:
            raise HubError(f"{path} on {repo_id} sent {written} bytes, its listing gives {size}; nothing was imported. "
                           "Pull again (the download may have been cut)")
    return into


def _save(chunks: Iterator[bytes], target: Path, size: int, name: str) -> int:
    """Write ``chunks`` to ``target``, refusing more than ``size`` bytes; returns the bytes written.
    A local write error (a full disk) is said as such, never as the network's."""
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            for chunk in chunks:
                written += len(chunk)
                if written > size:
                    raise HubError(f"{name} sends more than the {size} bytes its listing gives; nothing was imported")
                f.write(chunk)
    except OSError as err:
        raise HubError(f"writing {target} failed ({err.strerror or err}); free some space in "
                       f"{tempfile.gettempdir()} (or point TMPDIR elsewhere) and try again") from err
    return written


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
    owner: str | None = None,
) -> PushResult:
    """Push ``ids`` (and the experiments they start from) to the dataset repo ``repo_id`` in one
    commit, with a dataset card of every experiment the repo then holds (see the module docstring).

    ``owner`` (a browser session; on a Space, where the token is the Space owner's, the session that
    made ``ids``): only what it made goes out; a base made by another session is left out, with a
    warning, and an id of another session's is refused."""
    from mucomp.environment import environment
    from mucomp.sharing.card import dataset_card
    from mucomp.sharing.hubhttp import patient

    check_repo_id(repo_id)
    experiments, warnings = _owned(store, ids, _pushing_owner(store, ids, owner))
    token = token or hub_token(required=True)
    api = _api(endpoint, token)
    here = environment()
    manifests = {e.id: experiment_manifest(store, e, weights=weights, export_environment=here) for e in experiments}
    with tempfile.TemporaryDirectory(prefix="mucomp-push-") as tmp, patient():
        staging = Path(tmp) / "upload"
        with _hub_errors("push to", repo_id, endpoint):
            url = api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
            info = api.repo_info(repo_id, repo_type="dataset")
            folders, _ = _listing(api, repo_id, info.sha)
            earlier = _earlier_manifests(api, repo_id, info.sha, folders, set(manifests), Path(tmp) / "earlier",
                                         token, warnings)
        files = _stage(staging, experiments, manifests, here)
        card = dataset_card(repo_id, list(manifests.values()) + earlier)
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


_SPACE_ONLY = "on a Space, only the experiments this browser made can be pushed"


def _pushing_owner(store: ExperimentStore, ids: list[str], owner: str | None) -> str | None:
    """The browser session a push is restricted to: ``owner``; on a Space (``SPACE_ID``), where every
    visitor pushes with the Space owner's token, the one session that made ``ids``; else None (all)."""
    if owner is not None or not os.environ.get("SPACE_ID"):
        return owner
    owners = {store.load(i).result.get("owner") for i in ids}
    if len(owners) != 1 or None in owners:
        raise HubError(f"{_SPACE_ONLY} (and one browser's at a time)")
    return owners.pop()


def _owned(store: ExperimentStore, ids: list[str], owner: str | None) -> tuple[list[Experiment], list[str]]:
    """``(the experiments to push, warnings)``: ``ids`` and their bases (:func:`bundle_members`), less,
    when ``owner`` is given, the bases another browser session made (said in the warnings);
    an id of another session's is refused."""
    experiments = bundle_members(store, ids)
    if owner is None:
        return experiments, []
    foreign = [e for e in experiments if e.result.get("owner") != owner]
    chosen = [e.id for e in foreign if e.id in ids]
    if chosen:
        raise HubError(f"{_SPACE_ONLY}: another browser session made {', '.join(chosen)}")
    warnings = []
    for base in foreign:
        users = [e.id for e in experiments if e.config.get("base") == base.id]
        warnings.append(f"{base.id} was left out: another browser session made it, and only what this one made is "
                        f"pushed; {', '.join(users)} start{'s' if len(users) == 1 else ''} from it, so a pull of "
                        f"{'it' if len(users) == 1 else 'them'} needs {base.id} pushed by whoever made it")
    return [e for e in experiments if e.id not in {f.id for f in foreign}], warnings


def _earlier_manifests(api: Any, repo_id: str, revision: str, folders: dict[str, dict[str, int]], pushing: set[str],
                       into: Path, token: str | None, warnings: list[str]) -> list[dict]:
    """The manifests of the experiments pushed earlier (not among ``pushing``), for the card; one
    that is unreadable, or whose figures the card can't show, is left off with a warning."""
    from mucomp.sharing.card import check_card_values

    others = sorted(f for f in folders if f not in pushing and EXPERIMENT_MANIFEST_FILE in folders[f])
    sizes = {f"{f}/{EXPERIMENT_MANIFEST_FILE}": folders[f][EXPERIMENT_MANIFEST_FILE] for f in others}
    got = _download(api, repo_id, revision, sizes, into, token)
    found = []
    for folder in others:
        where = f"{folder}/{EXPERIMENT_MANIFEST_FILE}"
        try:
            block = check_block(_read_capped(got / where, MAX_MANIFEST_BYTES, where), where)
            found.append(check_card_values(block["experiments"][folder], where))
        except (HubError, KeyError, ValueError, RuntimeError) as err:  # StoreError is a RuntimeError
            warnings.append(f"{folder} on {repo_id} is left off the card: {err}")
    return found


def _stage(staging: Path, experiments: list[Experiment], manifests: dict[str, dict], here: dict) -> list[str]:
    """Write each experiment's folder under ``staging``; returns the repo paths written."""
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
    return files


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
    from mucomp.sharing.bundle import atomic_path, import_archive
    from mucomp.sharing.hubhttp import patient
    from mucomp.store import now_iso

    check_repo_id(repo_id)
    output = None if output is None else check_output(output)  # before anything is downloaded
    token = token or hub_token(required=False)  # public repos need none
    api = _api(endpoint, token)
    with tempfile.TemporaryDirectory(prefix="mucomp-pull-") as tmp:
        with _hub_errors("pull", repo_id, endpoint), patient():
            commit, complete, ignored = _pull_listing(api, repo_id, revision)
            sizes = {f"{f}/{name}": size for f, files in sorted(complete.items()) for name, size in sorted(files.items())}
            got = _download(api, repo_id, commit, sizes, Path(tmp) / "download", token)
        archive_path = Path(tmp) / "bundle.zip"
        _assemble(got, sorted(complete), archive_path, now_iso())
        bundle = read_bundle(archive_path)  # every check, before anything is written
        result = PullResult(repo_id, commit, bundle.ids, ignored=ignored)
        if output is not None:
            with atomic_path(output) as partial:  # a pull cut short leaves no truncated bundle behind
                shutil.copyfile(archive_path, partial)
            result.written = str(output)
            return result
        weightless = [i for i, entry in bundle.entries.items() if entry.model_bytes is None]
        if weightless:
            raise HubError(f"{len(weightless)} experiment(s) of {repo_id} were pushed without weights "
                           f"({', '.join(weightless[:5])}{', ...' if len(weightless) > 5 else ''}), and an experiment "
                           "without weights can't be contrasted or used as a base, so nothing was imported. Write "
                           f"them as a bundle (`mucomp pull {repo_id} -o bundle.zip`) and rerun them here "
                           "(`mucomp reproduce bundle.zip --keep`), or ask for a push with --weights")
        result.imported = import_archive(store, archive_path, on_conflict=on_conflict, allow_references=allow_references)
        return result


def check_output(output: str | Path) -> Path:
    """``output`` as the bundle file :func:`pull` may write, or HubError saying what to give instead
    (checked before anything is downloaded): not a folder, and in a folder that exists."""
    path = Path(output)
    if path.is_dir():
        what = "a folder that holds files" if any(path.iterdir()) else "a folder"
        raise HubError(f"-o {output} is {what}; -o names the bundle file to write, e.g. -o {path / 'bundle.zip'}. "
                       "Nothing was downloaded")
    if not path.parent.is_dir():
        raise HubError(f"-o {output}: the folder {path.parent} does not exist; create it first, or write the bundle "
                       "elsewhere. Nothing was downloaded")
    return path


def _pull_listing(api: Any, repo_id: str, revision: str | None) -> tuple[str, dict[str, dict[str, int]], list[str]]:
    """``(commit, {folder: {file: size}} of the complete experiment folders, ignored paths)`` of the
    repo at ``revision``; HubError when it holds no experiment or more than mucomp imports."""
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
    return commit, complete, ignored


def _assemble(root: Path, folders: list[str], destination: Path, created_at: str) -> None:
    """A bundle zip of the downloaded folders: their results and weights (where the manifest says
    they were pushed) and one manifest merging every folder's ``bundle.json``."""
    from mucomp.sharing.card import check_card_values

    manifests, exported_by = [], {}
    blocks = {}
    for folder in folders:
        where = f"{folder}/{EXPERIMENT_MANIFEST_FILE}"
        block = check_block(_read_capped(root / folder / EXPERIMENT_MANIFEST_FILE, MAX_MANIFEST_BYTES, where), where)
        if set(block["experiments"]) != {folder}:
            raise HubError(f"{where} describes {', '.join(sorted(block['experiments'])) or 'nothing'}, not {folder}; "
                           "nothing was imported")
        blocks[folder] = block
        try:  # the group statistics below read them as numbers
            manifests.append(check_card_values(block["experiments"][folder], where))
        except ValueError as err:
            raise HubError(f"{err}; nothing was imported") from err
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
