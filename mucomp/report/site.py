"""Writing the static report site (``mucomp report``) and the Screen page's zip of it.

The site, relative to its folder::

    index.html             the scenarios                  definitions.html   every number's definition
    README.md              Hugging Face Space front matter (sdk: static, app_file: index.html)
    assets/plotly.min.js   the installed plotly's own JavaScript, once (no CDN)
    assets/report.js, report.css, templates.js
    figs/<hash>.js         one figure record each, named by its content: a figure that several pages
                           show (a model's attack in each of its pairs) is written once
    <scenario>/index.html  the Screen page: table, Pareto view, variance view, pairs
    <scenario>/<A>_vs_<B>.html   a pair's Contrast and Attack figures

Nothing in it loads from the network: the pages reference only these files, so it opens from
disk (``file://``) and works as a static Hugging Face Space or on any static host.

The figures are built in worker processes when there are many (each loads the results it needs
from the store itself; see :mod:`mucomp.report.figures` for why those processes swap the plotly
templates), in this process otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mucomp.report import pages
from mucomp.report.assets import CSS, JS
from mucomp.report.figures import Views, light_templates, model_views, pair_views, safe_json, screen_views
from mucomp.report.plan import REFERENCE_KINDS, ReportPlan, ScenarioPlan
from mucomp.results import MissingBlockError
from mucomp.results.imported import attack_reference_id, is_comparator
from mucomp.specs import get_spec

#: A file that marks a folder as a report this command wrote (so a new report may replace it).
MARKER = ".mucomp-report"
#: Pairs whose twin embedding is drawn by default: each costs about 1 s and 0.3 MB (two scatter
#: plots of every embedded image with both models' probabilities in the hover).
DEFAULT_EMBEDDINGS = 10
#: Below this many tasks the figures are built in this process (starting workers costs seconds).
POOL_THRESHOLD = 40

SPACE_README = """\
---
title: mucomp report
emoji: 🧽
colorFrom: green
colorTo: purple
sdk: static
app_file: index.html
pinned: false
short_description: Machine-unlearning experiments compared (static report)
---

# mucomp report

A static report made by `mucomp report` from stored experiments: open `index.html`. It needs no
server and makes no network request (plotly's JavaScript is in `assets/`), so it works from disk,
as a free static Hugging Face Space (this file's front matter) or on any static host.
"""


class ReportError(RuntimeError):
    """The report could not be written (the message says why and what to do)."""


@dataclass(frozen=True)
class ReportSummary:
    """What was written: the folder, counts, its size in bytes and the seconds it took."""

    path: Path
    scenarios: int
    experiments: int
    pairs: int
    figures: int
    bytes: int
    seconds: float


# ---------------------------------------------------------------------------------------------
# Figure tasks, run here or in worker processes


class _Loader:
    """Full results by id from one store, the most recent kept (a worker sees many pairs of one
    scenario in a row: its references stay loaded)."""

    def __init__(self, root: str | os.PathLike) -> None:
        from mucomp.store import ExperimentStore

        self.store = ExperimentStore(root)
        self.cache: OrderedDict[str, dict] = OrderedDict()

    def __call__(self, experiment_id: str | None) -> dict | None:
        if experiment_id is None:
            return None
        if experiment_id not in self.cache:
            self.cache[experiment_id] = self.store.load(experiment_id).result
            if len(self.cache) > 24:
                self.cache.popitem(last=False)
        self.cache.move_to_end(experiment_id)
        return self.cache[experiment_id]


_WORKER: dict[str, Any] = {}


def _start_worker(root: str) -> None:
    """A worker process's set-up: its own loader, and the light templates for its whole life (the
    process is the report's alone)."""
    _WORKER["load"] = _Loader(root)
    _WORKER["templates"] = light_templates()
    _WORKER["templates"].__enter__()


def _run_in_worker(task: tuple) -> tuple[tuple, Views]:
    return _run(task, _WORKER["load"])


def _run(task: tuple, load: _Loader) -> tuple[tuple, Views]:
    """One task (see :func:`_tasks`): its key (the task without its payload) and its views."""
    kind = task[0]
    if kind == "screen":
        _, key, rows, family, forget, names = task
        return (kind, key), screen_views(rows, family, forget, names)
    if kind == "model":
        _, key, identifier, role, retrained = task
        result, reference = load(identifier), load(retrained)
        if reference is None:
            views = Views(notes={"attack": "The scenario has no Retrained model: the attack needs it."})
            return task, views
        return task, model_views(result, reference, role)
    _, key, a, b, retrained, embedding = task
    return task, pair_views(load(a), load(b), load(retrained), embedding=embedding)


def _retrained_for(plan: ScenarioPlan, identifier: str) -> str | None:
    """The Retrained model ``identifier``'s attack is measured against: the one it recorded (when
    reported), else the scenario's; for an experiment imported from the published comparator, the
    comparator's Retrained file (:func:`mucomp.results.imported.attack_reference_id`)."""
    rows = {str(r["id"]): r for r in plan.rows}
    if is_comparator(rows[identifier]):
        try:
            return attack_reference_id(rows[identifier], plan.rows)
        except MissingBlockError:
            return None
    recorded = (rows[identifier].get("references") or {}).get("retrained") or {}
    chosen = recorded.get("id") if isinstance(recorded, Mapping) else None
    return chosen if chosen in rows else plan.references.get("retrained")


def _tasks(plan: ReportPlan, embeddings: int) -> list[tuple]:
    """Every figure task of the report: per scenario its Screen views, its pairs (the first
    ``embeddings`` of the report with the twin embedding) and each model in each role it has."""
    tasks: list[tuple] = []
    left = embeddings
    for scenario in plan.scenarios:
        spec = get_spec(scenario.definition.dataset)
        tasks.append(("screen", scenario.key, scenario.rows, scenario.family, scenario.definition.forget_set.text,
                      list(spec.class_names)))
        roles: set[tuple[str, str]] = set()
        for pair in scenario.pairs:
            tasks.append(("pair", scenario.key, pair.a, pair.b, _retrained_for(scenario, pair.a), left > 0))
            left -= 1
            # Each model's own task right after its first pair: the worker still holds its result.
            for identifier, role in ((pair.a, "A"), (pair.b, "B")):
                if (identifier, role) not in roles:
                    roles.add((identifier, role))
                    tasks.append(("model", scenario.key, identifier, role, _retrained_for(scenario, identifier)))
    return tasks


def _run_tasks(tasks: list[tuple], root: Path, workers: int, own_process: bool) -> dict[tuple, Views]:
    if workers > 0:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: a clean process (no copy of a threaded parent); the report's functions only.
        context = multiprocessing.get_context("spawn")
        chunk = max(1, len(tasks) // (workers * 6))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(str(root),)) as pool:
            return dict(pool.map(_run_in_worker, tasks, chunksize=chunk))
    load = _Loader(root)
    with light_templates() if own_process else contextlib.nullcontext():
        return dict(_run(task, load) for task in tasks)


# ---------------------------------------------------------------------------------------------
# Files


class _Figures:
    """The site's ``figs/`` folder: each record written once, under its content's hash."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.written: set[str] = set()
        self.templates: set[str] = set()
        folder.mkdir(parents=True, exist_ok=True)

    def put(self, record: tuple[str, str | None]) -> str:
        data, template = record
        digest = hashlib.sha256(data.encode()).hexdigest()[:20]
        if digest not in self.written:
            (self.folder / f"{digest}.js").write_text(f'MUCOMP.fig("{digest}",{data});\n', encoding="ascii")
            self.written.add(digest)
        if template is not None:
            self.templates.add(template)
        return digest

    def put_all(self, views: Views) -> dict[str, str]:
        return {slot: self.put(record) for slot, record in views.figures.items()}


def _templates_js(names: Sequence[str], real: Mapping[str, Any] | None) -> str:
    """``assets/templates.js``: the plotly templates the figures name, each once."""
    import plotly.io as pio

    lines = ["window.MUCOMP = window.MUCOMP || { figs: {}, templates: {} };"]
    for name in sorted(names):
        template = (real or {}).get(name) or pio.templates[name]
        lines.append(f"MUCOMP.templates[{safe_json(name)}] = {safe_json(template.to_plotly_json())};")
    return "\n".join(lines) + "\n"


def _write_assets(folder: Path) -> None:
    from plotly.offline import get_plotlyjs

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    (folder / "report.js").write_text(JS, encoding="utf-8")
    (folder / "report.css").write_text(CSS, encoding="utf-8")


def _prepare(out_dir: Path) -> Path:
    """A fresh temporary folder beside ``out_dir`` (renamed into place at the end); refuses a
    ``out_dir`` that exists, is not empty and is not an earlier report."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).exists())):
        raise ReportError(f"{out_dir} exists and is not an earlier mucomp report; give a new or empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def write_report(
    out_dir: str | os.PathLike,
    plan: ReportPlan,
    store_root: str | os.PathLike,
    *,
    workers: int | None = None,
    own_process: bool = False,
    embeddings: int = DEFAULT_EMBEDDINGS,
) -> ReportSummary:
    """Write the static site of ``plan`` (:func:`mucomp.report.plan.plan_report`) into
    ``out_dir`` from the store at ``store_root``.

    ``workers``: processes building the figures (None: this process for a small report, else
    up to 4, never more than the cores); ``own_process``: this process is the report's alone
    (the ``mucomp report`` command), so it may swap plotly's templates while it builds
    (:func:`mucomp.report.figures.light_templates`); ``embeddings``: how many pairs (in page
    order) get the twin embedding. ``out_dir`` is replaced when it holds an earlier report and
    refused when it holds anything else; the site appears there whole or not at all.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    tasks = _tasks(plan, max(0, embeddings))
    if workers is None:
        workers = 0 if len(tasks) < POOL_THRESHOLD else min(4, len(os.sched_getaffinity(0))
                                                           if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    tmp = _prepare(out_dir)
    try:
        with light_templates() if own_process else contextlib.nullcontext() as real:
            done = _run_tasks(tasks, Path(store_root), workers, own_process=False)
            figures = _Figures(tmp / "figs")
            _write_pages(tmp, plan, done, figures, embeddings)
            (tmp / "assets").mkdir()
            (tmp / "assets" / "templates.js").write_text(_templates_js(sorted(figures.templates), real),
                                                         encoding="ascii")
        _write_assets(tmp / "assets")
        (tmp / "README.md").write_text(SPACE_README, encoding="utf-8")
        (tmp / MARKER).write_text("written by mucomp report\n", encoding="utf-8")
        size = _folder_bytes(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ReportSummary(out_dir, len(plan.scenarios), plan.experiment_count, plan.pair_count, len(figures.written),
                         size, time.perf_counter() - started)


def _write_pages(folder: Path, plan: ReportPlan, done: dict[tuple, Views], figures: _Figures, embeddings: int) -> None:
    from mucomp.results import unreproduced_references

    made_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (folder / "index.html").write_text(pages.index_page(plan, made_at), encoding="utf-8")
    (folder / "definitions.html").write_text(pages.definitions_page(), encoding="utf-8")
    counted = 0
    for scenario in plan.scenarios:
        target = folder / scenario.folder
        target.mkdir()
        screen = done[("screen", scenario.key)]
        unreproduced = unreproduced_references(scenario.rows)
        (target / "index.html").write_text(pages.screen_page(
            scenario, screen.tables["experiments"], figures.put_all(screen), screen.notes, screen.tables,
            unreproduced), encoding="utf-8")
        for pair in scenario.pairs:
            views = done[("pair", scenario.key, pair.a, pair.b, _retrained_for(scenario, pair.a), counted < embeddings)]
            counted += 1
            models = {}
            for identifier, role in ((pair.a, "A"), (pair.b, "B")):
                model = done[("model", scenario.key, identifier, role, _retrained_for(scenario, identifier))]
                models[role] = (figures.put_all(model), model.notes, model.values)
            note = None if counted <= embeddings else _embedding_note(embeddings)
            (target / pair.page).write_text(pages.pair_page(
                scenario, pair, figures.put_all(views), views.notes, views.values, models, note), encoding="utf-8")


def _embedding_note(embeddings: int) -> str:
    """Why a pair page has no twin embedding, and how to get one."""
    which = "no pair" if embeddings == 0 else "its first pair" if embeddings == 1 else f"its first {embeddings} pairs"
    return (f"This report draws the twin embedding for {which} only (each adds about 0.3 MB and a second to build): "
            "make a report of fewer pairs (--pairs, --experiments) or raise --embeddings to see it here, or open the "
            "pair on the app's Contrast page.")


# ---------------------------------------------------------------------------------------------
# The Screen page's download


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="mucomp-report-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def zip_folder(folder: Path) -> bytes:
    """Every file under ``folder`` in a zip (paths relative to it, sorted), as bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def report_zip(scenario_key: str, home: str | os.PathLike | None = None, *, timeout: float = 600.0) -> bytes:
    """The static report of one scenario (every stored experiment of it) as a zip's bytes, for
    the Screen page's "Download report".

    Built by ``mucomp report`` in a process of its own: the figures swap plotly's global
    templates, which the app's server process must never see, and a large scenario's build
    stays out of the server's memory. ``home``: the ``MUCOMP_HOME`` to read (default: this
    process's). Raises :class:`ReportError` with the command's message when it fails."""
    from mucomp import settings

    env = {**os.environ, "MUCOMP_HOME": str(home if home is not None else settings.home())}
    with _scratch() as scratch:
        site = scratch / "report"
        done = subprocess.run([sys.executable, "-m", "mucomp.cli", "report", "--scenario", scenario_key, "-o", str(site),
                               "--quiet"], env=env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise ReportError((done.stderr or done.stdout).strip().splitlines()[-1] if (done.stderr or done.stdout)
                              else f"mucomp report stopped with exit code {done.returncode}")
        return zip_folder(site)


__all__ = ["DEFAULT_EMBEDDINGS", "REFERENCE_KINDS", "ReportError", "ReportSummary", "report_zip", "write_report",
           "zip_folder"]
