"""``mucomp reproduce``: rerun every experiment of a bundle here and diff every metric.

Per experiment of a bundle (bases first), on this machine:

1. **Data and references.** The data set's hash and the forget set's hash are recomputed and
   compared with the bundle's; the scenario's references are prepared as for any run (trained
   locally or pulled from the Hub, cached) and their weights' hashes compared with the identities
   the bundle records.
2. **The rerun.** An unlearned experiment is rerun from its config (every seed; its base is the
   Original or the rerun of its bundled base) into a scratch store (``keep``: into the store);
   its metrics are compared with the manifest's and its weights' hash with the recorded one.
   References are compared as prepared here; uploaded and published models have no run to
   repeat, so step 3 is all there is (without bundled weights they can't be checked).
3. **The bundled weights, evaluated here** (when the bundle holds them): their hash must be the one
   the manifest records, and their figures, computed with the same single evaluation pass as any
   model, must equal the manifest's metrics. This separates "the weights are not the ones that
   gave these numbers" (a perturbed or swapped file: the metrics that move are named) from "the
   training ran differently here". Weights bit for bit equal to the rerun's are not evaluated
   twice (one pass is deterministic on one machine): their figures are the rerun's.

Each experiment is reproduced with the settings its own run recorded (its ``MUCOMP_PRECISION``,
else its result's ``evaluation.precision``, and its torch thread count when this machine has that
many cores), put back afterwards.

Tolerance: ``None`` (the default) means *exact* (0) when this machine's environment equals the one
the experiment ran in in every field of :data:`~mucomp.environment.EXACT_KEYS` (the same
CPU, libraries, code and thread count), else :data:`CROSS_TOLERANCE`. The environment is the one
its result recorded (:func:`~mucomp.sharing.bundle.run_environment`; a manifest that says otherwise
is refused by :func:`~mucomp.sharing.bundle.read_bundle`), the manifest's only for results that
record none. An explicit tolerance
applies everywhere. Every difference is printed as a number either way, never hidden. In exact
mode any difference in the data, the references' or the rerun's weights also fails; otherwise
those are reported and the metrics decide. Cost counts (samples, steps) are hardware-independent
and always compared exactly; RT (seconds) is shown, never compared.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mucomp.display_text import for_terminal
from mucomp.sharing.bundle import Bundle, BundleEntry, read_bundle, run_environment

if TYPE_CHECKING:
    from mucomp.store import ExperimentStore

#: The tolerance when the environments differ: one percentage point of an accuracy (fractions).
CROSS_TOLERANCE = 0.01
#: Metrics that are timings: shown beside each other, never compared.
TIMINGS = ("RT",)
#: Metrics that are counts of work: compared exactly whatever the tolerance.
EXACT_BLOCKS = ("cost",)

Progress = Callable[[str], None]


@dataclass
class MetricRow:
    """One metric: the bundle's value, the rerun's, the bundled weights' evaluated here, and whether
    each moved beyond the tolerance. Lists (per class, matrices) are one row: ``delta_*`` is the
    largest absolute difference of any entry."""

    name: str
    bundled: Any
    rerun: Any = None
    reevaluated: Any = None
    delta_rerun: float | None = None
    delta_reevaluated: float | None = None
    moved_rerun: bool = False
    moved_reevaluated: bool = False
    compared: bool = True
    exact: bool = False
    rerun_done: bool = False
    reevaluated_done: bool = False


@dataclass
class Check:
    """One identity compared (data, forget set, a reference, weights): ``ok`` whether equal;
    ``fails`` whether its difference fails the experiment (always for the bundled weights'
    integrity; in exact mode for the rest)."""

    name: str
    bundled: str | None
    here: str | None
    ok: bool
    fails: bool
    note: str = ""


@dataclass
class ExperimentReport:
    """What reproducing one experiment found."""

    id: str
    label: str
    kind: str
    tolerance: float
    exact: bool
    environment_differences: list[tuple[str, Any, Any]] = field(default_factory=list)
    rerun_id: str | None = None
    rows: list[MetricRow] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: The precision the evaluations here ran in, beside the bundled experiment's (see _precision_note).
    precision: str = ""

    @property
    def moved(self) -> dict[str, list[str]]:
        """The metrics that moved: ``{"rerun": [...], "bundled weights": [...]}``."""
        return {"rerun": [r.name for r in self.rows if r.moved_rerun],
                "bundled weights": [r.name for r in self.rows if r.moved_reevaluated]}

    @property
    def reproduced(self) -> bool:
        moved = self.moved
        return not (self.problems or moved["rerun"] or moved["bundled weights"]
                    or any(c.fails and not c.ok for c in self.checks))


@dataclass
class ReproductionReport:
    """Every experiment of a bundle, reproduced (or not); ``ok`` when every one was."""

    source: str
    experiments: list[ExperimentReport]
    groups: dict[str, dict[str, dict]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(e.reproduced for e in self.experiments)

    def as_dict(self) -> dict:
        """A JSON-safe dict of the report (``mucomp reproduce --json``)."""
        from mucomp.metrics import to_json_safe

        experiments = []
        for report in self.experiments:
            item = asdict(report)
            item["environment_differences"] = [list(d) for d in report.environment_differences]
            item.update(reproduced=report.reproduced, moved=report.moved)
            experiments.append(item)
        return to_json_safe({"source": self.source, "ok": self.ok, "experiments": experiments, "groups": self.groups})

    def text(self) -> str:
        """The side-by-side diff printed by ``mucomp reproduce``."""
        return format_report(self)


# --- comparing values -----------------------------------------------------------------------------
def _numbers(value: Any) -> list | None:
    """A value flattened to a list of numbers / None, or None when it is not numeric."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return [value]
    if isinstance(value, list):
        out = []
        for item in value:
            flat = _numbers(item)
            if flat is None:
                return None
            out += flat
        return out
    return None


def _shape(value: Any) -> tuple:
    if isinstance(value, list):
        return (len(value), *(_shape(value[0]) if value else ()))
    return ()


def difference(a: Any, b: Any) -> float | None:
    """The largest absolute difference between two stored figures (numbers or nested lists of
    numbers); 0 when equal, ``inf`` when they can't be compared (other shape, one side missing),
    None when either is not numeric (then compare them for equality)."""
    if isinstance(a, (list, int, float)) or isinstance(b, (list, int, float)) or a is None or b is None:
        fa, fb = _numbers(a), _numbers(b)
        if fa is None or fb is None:
            return None
        if _shape(a) != _shape(b) or len(fa) != len(fb):
            return math.inf
        worst = 0.0
        for x, y in zip(fa, fb, strict=True):
            if x is None or y is None:
                if x is not y:
                    return math.inf
                continue
            worst = max(worst, abs(float(x) - float(y)))
        return worst
    return None


def _moved(a: Any, b: Any, tolerance: float) -> tuple[float | None, bool]:
    delta = difference(a, b)
    if delta is None:
        return None, a != b
    return delta, delta > tolerance if tolerance > 0 else delta != 0.0


def metric_rows(bundled: dict, rerun: dict | None, reevaluated: dict | None, tolerance: float) -> list[MetricRow]:
    """One :class:`MetricRow` per metric of ``bundled`` (a metrics block; ``cost`` split into its
    counts), comparing the rerun's and the re-evaluation's (None: not done) within ``tolerance``.

    A side compares only what it measures: the bundled weights evaluated here ran no method (no
    RT, no cost), and neither side runs the audits stored later on demand (U-LiRA, relearning),
    so those rows are shown and marked, never counted as moved. Metrics only the rerun has are
    listed, not compared (a newer mucomp measures more).
    """
    rows = []

    def add(name: str, a: Any, b: Any, c: Any, *, compared: bool, exact: bool, b_done: bool, c_done: bool) -> None:
        row = MetricRow(name, a, b, c, compared=compared, exact=exact, rerun_done=b_done, reevaluated_done=c_done)
        limit = 0.0 if exact else tolerance
        if compared and b_done:
            row.delta_rerun, row.moved_rerun = _moved(a, b, limit)
        if compared and c_done:
            row.delta_reevaluated, row.moved_reevaluated = _moved(a, c, limit)
        rows.append(row)

    names = list(bundled) + [k for k in (rerun or {}) if k not in bundled]
    for name in names:
        a, b = bundled.get(name), (rerun or {}).get(name)
        b_done = rerun is not None and name in rerun
        c_done = reevaluated is not None and name in reevaluated and name not in TIMINGS and name not in EXACT_BLOCKS
        c = reevaluated.get(name) if c_done else None
        if name in EXACT_BLOCKS and (isinstance(a, dict) or isinstance(b, dict)):
            keys = list(a or {}) + [k for k in (b or {}) if k not in (a or {})]
            for key in keys:
                add(f"{name}.{key}", (a or {}).get(key), (b or {}).get(key), None, compared=key in (a or {}),
                    exact=True, b_done=b_done and key in (b or {}), c_done=False)
            continue
        add(name, a, b, c, compared=name not in TIMINGS and name in bundled, exact=False, b_done=b_done, c_done=c_done)
    return rows


# --- reproducing ------------------------------------------------------------------------------------
def reproduce(
    source: Any,
    store: ExperimentStore,
    *,
    tolerance: float | None = None,
    keep: bool = False,
    progress: Progress | None = None,
) -> ReproductionReport:
    """Rerun every experiment of the bundle ``source`` (path or binary file object) on this
    machine and compare (see the module docstring). References are prepared in ``store`` (as
    any run would); reruns go to a scratch store removed afterwards, or with ``keep`` into
    ``store``. Raises StoreError for a bundle that does not pass its checks."""
    from mucomp.store import ExperimentStore

    bundle = read_bundle(source)
    say = progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="mucomp-reproduce-") as scratch_dir:
        scratch = store if keep else ExperimentStore(Path(scratch_dir) / "experiments")
        reruns: dict[str, str] = {}  # bundled id -> its rerun's id (a base's rerun is the next one's base)
        reports, rerun_results = [], {}
        for position, entry in enumerate(bundle.entries.values(), start=1):
            say(f"[{position}/{len(bundle.entries)}] {entry.id}: {_label(entry)}")
            report, rerun = _reproduce_one(entry, bundle, store, scratch, reruns, tolerance)
            reports.append(report)
            if rerun is not None:
                rerun_results[entry.id] = rerun
        groups = _group_means(bundle, rerun_results)
    return ReproductionReport(str(getattr(source, "name", source)), reports, groups)


def _label(entry: BundleEntry) -> str:
    config = entry.result["config"]
    label = entry.result.get("method_label") or config.get("method") or entry.result["kind"]
    seeds = ", ".join(f"{k} {v}" for k, v in entry.manifest.get("seeds", {}).items())
    return f"{label} on {config.get('dataset')} / {config.get('forget')} ({seeds})"


def _tolerance(entry: BundleEntry, tolerance: float | None) -> tuple[float, bool, list]:
    from mucomp.environment import environment, environment_differences

    differences = environment_differences(run_environment(entry)[0], environment())
    if tolerance is not None:
        return float(tolerance), float(tolerance) == 0.0 and not differences, differences
    return (0.0, True, differences) if not differences else (CROSS_TOLERANCE, False, differences)


def _short(sha: str | None) -> str | None:
    return None if sha is None else sha[:12]


def _reproduce_one(
    entry: BundleEntry, bundle: Bundle, store: ExperimentStore, scratch: ExperimentStore,
    reruns: dict[str, str], tolerance: float | None,
) -> tuple[ExperimentReport, dict | None]:
    """Reproduce one experiment: ``(report, the rerun's result or None)``."""
    recorded = (entry.result.get("evaluation") or {}).get("precision")  # typed by the result schema
    with _run_settings(entry, recorded):
        return _reproduce_here(entry, bundle, store, scratch, reruns, tolerance, recorded)


@contextlib.contextmanager
def _run_settings(entry: BundleEntry, recorded: str | None) -> Iterator[None]:
    """Run the block with the settings the experiment's own run recorded, put back afterwards: its
    ``MUCOMP_PRECISION`` (else ``recorded``, the precision its result was evaluated in) and its
    torch thread count (a result that doesn't record its run's environment: this process's threads)."""
    import torch

    from mucomp.execution.requests import job_environment_applied
    from mucomp.precision import ENV, PRECISIONS

    ran, by_run = run_environment(entry)
    ran = ran if by_run else {}
    precision = ran["precision"].get("evaluation") if isinstance(ran.get("precision"), dict) else None
    if precision not in PRECISIONS:
        precision = recorded
    # More threads than this machine has cores would only oversubscribe it (and a machine with
    # fewer cores is another CPU: compared within the tolerance anyway).
    threads = ran.get("torch_threads")
    usable = isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= (os.cpu_count() or 1)
    threads = threads if usable else None
    before = torch.get_num_threads()
    with contextlib.ExitStack() as stack:
        if precision in PRECISIONS:
            stack.enter_context(job_environment_applied({ENV: precision}))
        if threads is not None and threads != before:
            torch.set_num_threads(threads)
            stack.callback(torch.set_num_threads, before)
        yield


def _reproduce_here(
    entry: BundleEntry, bundle: Bundle, store: ExperimentStore, scratch: ExperimentStore,
    reruns: dict[str, str], tolerance: float | None, recorded: str | None,
) -> tuple[ExperimentReport, dict | None]:
    limit, exact, differences = _tolerance(entry, tolerance)
    report = ExperimentReport(entry.id, _label(entry), entry.result["kind"], limit, exact, differences)
    manifest, result = entry.manifest, entry.result
    try:
        state = _scenario_checks(entry, store, report)
    except (RuntimeError, ValueError, OSError) as err:  # no data, no references here: said, not raised
        report.problems.append(f"the scenario can't be prepared here: {err}")
        report.rows = metric_rows(result["metrics"], None, None, limit)
        return report, None
    rerun_result, rerun_hash = None, None
    kind = result["kind"]
    if kind == "unlearned":
        rerun_result, rerun_hash = _rerun(entry, bundle, state, scratch, reruns, report)
    elif kind in ("original", "retrained"):
        rerun_result, rerun_hash = _reference_here(entry, state, store, report)
    elif entry.model_bytes is None:
        report.problems.append(f"a {kind} model has no run to repeat, and the bundle does not hold its weights: "
                               "nothing here can check its figures (bundle it with its weights)")
    report.precision = _precision_note(recorded, state.device)
    reevaluated = _evaluate_bundled_weights(entry, state, report, rerun_result, rerun_hash)
    rerun_metrics = rerun_result["metrics"] if rerun_result is not None else None
    report.rows = metric_rows(result["metrics"], rerun_metrics, reevaluated, limit)
    if manifest.get("weights_sha256") is None and rerun_result is not None:
        report.checks.append(Check("weights (rerun)", None, None, True, False,
                                   "no weights were stored with the experiment: only its metrics are compared"))
    return report, rerun_result


def _precision_note(recorded: str | None, device: Any) -> str:
    """What the evaluation here ran in, next to what the bundled experiment's did."""
    from mucomp.precision import effective_precision

    here = effective_precision(device)
    if recorded is None:
        return f"{here} here; the bundle does not record its experiment's precision"
    if here == recorded:
        return f"{here}, as the bundled experiment was evaluated"
    return f"{here} here: {recorded}, the bundled experiment's precision, is not available on {device}"


def _scenario_checks(entry: BundleEntry, store: ExperimentStore, report: ExperimentReport):
    """Rebuild the scenario, compare its data and forget-set hashes, prepare its references and
    compare their weights; returns the prepared :class:`~mucomp.experiment.ScenarioState`."""
    from mucomp.data import Scenario, data_sha256
    from mucomp.experiment import prepare_scenario
    from mucomp.store import weights_sha256

    scenario = Scenario.from_config(entry.result["config"])
    identity = entry.manifest["scenario"]
    here = data_sha256(scenario.dataset)
    report.checks.append(Check(f"data {scenario.dataset}", _short(identity["data_sha256"]), _short(here),
                               here == identity["data_sha256"], report.exact,
                               "" if here == identity["data_sha256"] else "the data set's images or labels differ here"))
    forget = scenario.forget_sha256
    report.checks.append(Check(f"forget set {scenario.forget_set.text}", _short(identity["forget_sha256"]), _short(forget),
                               forget == identity["forget_sha256"], report.exact,
                               "" if forget == identity["forget_sha256"] else
                               f"other forget images here ({scenario.forget_indices.size} vs {identity['n_forget']})"))
    state = prepare_scenario(scenario, store)
    for kind in ("original", "retrained"):
        ref = getattr(state, kind)
        recorded = entry.manifest.get("references", {}).get(kind) or {}
        hash_here = weights_sha256(ref.model.state_dict())
        bundled = recorded.get("weights_sha256")
        notes = []
        if recorded.get("checkpoint") and recorded["checkpoint"] != ref.checkpoint_id:
            notes.append(f"checkpoint {ref.checkpoint_id} here, {recorded['checkpoint']} in the bundle")
        if bundled is None:
            notes.append("the bundle records no reference weights (none were stored where it was made)")
        note = "; ".join(notes)
        report.checks.append(Check(f"reference {kind}", _short(bundled), _short(hash_here),
                                   bundled is None or bundled == hash_here, report.exact and bundled is not None, note))
    return state


def _evaluate_bundled_weights(entry: BundleEntry, state: Any, report: ExperimentReport, rerun: dict | None,
                              rerun_hash: str | None) -> dict | None:
    """The bundled weights' metrics evaluated here (None without bundled weights); their hash is
    checked against the manifest's (a mismatch always fails: the file is not what gave the numbers).

    Weights bit for bit equal to the rerun's are not evaluated a second time: one evaluation pass
    is deterministic on one machine, so their figures are the rerun's.
    """
    if entry.model_bytes is None:
        return None
    from safetensors.torch import load

    from mucomp.experiment import evaluate_model
    from mucomp.models import model_from_state_dict
    from mucomp.store import weights_sha256

    tensors = load(entry.model_bytes)
    found, recorded = weights_sha256(tensors), entry.manifest.get("weights_sha256")
    same = rerun is not None and found == rerun_hash
    note = ("" if found == recorded else "the bundled weights are not the ones the manifest records: the file was changed")
    if same:
        note = "; ".join(filter(None, [note, "the rerun's very weights: their figures are the rerun's"]))
    report.checks.append(Check("weights (bundled file)", _short(recorded), _short(found), found == recorded, True, note))
    if same:
        return dict(rerun["metrics"])
    scenario = state.scenario
    model = model_from_state_dict(scenario.arch, scenario.spec.num_classes, tensors).to(state.device).eval()
    return evaluate_model(model, state, model_id=entry.id)["metrics"]


def _rerun(entry: BundleEntry, bundle: Bundle, state: Any, scratch: ExperimentStore, reruns: dict[str, str],
           report: ExperimentReport) -> tuple[dict | None, str | None]:
    """``(the rerun's result, its weights' hash)``, or ``(None, None)`` with the problem reported."""
    from mucomp.config import ExperimentConfig
    from mucomp.experiment import ExperimentStopped, run_experiment
    from mucomp.store import weights_sha256

    config = dict(entry.result["config"])
    base = config.get("base")
    if isinstance(base, str) and base != "original":
        if base not in reruns:
            report.problems.append(f"its base {base} was not reproduced, so it can't be rerun")
            return None, None
        config["base"] = reruns[base]
    try:
        rerun_config = ExperimentConfig.from_dict(config)
    except (ValueError, TypeError) as err:
        report.problems.append(f"its config can't be rerun by this mucomp ({err})")
        return None, None
    try:
        experiment = run_experiment(rerun_config, scratch, references=state)
    except (ExperimentStopped, ValueError) as err:
        report.problems.append(f"the rerun stopped: {err}")
        return None, None
    reruns[entry.id] = report.rerun_id = experiment.id
    recorded, found = entry.manifest.get("weights_sha256"), weights_sha256(experiment.state_dict())
    if recorded is not None:
        report.checks.append(Check("weights (rerun)", _short(recorded), _short(found), recorded == found, report.exact,
                                   "identical weights" if recorded == found else "the rerun trained other weights"))
    return experiment.result, found


def _reference_here(entry: BundleEntry, state: Any, store: ExperimentStore,
                    report: ExperimentReport) -> tuple[dict | None, str | None]:
    """A bundled reference's counterpart here: the reference this machine prepared for the
    scenario (its result and weights' hash)."""
    from mucomp.store import weights_sha256

    ref = getattr(state, entry.result["kind"])
    report.rerun_id = ref.experiment_id
    try:
        return store.load(ref.experiment_id).result, weights_sha256(ref.model.state_dict())
    except (RuntimeError, OSError) as err:  # StoreError: absent or unreadable here: said, not raised
        report.problems.append(f"the {entry.result['kind']} reference prepared here can't be read ({err})")
        return None, None


def _group_means(bundle: Bundle, reruns: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Per replicate group of the bundle: ``{metric: {"bundled": mean, "rerun": mean, "n"}}``
    (the members are compared one by one above; this is the group's figure)."""
    from mucomp.groups import summarize

    groups: dict[str, list[str]] = {}
    for entry in bundle.entries.values():
        if entry.result["kind"] == "unlearned" and entry.result.get("group"):
            groups.setdefault(entry.result["group"], []).append(entry.id)
    out = {}
    for group, ids in groups.items():
        if len(ids) < 2:  # a group of one: its mean is its member, compared above
            continue
        before = summarize([bundle.entries[i].result for i in ids])
        after = summarize([reruns[i] for i in ids if i in reruns])
        out[group] = {metric: {"bundled": stats["mean"], "rerun": after.get(metric, {}).get("mean"),
                               "n": stats["n"], "n_rerun": after.get(metric, {}).get("n", 0)}
                      for metric, stats in before.items()}
    return out


# --- the printed diff -----------------------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + "x".join(str(n) for n in _shape(value)) + "]"
    return str(value)


def _delta(delta: float | None, moved: bool, done: bool, compared: bool, ran: bool = False) -> str:
    if not done:
        return "(not measured)" if ran and compared else ""
    if not compared:
        return "(not compared)"
    text = "=" if delta == 0.0 else ("differs" if delta is None else f"{delta:.3g}")
    return f"{text} MOVED" if moved else text


def format_report(report: ReproductionReport) -> str:
    """The side-by-side diff: per experiment its checks (data, references, weights), then every
    metric as bundled, rerun here and evaluated here from the bundled weights, with |difference|."""
    lines = [f"reproducing {report.source}: {len(report.experiments)} experiment(s)"]
    for e in report.experiments:
        lines.append("")
        rerun = f" -> rerun {e.rerun_id}" if e.rerun_id else ""
        lines.append(f"experiment {e.id} ({e.kind}): {e.label}{rerun}")
        if e.exact:
            lines.append("  tolerance 0 (exact): this machine has the CPU, libraries, code and thread count the bundle records")
        else:
            lines.append(f"  tolerance {e.tolerance:g}: the environment differs from the bundle's:")
            lines += [f"    {name}: {_cell(a)} in the bundle, {_cell(b)} here" for name, a, b in e.environment_differences]
            if not e.environment_differences:
                lines.append("    (none; the tolerance was asked for)")
        if e.precision:
            lines.append(f"  evaluated in {e.precision}")
        for check in e.checks:
            state = "equal" if check.ok else ("DIFFERS" if check.fails else "differs")
            lines.append(f"  {check.name:<26} {check.bundled or '-':<13} here {check.here or '-':<13} {state}"
                         + (f"  ({check.note})" if check.note else ""))
        has_rerun = any(r.rerun_done for r in e.rows)
        has_reeval = any(r.reevaluated_done for r in e.rows)
        header = f"  {'metric':<26} {'bundled':>12} {'rerun':>12} {'|diff|':>14}"
        if has_reeval:
            header += f" {'bundled weights':>16} {'|diff|':>14}"
        lines.append(header)
        for row in e.rows:
            line = (f"  {row.name:<26} {_cell(row.bundled):>12} {_cell(row.rerun) if row.rerun_done else '':>12} "
                    f"{_delta(row.delta_rerun, row.moved_rerun, row.rerun_done, row.compared, has_rerun):>14}")
            if has_reeval:
                ran = not row.name.startswith(tuple(f"{b}." for b in EXACT_BLOCKS))
                line += (f" {_cell(row.reevaluated) if row.reevaluated_done else '':>16} "
                         f"{_delta(row.delta_reevaluated, row.moved_reevaluated, row.reevaluated_done, row.compared, ran):>14}")
            lines.append(line.rstrip())
        for problem in e.problems:
            lines.append(f"  problem: {problem}")
        if e.reproduced:
            lines.append("  verdict: reproduced" + (" exactly" if e.exact else f" within {e.tolerance:g}"))
        else:
            reasons = [f"moved in the {where}: {', '.join(names)}" for where, names in e.moved.items() if names]
            reasons += [f"{c.name} differs" for c in e.checks if c.fails and not c.ok]
            reasons += ["see the problems above"] if e.problems else []
            lines.append("  verdict: NOT reproduced (" + "; ".join(reasons) + ")")
    for group, metrics in report.groups.items():
        lines.append("")
        lines.append(f"group {group}: mean of the bundled members vs the reruns")
        for metric, stats in metrics.items():
            lines.append(f"  {metric:<26} {_cell(stats['bundled']):>12} {_cell(stats['rerun']):>12}   "
                         f"n {stats['n']} / {stats['n_rerun']}")
    done = sum(e.reproduced for e in report.experiments)
    lines.append("")
    lines.append(f"{done} of {len(report.experiments)} experiment(s) reproduced"
                 + ("" if report.ok else "; exit status 1"))
    # Labels, ids, environments, groups and notes come from the bundle: a line break or an escape
    # sequence in one must not fake or hide a line (a "verdict"), so each line is escaped whole.
    return "\n".join(for_terminal(line) for line in lines)
