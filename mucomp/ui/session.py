"""What every page of the app shares: set-up, per-session state and process-wide resources.

Every page calls :func:`setup` first. It sets the page config, fills the session's defaults under
the app's own (non-widget) keys, which survive page changes:

- ``mucomp_owner``: a random id per browser session (recorded in the experiments it makes; only
  that session can delete them or cancel its runs);
- ``mucomp_scenario``: the :class:`~mucomp.data.Scenario` chosen on Home;
- ``mucomp_model_a`` / ``mucomp_model_b``: the experiment ids picked on Screen (or None);
- ``mucomp_attack``: the Attack page's settings (metric, strategy, custom thresholds, tab);
- ``mucomp_instance``: the dataset index of the image selected in an instance panel.

The URL keeps the scenario, Model A / B and the Attack settings, so a reload or a shared link
restores them (:mod:`mucomp.ui.links` reads and writes the query).

Process-wide resources (shared by every session, never mutated by a page): the
:class:`~mucomp.store.ExperimentStore` under ``$MUCOMP_HOME`` and the job API
(:func:`mucomp.execution.shared_executor`): worker processes that run experiments, prepare
reference models (:class:`~mucomp.execution.PrepareReferences`) and evaluate uploads
(:class:`~mucomp.execution.EvaluateUpload`). No torch work runs in the server process: the pages
read the jobs' snapshots and the stored results only, and Screen, Contrast and Attack never import
torch (``tests/test_architecture.py``).

Stored results are immutable, so they are cached by experiment id (``st.cache_data``); the list of
a scenario's experiments comes from the store's listing index (:mod:`mucomp.store.index`) and is
shared read-only (``st.cache_resource``) until the store's folder or its index changes.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from mucomp import settings
from mucomp.data import DATASETS, Scenario
from mucomp.execution import (
    MAX_QUEUED_PER_OWNER,
    EvaluateUpload,
    Executor,
    MakeEnsembleMember,
    MakeShadowPair,
    PrepareReferences,
    PullPublished,
    RunAudit,
    RunEnsemble,
    SubmissionError,
    request_scenario,
    shared_executor,
)
from mucomp.store import HEAVY_BLOCKS as HEAVY_BLOCKS  # re-exported: pages may read it
from mucomp.store import SCENARIO_KEYS, ExperimentStore
from mucomp.store.index import INDEX_FILE
from mucomp.ui import links
from mucomp.ui.labels import experiment_labels
from mucomp.ui.links import DEFAULT_SCENARIO as DEFAULT_SCENARIO  # re-exported: the scenario of a new session
from mucomp.ui.text import md

PAGE_ICON = "🧽"

KEY_OWNER = "mucomp_owner"
KEY_SCENARIO = "mucomp_scenario"
KEY_MODEL_A = "mucomp_model_a"
KEY_MODEL_B = "mucomp_model_b"
KEY_ATTACK = "mucomp_attack"
KEY_INSTANCE = "mucomp_instance"
KEY_SEEN_JOBS = "mucomp_seen_jobs"
KEY_FORM = "mucomp_build_form"
KEY_VISITED = "mucomp_visited"
KEY_LINK_PROBLEMS = "mucomp_link_problems"
KEY_ATTACK_TAB = "attack_tab"

PAGES = {
    "home": "Home.py",
    "build": "pages/1_Build.py",
    "screen": "pages/2_Screen.py",
    "contrast": "pages/3_Contrast.py",
    "attack": "pages/4_Attack.py",
}


# ---------------------------------------------------------------------------------------------
# Background work: every job runs in a worker process of the job API (mucomp.execution)


#: A browser session may have at most this many runs waiting in the queue.
MAX_QUEUED_RUNS = MAX_QUEUED_PER_OWNER


def describe_request(request: Any) -> str:
    """One line naming a queued request, e.g. ``"Gradient ascent (GA): epochs 12, lr 0.05, batch 32"``."""
    if isinstance(request, PrepareReferences):
        s = request.scenario
        return f"Reference models ({s.spec.label}, forget {s.forget_set.describe(s.spec)}, training seed {s.train_seed})"
    if isinstance(request, EvaluateUpload):
        return f"Uploaded model '{request.label}'"
    if isinstance(request, PullPublished):
        return f"Published model from {request.repo}"
    if isinstance(request, RunAudit):
        names = {"ulira": f"U-LiRA (K {request.shadows}, M {request.held_out})", "relearn": "relearning attack"}
        return f"Audit of {request.experiment_id}: " + ", ".join(names.get(a, a) for a in request.audits)
    if isinstance(request, MakeShadowPair):
        return f"U-LiRA shadow pair, training seed {request.seed}"
    if isinstance(request, MakeEnsembleMember):
        if request.spec.kind == "retrained":
            return f"Ensemble model: Retrained, training seed {request.seed}"
        return f"Ensemble model: {request.spec.method}, unlearning seed {request.seed}"
    if isinstance(request, RunEnsemble):
        return f"Ensembles of {request.n}: {request.config.method} against Retrained (F, score, KLoM)"
    from mucomp.methods import available_methods  # a run's label: only the Build page lists runs

    info = available_methods().get(getattr(request, "method", ""), None)
    label = info.label if info is not None else str(getattr(request, "method", "?"))
    parts = [f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
             for name, value in (("epochs", request.epochs), ("lr", request.lr), ("batch", request.batch_size))
             if value is not None]
    parts += [f"{k} {v}" for k, v in sorted(request.params.items())]
    parts.append(f"seeds {request.train_seed}/{request.unlearn_seed}")
    base = "" if request.base == "original" else f" from {request.base}"
    return f"{label}{base}: " + (", ".join(parts) or "defaults")


@st.cache_resource(show_spinner=False)
def _store(root: str) -> ExperimentStore:
    return ExperimentStore(Path(root) / "experiments")


def home_root() -> str:
    """``$MUCOMP_HOME``, resolved (the key of the process-wide resources)."""
    return str(settings.home().expanduser().resolve())


def get_store() -> ExperimentStore:
    """The experiment store under ``$MUCOMP_HOME/experiments`` (one per process and home)."""
    return _store(home_root())


def get_queue() -> Executor:
    """The job API of this server: one pool of worker processes (``MUCOMP_WORKERS``, default 1,
    with ``MUCOMP_TORCH_THREADS`` torch threads each) shared by every session; started on the
    first page view so the workers are warm before the first run."""
    return shared_executor(max_queued_per_owner=MAX_QUEUED_PER_OWNER)


def home_jobs() -> list[dict]:
    """Snapshots of the jobs submitted under this server's ``MUCOMP_HOME`` (every session)."""
    home = home_root()
    return [j for j in get_queue().jobs() if _job_home(j) == home]


def _job_home(job: dict) -> str:
    value = (job.get("env") or {}).get("MUCOMP_HOME")
    return str(Path(value or "runs").expanduser().resolve())


# ---------------------------------------------------------------------------------------------
# Session state


def _defaults() -> dict[str, Any]:
    return {
        KEY_OWNER: _owner_token(),
        KEY_SCENARIO: DEFAULT_SCENARIO,
        KEY_MODEL_A: None,
        KEY_MODEL_B: None,
        KEY_ATTACK: links.default_attack(),
        KEY_INSTANCE: None,
        KEY_SEEN_JOBS: set(),
        KEY_FORM: {},
        KEY_VISITED: set(),
    }


def init_state() -> None:
    """Fill the session's defaults (only the missing keys)."""
    for key, value in _defaults().items():
        if key not in st.session_state:
            st.session_state[key] = value


def query_from_state() -> dict[str, str]:
    """The URL query of the session's scenario, Model A / B and Attack settings (defaults left out:
    :mod:`mucomp.ui.links`)."""
    return {**links.scenario_query(scenario(), *model_ids()), **links.attack_query(st.session_state[KEY_ATTACK])}


def _start_from_query(query: dict[str, str]) -> None:
    """A new session takes the scenario, Model A / B and Attack settings its URL names; a model id
    the scenario does not hold is dropped and said (:func:`link_warnings`)."""
    found, a, b = links.state_from_query(query)
    init_state()
    st.session_state[KEY_ATTACK] = links.attack_from_query(query, st.session_state[KEY_ATTACK])
    if found is None:
        if problem := links.unopened_scenario(query):
            st.session_state[KEY_LINK_PROBLEMS] = ([problem], (scenario(), *model_ids()))
        return
    set_scenario(found)
    a, b, problems = links.missing_models(a, b, (r["id"] for r in experiments(found)))
    st.session_state[KEY_MODEL_A], st.session_state[KEY_MODEL_B] = a, b
    if problems:
        st.session_state[KEY_LINK_PROBLEMS] = (problems, (found, a, b))


def _sync_query() -> None:
    """A new session (a reload, a shared link) starts from the URL; afterwards the URL follows the
    session, so reloading any page keeps the scenario, Model A / B and the Attack settings."""
    if KEY_SCENARIO not in st.session_state:
        _start_from_query({k: st.query_params.get(k) for k in links.QUERY_KEYS if k in st.query_params})
    wanted = query_from_state()
    if {k: st.query_params.get(k) for k in links.QUERY_KEYS if k in st.query_params} != wanted:
        st.query_params.from_dict(wanted)


def _on_attack_tab() -> None:
    st.session_state[KEY_ATTACK]["tab"] = links.tab_of_label(st.session_state.get(KEY_ATTACK_TAB))


def attack_tabs() -> Sequence[Any]:
    """The Attack page's tabs (:data:`mucomp.ui.links.ATTACK_TABS`), open on the session's tab:
    a switch reruns the page, so the URL keeps the tab for a reload or a link."""
    label = links.ATTACK_TABS.get(st.session_state[KEY_ATTACK].get("tab"), links.ATTACK_TABS["threshold"])
    bind(KEY_ATTACK_TAB, label)
    return st.tabs(list(links.ATTACK_TABS.values()), key=KEY_ATTACK_TAB, on_change=_on_attack_tab)


def link_warnings() -> None:
    """Say which model ids of the link that opened this session were not found, until the session
    picks other models or another scenario."""
    entry = st.session_state.get(KEY_LINK_PROBLEMS)
    if not entry:
        return
    problems, state = entry
    if state != (scenario(), *model_ids()):
        st.session_state.pop(KEY_LINK_PROBLEMS, None)
        return
    for problem in problems:
        st.warning(problem, icon=":material/link_off:")


#: The browser cookie that keeps a visitor's owner token across reloads (so their experiments
#: stay theirs to delete). 128 random bits: never guessable; only ever compared, never rendered.
OWNER_COOKIE = "mucomp_owner"
_OWNER_TOKEN = re.compile(r"[0-9a-f]{16,64}")
KEY_OWNER_SAVED = "mucomp_owner_saved"


def _owner_token() -> str:
    """This browser's owner token: its cookie when it holds a well-formed one, else a new one."""
    try:
        cookie = st.context.cookies.get(OWNER_COOKIE)
    except Exception:  # no browser behind this session (a test harness, bare mode)
        cookie = None
    return cookie if isinstance(cookie, str) and _OWNER_TOKEN.fullmatch(cookie) else secrets.token_hex(16)


def _remember_owner() -> None:
    """Once per session, store the owner token in the browser's cookie (first visit, or a token
    the cookie does not hold yet): a reload then finds it and keeps the same owner."""
    if st.session_state.get(KEY_OWNER_SAVED):
        return
    st.session_state[KEY_OWNER_SAVED] = True
    try:
        if st.context.cookies.get(OWNER_COOKIE) == owner():
            return
    except Exception:
        return
    # The token is hex only (checked above or made by secrets), so it is safe inside the script.
    # st.html runs it in the app's own page (not an iframe): the cookie is the app's.
    with st.sidebar:
        st.html(f"<script>document.cookie = '{OWNER_COOKIE}={owner()}; path=/; max-age=31536000; "
                "SameSite=Strict';</script>", unsafe_allow_javascript=True)


def setup(title: str, *, icon: str = PAGE_ICON) -> None:
    """The first call of every page: page config, session defaults (from the URL for a new
    session), the worker pool, sidebar."""
    st.set_page_config(page_title=f"{title} · mucomp", page_icon=icon, layout="wide")
    _sync_query()
    init_state()
    st.session_state[KEY_VISITED].add(title.lower())
    get_queue()  # starts (and warms) the worker processes on the first page view
    _remember_owner()
    sidebar()
    link_warnings()


def owner() -> str:
    return st.session_state[KEY_OWNER]


def scenario() -> Scenario:
    return st.session_state[KEY_SCENARIO]


def set_scenario(new: Scenario) -> None:
    """Switch the session to ``new``; Model A / B and the selected instance are cleared when the
    scenario changes (they belong to the old one)."""
    if new != st.session_state.get(KEY_SCENARIO):
        st.session_state[KEY_SCENARIO] = new
        st.session_state[KEY_MODEL_A] = None
        st.session_state[KEY_MODEL_B] = None
        st.session_state[KEY_INSTANCE] = None


def model_ids() -> tuple[str | None, str | None]:
    return st.session_state[KEY_MODEL_A], st.session_state[KEY_MODEL_B]


def set_model(which: str, experiment_id: str | None) -> None:
    """Set Model ``"a"`` or ``"b"``."""
    st.session_state[KEY_MODEL_A if which == "a" else KEY_MODEL_B] = experiment_id


def scenario_label(s: Scenario) -> str:
    arch = "" if s.arch == s.spec.arch else f" ({s.arch})"
    data = f" · data seed {s.data_seed}" if s.data_seed else ""
    forget = f"'{s.forget_class_name}'" if s.forget_class is not None else s.forget_set.describe(s.spec)
    return f"{DATASETS[s.dataset].label}{arch} · forget {forget} · seed {s.train_seed}{data}"


def scenario_filter(s: Scenario, *, every_training_seed: bool = False) -> tuple[tuple[str, Any], ...]:
    """The listing filter of ``s`` (:data:`mucomp.store.SCENARIO_KEYS`) as hashable pairs;
    ``every_training_seed`` leaves the training seed out (replicate groups span seeds)."""
    fields = s.config_fields()
    keys = [k for k in SCENARIO_KEYS if not (every_training_seed and k == "train_seed")]
    return tuple((k, fields[k]) for k in keys)


# ---------------------------------------------------------------------------------------------
# Widgets bound to the app's own keys (widget keys vanish when a page without them runs)


_MISSING = object()
KEY_BOUND_LABELS = "mucomp_bound_labels"


def bind(widget_key: str, value: Any, *, labels_of: Any = _MISSING) -> None:
    """Make the widget ``widget_key`` show ``value`` before it is drawn (the app's own state is
    the truth; the widget copies it back with an ``on_change`` callback).

    ``labels_of``: what the widget's option labels depend on (a data set's class names). When it
    differs from the last time the widget was bound, the value is sent again although it did not
    change: the browser keeps showing a keyed widget's old label otherwise (a class of another
    data set)."""
    relabel = False
    if labels_of is not _MISSING:
        labelled = st.session_state.setdefault(KEY_BOUND_LABELS, {})
        relabel = labelled.get(widget_key, _MISSING) != labels_of
        labelled[widget_key] = labels_of
    if relabel or st.session_state.get(widget_key, _MISSING) != value:
        st.session_state[widget_key] = value


def class_choice(value: Any, num_classes: int, current: tuple[int, ...] = ()) -> int:
    """The class a one-class picker names: ``value`` when it is a class of the data set, else the
    first of ``current`` (the classes forgotten now), else the default scenario's class."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < num_classes:
        return value
    fallback = current[0] if current else DEFAULT_SCENARIO.forget_class
    return min(max(int(fallback), 0), num_classes - 1)


def classes_choice(values: Any, num_classes: int, current: tuple[int, ...] = ()) -> list[int]:
    """The classes a several-classes picker names: the classes of the data set in ``values``, else
    (none yet) the first of ``current`` and the class after it."""
    picked = sorted({v for v in values or () if isinstance(v, int) and not isinstance(v, bool)
                     and 0 <= v < num_classes})
    if picked:
        return picked
    first = class_choice(None, num_classes, current)
    return [first, (first + 1) % num_classes]


# ---------------------------------------------------------------------------------------------
# Stored results


def _store_stamp(store: ExperimentStore) -> tuple[int, int, int]:
    """Changes whenever an experiment is added or removed (folder mtime and entry count) and
    whenever the listing index is written (a save, delete, import or repair)."""
    stat = os.stat(store.root)
    try:
        index = os.stat(store.root / INDEX_FILE).st_mtime_ns
    except OSError:
        index = 0
    return stat.st_mtime_ns, stat.st_nlink, index


# A resource, not cache_data: cache_data unpickles a fresh copy on every call, about 0.08 s for
# 1,000 light results (5 MB), and a page run reads the listing two or three times. Callers
# never mutate the shared listing (as with :func:`memo`); a new stamp makes a new one.
@st.cache_resource(show_spinner=False, max_entries=16)
def _listing(root: str, stamp: tuple[int, int, int], filters: tuple[tuple[str, Any], ...]) -> tuple[list[dict], dict]:
    """The scenario's results without their heavy blocks, from the store's index (nothing per-image
    is parsed), and the store's unreadable experiments (id -> why). Shared by every session:
    read-only. ``filters``: :func:`scenario_filter`."""
    store = _store(root)
    light = store.light_results(**dict(filters))
    return light, dict(store.problems)


def experiments(s: Scenario | None = None) -> list[dict]:
    """Every stored result of the scenario (the session's by default), without the heavy blocks
    (attack, embedding, CKA): what the table, the pickers and the Pareto view need. Shared by
    every session: read it, never change it."""
    s = s or scenario()
    store = get_store()
    listing, _ = _listing(home_root(), _store_stamp(store), scenario_filter(s))
    return listing


def experiments_every_training_seed(s: Scenario | None = None) -> list[dict]:
    """Like :func:`experiments`, over every training seed of the scenario (its references
    included): what the replicate groups and the variance view read."""
    s = s or scenario()
    store = get_store()
    return _listing(home_root(), _store_stamp(store), scenario_filter(s, every_training_seed=True))[0]


def store_problems() -> dict[str, str]:
    """Folders of the store that could not be read at the last listing (id -> why)."""
    s = scenario()
    store = get_store()
    return _listing(home_root(), _store_stamp(store), scenario_filter(s))[1]


@st.cache_data(show_spinner=False, max_entries=64)
def _result(root: str, experiment_id: str, stamp: int = 0) -> dict:
    return _store(root).load(experiment_id).result


def _result_stamp(experiment_id: str) -> int:
    """``mtime_ns`` of the experiment's result.json (0 when unreadable): changes when an audit is
    stored with it (:func:`mucomp.store.update.update_audits`), the one change a result sees."""
    from mucomp.store import RESULT_FILE, validate_id

    try:
        return os.stat(get_store().root / validate_id(experiment_id) / RESULT_FILE).st_mtime_ns
    except (OSError, ValueError):
        return 0


def load_result(experiment_id: str) -> dict:
    """The full stored result of one experiment (cached per id and result.json stamp: only a
    stored audit changes a result)."""
    return _result(home_root(), experiment_id, _result_stamp(experiment_id))


def reference_ids(listing: list[dict]) -> dict[str, str]:
    """``{"original": id, "retrained": id}`` for the references found in ``listing``."""
    return {r["kind"]: r["id"] for r in listing if r.get("kind") in ("original", "retrained")}


def references_ready(s: Scenario | None = None) -> bool:
    """Whether both reference models of the scenario are stored."""
    return len(reference_ids(experiments(s))) == 2


def existing(experiment_id: str | None, listing: list[dict]) -> str | None:
    """``experiment_id`` if it is still in ``listing`` (it may have been deleted), else None."""
    return experiment_id if experiment_id in {r["id"] for r in listing} else None


# ---------------------------------------------------------------------------------------------
# Jobs


def scenario_jobs(s: Scenario, kind: type | None = None) -> list[dict]:
    """Snapshots of every job (any session) of scenario ``s``, optionally of one request type."""
    return [
        job for job in home_jobs()
        if request_scenario(job["config"]) == s and (kind is None or isinstance(job["config"], kind))
    ]


def reference_job(s: Scenario) -> dict | None:
    """The latest reference-preparation job of ``s`` (queued, running or finished), if any."""
    jobs = scenario_jobs(s, PrepareReferences)
    return jobs[-1] if jobs else None


def prepare_references(s: Scenario) -> None:
    """Queue the preparation of ``s``'s references unless one is already queued or running."""
    job = reference_job(s)
    if job is None or job["state"] in ("completed", "failed", "cancelled", "diverged"):
        try:
            get_queue().submit([PrepareReferences(s)], owner=owner())
        except SubmissionError as err:  # this session's queue is full
            st.toast(f"{err}.", icon=":material/block:")


def sidebar() -> None:
    """The scenario, Model A / B and the queue, on every page."""
    s = scenario()
    listing = experiments(s)
    labels = experiment_labels(listing)  # what tells two runs of one method apart (settings, seeds)
    a, b = model_ids()
    with st.sidebar:
        st.markdown("**Scenario**")
        st.caption(scenario_label(s))
        st.markdown("**Models**")
        st.caption(f"Model A: {md(labels.get(a, 'not chosen'))}  \nModel B: {md(labels.get(b, 'not chosen'))}")
        jobs = home_jobs()
        running = sum(j["state"] == "running" for j in jobs)
        queued = sum(j["state"] == "queued" for j in jobs)
        if running or queued:
            st.caption(f"Background work: {running} running, {queued} queued")



def _save_form(widget_key: str, name: str) -> None:
    st.session_state[KEY_FORM][name] = st.session_state[widget_key]


def form_widget(factory: Callable, label: str, name: str, default: Any, **kwargs: Any) -> Any:
    """Draw ``factory(label, ...)`` (a Streamlit input) whose value lives under the session's
    own ``mucomp_build_form[name]``, so it survives page changes. ``default`` is used until the
    user changes it."""
    key = f"form_{name}"
    bind(key, st.session_state[KEY_FORM].get(name, default))
    return factory(label, key=key, on_change=_save_form, args=(key, name), **kwargs)


@st.cache_resource(show_spinner=False, max_entries=256)
def _memo(name: str, key: tuple, _build: Callable[[], Any]) -> Any:
    return _build()


def memo(name: str, key: tuple, build: Callable[[], Any]) -> Any:
    """``build()`` computed once per process for ``(name, key)`` and shared by every session.

    For views of stored results (frames, plotly figures): ``key`` must name everything the value
    depends on (experiment ids, which never change content, and the view's options); callers never
    mutate the returned object. Building a plotly figure costs 40-140 ms (validation), far more
    than the page budget, so the pages draw memoised figures.
    """
    return _memo(name, (home_root(), *key), build)


KEY_SEEN_SELECTIONS = "mucomp_seen_selections"


def new_selection(widget_key: str, read: Callable[[Any], list]) -> list | None:
    """The selection of chart or table ``widget_key`` (``read`` turns its event into a list) when
    it changed since the last run, else None.

    Lets the latest selection among several linked charts win. A widget that is not in the
    session yet (the page was just opened) is no change, so returning to a page keeps what was
    selected before.
    """
    seen = st.session_state.setdefault(KEY_SEEN_SELECTIONS, {})
    if widget_key not in st.session_state:
        seen[widget_key] = []
        return None
    current = read(st.session_state[widget_key])
    if seen.get(widget_key, []) == current:
        return None
    seen[widget_key] = current
    return current
