"""Ensembles for the many-model evaluation: N Retrained and N unlearned models of one scenario,
made once, cached per member, and scored with the NeurIPS-2023 challenge's forgetting quality F
and EasyDUB's KLoM (the definitions are :mod:`mucomp.audits.challenge`; the stored records are
:mod:`mucomp.store.ensembles`).

- **Retrained ensemble** (``kind="retrained"``): the Retrained references of the training seeds
  :func:`mucomp.audits.ulira.shadow_seeds` gives (the Original's own seed left out), trained and
  cached by :func:`mucomp.references.load_reference` (``source="train"``): the very files
  U-LiRA's shadow pairs use, so no model is trained twice. It depends on the scenario only and is
  shared by every method configuration.
- **Unlearned ensemble** (``kind="unlearned"``): the scenario's Original (its own training seed)
  unlearned by one method configuration with unlearning seeds 0, 1, ..., N - 1, all from the same
  Original, as in the challenge. Member s is the model ``mucomp run`` makes with unlearning seed s
  (the same method call, hyper-parameters and seed).

Ensembles grow: the first N seeds of an ensemble are always the same, so N = 64 after 32 makes
the 32 missing members only. A member is made by one process at a time (a file lock per member;
another process waits, then reads it) and cached as ``member-s<seed>.npz`` under
``$MUCOMP_HOME/ensembles/members/<spec key>/`` (safe to delete). It holds what one evaluation pass
per split gives (the train split over the forget and retain images, the whole test split): the
logit-scaled confidences of the forget images, KLoM's margins of the forget, retain and test
images, the retain accuracy, the test accuracy (the test images of the retain classes: every test
image for a random or index forget set, the challenge's test set) and the seconds it took to make.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mucomp import __version__, settings
from mucomp.audits.challenge import (
    challenge_epsilons,
    challenge_score,
    epsilon_resolution,
    example_points,
    klom,
    klom_p95,
    logit_scaled_confidence,
    margin,
)
from mucomp.audits.eligibility import CHEAP_SHADOW_ARCHS
from mucomp.audits.ulira import shadow_seeds
from mucomp.config import ExperimentConfig
from mucomp.data import Scenario
from mucomp.evaluation import evaluate
from mucomp.experiment.cache_files import save_npz, write_description
from mucomp.groups import group_id
from mucomp.locks import locked
from mucomp.methods import available_methods, get_method, run_unlearning
from mucomp.progress import CancelFn, ProgressFn, RunStopped, stop_if_cancelled
from mucomp.recipes import recipe_for, recipe_hash
from mucomp.references import load_reference
from mucomp.store import now_iso
from mucomp.store.ensembles import (
    ENSEMBLE_FORMAT,
    EnsembleResult,
    ensemble_key,
    retrained_ensemble_key,
    save_ensemble_result,
)

#: Bumped when what a cached member holds (or how it is made) changes: its folder changes with it.
MEMBER_FORMAT = 1
KINDS = ("unlearned", "retrained")
#: The fewest models per side: F's buckets reach ceil(ln(N - 1)), so N = 2 resolves no ε at all
#: and would score F = 0 whatever the method.
MIN_MODELS = 3
SPLITS = ("forget", "retain", "test")
class EnsembleError(ValueError):
    """An ensemble that can't be made as asked; the message says why and what to do."""


@dataclass(frozen=True)
class EnsembleSpec:
    """One ensemble's kind of member (picklable: it travels to worker processes).

    ``config``: an :class:`~mucomp.config.ExperimentConfig` of the scenario whose training seed
    is the Original's; for ``kind="unlearned"`` also the method and its hyper-parameters (its
    unlearning seed is replaced per member), for ``kind="retrained"`` only the scenario counts.
    """

    config: ExperimentConfig
    kind: str = "unlearned"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "unlearned" and self.config.base != "original":
            raise EnsembleError(f"an ensemble's models are unlearned from the Original; this config starts from "
                                f"{self.config.base}. Give a config that starts from the Original")

    @property
    def scenario(self) -> Scenario:
        """The scenario, with the Original's training seed."""
        return Scenario.from_config(self.config)

    @property
    def method(self) -> str | None:
        return self.config.method if self.kind == "unlearned" else None

    def hyper(self) -> dict:
        """The method's resolved hyper-parameters (empty for the Retrained ensemble)."""
        if self.kind != "unlearned":
            return {}
        return dict(get_method(self.config.method).resolve_for(self.scenario, self.config.hyper()))

    def member_seeds(self, n: int) -> list[int]:
        """The seeds of the first ``n`` members: unlearning seeds 0..n-1, or the training seeds of
        :func:`~mucomp.audits.ulira.shadow_seeds` without the Original's (U-LiRA's shadows)."""
        if self.kind == "unlearned":
            return list(range(int(n)))
        return shadow_seeds(int(n), exclude=[self.scenario.train_seed])

    def member_config(self, seed: int) -> ExperimentConfig:
        """The experiment config member ``seed`` is made with (its training seed for a Retrained
        member, its unlearning seed for an unlearned one)."""
        if self.kind == "unlearned":
            return dataclasses.replace(self.config, unlearn_seed=int(seed))
        return dataclasses.replace(self.config, train_seed=int(seed), unlearn_seed=int(seed))

    def stored_config(self) -> dict:
        """The record's config: the stored experiment config of the method configuration with the
        unlearning seed of its first member, or the Retrained reference's config."""
        if self.kind == "unlearned":
            return get_method(self.config.method).stored_config(self.member_config(0))
        scenario = self.scenario
        return {**scenario.config_fields(), "unlearn_seed": scenario.train_seed, "method": "retrained", "base": None}

    def record_key(self) -> str:
        """The stored record's key (:mod:`mucomp.store.ensembles`' rules)."""
        config = self.stored_config()
        return ensemble_key(config) if self.kind == "unlearned" else retrained_ensemble_key(config)

    def description(self) -> dict:
        """Everything the members depend on except their seeds, as JSON-safe data (the unlearned
        side also on the Original's training seed)."""
        scenario = self.scenario
        fields = scenario.config_fields()
        if self.kind == "retrained":
            fields.pop("train_seed")
        arch = scenario.arch
        return {
            "format": MEMBER_FORMAT,
            "kind": self.kind,
            "scenario": {k: v if isinstance(v, (int, float, str, bool, list, type(None))) else str(v)
                         for k, v in fields.items()},
            "reference_recipe": recipe_hash(arch, recipe_for(scenario.spec.name, arch)),
            # References trained with another thread count are other files (mucomp.references).
            "reference_threads": settings.reference_threads(),
            "method": self.method,
            "hyper": self.hyper(),
        }

    @property
    def key(self) -> str:
        """The cache folder's name: the kind and a short hash of :meth:`description`."""
        text = json.dumps(self.description(), sort_keys=True, default=str)
        return f"{self.kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass
class EnsembleMember:
    """What one model of an ensemble gives, from one evaluation pass per split.

    ``confidences``: ``[n_forget]`` float64 logit-scaled confidences of the forget images;
    ``margins``: ``{"forget" [n_forget], "retain" [n_retain], "test" [n_test]}`` float64 KLoM
    margins (forget and retain in the scenario's index order, test over the whole test split);
    ``retain_accuracy`` / ``test_accuracy``: fractions; ``seconds``: wall seconds it took to make
    (training, or unlearning without obtaining the Original, and both passes) when it was made,
    ``evaluation_seconds`` of the passes alone; ``trained``: whether making it trained a model (False: a cached reference);
    ``cached``: read from the cache now.
    """

    seed: int
    confidences: np.ndarray
    margins: dict[str, np.ndarray]
    retain_accuracy: float
    test_accuracy: float
    seconds: float
    evaluation_seconds: float
    trained: bool = True
    cached: bool = False


def members_root(home: Path | None = None) -> Path:
    """``<home>/ensembles/members`` (``home``: ``$MUCOMP_HOME``)."""
    return Path(settings.home() if home is None else home) / "ensembles" / "members"


def member_path(spec: EnsembleSpec, seed: int, home: Path | None = None) -> Path:
    """Where member ``seed`` of ``spec`` is cached (under ``home``, default ``$MUCOMP_HOME``)."""
    return members_root(home) / spec.key / f"member-s{int(seed)}.npz"


def check_ensemble(config: ExperimentConfig, n: int, *, allow_costly: bool = False) -> None:
    """Refuse, before any work, an ensemble that can't be made (:class:`EnsembleError`): fewer than
    :data:`MIN_MODELS` models, a config that does not start from the Original, an unknown method,
    hyper-parameters the method refuses, or an architecture whose references take hours to train
    (unless ``allow_costly``)."""
    if isinstance(n, bool) or int(n) != n or n < MIN_MODELS:
        raise EnsembleError(f"an ensemble needs at least {MIN_MODELS} models per side, got N={n} (with 2, F's "
                            "buckets resolve no ε and every method scores 0); 32 resolve ε up to 4")
    if config.base != "original":
        raise EnsembleError(f"an ensemble's models are unlearned from the Original; this config starts from "
                            f"{config.base}. Start from the Original")
    if config.method not in available_methods():
        raise EnsembleError(f"the method {config.method!r} is not registered here; choose one of "
                            f"{', '.join(available_methods())} or load its plugin (MUCOMP_PLUGINS)")
    scenario = Scenario.from_config(config)
    try:
        get_method(config.method).resolve_for(scenario, config.hyper())
    except ValueError as err:
        raise EnsembleError(str(err)) from err
    if scenario.arch not in CHEAP_SHADOW_ARCHS and not allow_costly:
        raise EnsembleError(
            f"the Retrained ensemble trains N reference models locally; with {scenario.arch} each is a full "
            f"training run (hours on a GPU), so mucomp makes ensembles on {', '.join(CHEAP_SHADOW_ARCHS)} only. "
            "From Python, pass allow_costly=True to run it anyway")


# ---------------------------------------------------------------------------------------------
# One member


def member_figures(model: torch.nn.Module, scenario: Scenario) -> dict[str, Any]:
    """The figures of one model (see :class:`EnsembleMember`) from one evaluation pass over the
    train split's forget and retain images and one over the whole test split."""
    forget, retain = np.asarray(scenario.forget_indices), np.asarray(scenario.retain_indices)
    train = evaluate(model, scenario.data.train, np.concatenate([forget, retain]), layers=())
    test = evaluate(model, scenario.data.test, None, layers=())
    n_forget = forget.size
    f_logits, f_labels = train.logits[:n_forget], train.labels[:n_forget]
    r_logits, r_labels = train.logits[n_forget:], train.labels[n_forget:]
    test_retain = test.positions(np.asarray(scenario.test_retain_indices))
    return {
        "confidences": logit_scaled_confidence(f_logits, f_labels),
        "margins": {"forget": margin(f_logits, f_labels), "retain": margin(r_logits, r_labels),
                    "test": margin(test.logits, test.labels)},
        "retain_accuracy": float(np.mean(r_logits.argmax(axis=1) == r_labels)) if r_labels.size else math.nan,
        "test_accuracy": float(np.mean(test.logits[test_retain].argmax(axis=1) == test.labels[test_retain]))
        if test_retain.size else math.nan,
        "evaluation_seconds": train.seconds + test.seconds,
    }


class MemberFileError(ValueError):
    """A member file that is not member ``seed`` of the scenario's ensemble; the message says why."""


def read_member(path: Path, seed: int, scenario: Scenario) -> EnsembleMember:
    """The member cached in ``path``, checked against ``scenario``: its format, its seed, its forget
    indices, the retain and test sizes and every array's length. Raises :class:`MemberFileError`
    naming what differs (or why the file can't be read)."""
    try:
        with np.load(path) as data:
            if int(data["format"]) != MEMBER_FORMAT:
                raise MemberFileError(f"format {int(data['format'])}, not {MEMBER_FORMAT}")
            if int(data["seed"]) != int(seed):
                raise MemberFileError(f"the member of seed {int(data['seed'])}, not {int(seed)}")
            if not np.array_equal(data["forget_indices"], scenario.forget_indices):
                raise MemberFileError("other forget indices than the scenario's")
            sizes = {"forget": np.asarray(scenario.forget_indices).size, "retain": scenario.retain_indices.size,
                     "test": len(scenario.data.test)}
            if int(data["n_retain"]) != sizes["retain"] or int(data["n_test"]) != sizes["test"]:
                raise MemberFileError(f"{int(data['n_retain'])} retain and {int(data['n_test'])} test images, not "
                                      f"{sizes['retain']} and {sizes['test']}")
            arrays = {"confidences": data["confidences"], **{split: data[f"margin_{split}"] for split in SPLITS}}
            for name, array in arrays.items():
                if array.shape != (sizes.get(name, sizes["forget"]),):
                    raise MemberFileError(f"{name} of shape {array.shape}")
            return EnsembleMember(
                int(seed), arrays["confidences"].astype(np.float64),
                {split: arrays[split].astype(np.float64) for split in SPLITS},
                float(data["retain_accuracy"]), float(data["test_accuracy"]), float(data["seconds"]),
                float(data["evaluation_seconds"]), bool(data["trained"]), True)
    except MemberFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise MemberFileError(f"unreadable ({type(err).__name__}: {err})") from err


def _load_member(path: Path, seed: int, scenario: Scenario) -> EnsembleMember | None:
    """A cached member, or None when it is damaged or of other images (then it is made again)."""
    try:
        return read_member(path, seed, scenario)
    except MemberFileError:
        return None


def _save_member(path: Path, member: EnsembleMember, scenario: Scenario) -> None:
    """Write ``member`` atomically (:func:`mucomp.experiment.cache_files.save_npz`)."""
    save_npz(path, format=MEMBER_FORMAT, seed=member.seed, forget_indices=np.asarray(scenario.forget_indices),
             n_retain=scenario.retain_indices.size, n_test=len(scenario.data.test), confidences=member.confidences,
             **{f"margin_{split}": member.margins[split] for split in SPLITS},
             retain_accuracy=member.retain_accuracy, test_accuracy=member.test_accuracy, seconds=member.seconds,
             evaluation_seconds=member.evaluation_seconds, trained=member.trained)


def _member_model(spec: EnsembleSpec, seed: int, device: torch.device, cancel: CancelFn | None,
                  report: Any) -> tuple[torch.nn.Module, bool, float]:
    """The model of member ``seed``, whether making it trained one, and the seconds spent
    obtaining the Original it starts from (trained once for every member and experiment: not
    the member's cost)."""
    config = spec.member_config(seed)
    scenario = Scenario.from_config(config)
    if spec.kind == "retrained":
        report("retrained", 0.0)
        ref = load_reference(scenario, "retrained", source="train", device=device, cancelled=cancel)
        return ref.model, ref.source == "trained", 0.0
    report("original", 0.0)
    # The scenario's Original, from where every experiment of the scenario starts.
    original = load_reference(scenario, "original", device=device, cancelled=cancel)
    model = copy.deepcopy(original.model)
    report("unlearning", 0.2)
    outcome = run_unlearning(config.method, model, scenario, config.hyper(), config.unlearn_seed,
                             device=device, cancelled=cancel)
    if not outcome.ok:
        raise RunStopped(outcome.status, f"the ensemble's model of unlearning seed {seed} did not complete its "
                                          f"unlearning ({outcome.status}): {outcome.message}")
    return model, True, original.seconds


def ensemble_member(
    spec: EnsembleSpec,
    seed: int,
    *,
    device: Any = None,
    cancel: CancelFn | None = None,
    progress: ProgressFn | None = None,
) -> EnsembleMember:
    """Member ``seed`` of ``spec``: from the cache, or made now and cached.

    ``progress(step, fraction)`` while it is made (``"retrained"`` / ``"original"``,
    ``"unlearning"``, ``"evaluating"``). Raises :class:`~mucomp.progress.RunStopped` when the
    member's unlearning does not complete or the user cancels.
    """
    scenario = spec.scenario
    path = member_path(spec, seed)
    waiting_for = f"another process making ensemble member {seed}"
    with locked(path.with_suffix(".lock"), cancelled=cancel, waiting_for=waiting_for):
        if path.exists():
            member = _load_member(path, seed, scenario)
            if member is not None:
                return member
        start = time.perf_counter()
        device = torch.device(device) if device is not None else settings.default_device()

        def report(step: str, done: float) -> None:
            if progress is not None:
                progress(step, done)

        model, trained, setup = _member_model(spec, seed, device, cancel, report)
        report("evaluating", 0.9)
        figures = member_figures(model, scenario)
        confidences, margins = figures.pop("confidences"), figures.pop("margins")
        member = EnsembleMember(int(seed), confidences, margins, **figures,
                                seconds=time.perf_counter() - start - setup, trained=trained)
        write_description(path.parent, spec.description())
        _save_member(path, member, scenario)
        report("evaluating", 1.0)
        return member


def missing_member_seeds(spec: EnsembleSpec, n: int) -> list[int]:
    """The seeds of the first ``n`` members not cached yet (what a parallel submission sends to
    separate workers)."""
    return [s for s in spec.member_seeds(n) if not member_path(spec, s).exists()]


def recorded_seconds(spec: EnsembleSpec, n: int | None = None) -> list[dict]:
    """``{"seed", "seconds", "evaluation_seconds", "trained"}`` of every cached member of ``spec``
    (the first ``n`` seeds when given, else every file), as recorded when each was made."""
    folder = members_root() / spec.key
    if n is not None:
        paths = [member_path(spec, s) for s in spec.member_seeds(n)]
    else:
        paths = sorted(folder.glob("member-s*.npz")) if folder.is_dir() else []
    found = []
    for path in paths:
        try:
            with np.load(path) as data:
                found.append({"seed": int(data["seed"]), "seconds": float(data["seconds"]),
                              "evaluation_seconds": float(data["evaluation_seconds"]),
                              "trained": bool(data["trained"])})
        except (OSError, KeyError, ValueError, TypeError):
            continue  # not made yet, or damaged: made again
    return found


# ---------------------------------------------------------------------------------------------
# Scoring and the records


def _rows(members: list[EnsembleMember], split: str | None = None) -> np.ndarray:
    """``[N, n]``: the members' forget confidences (``split`` None) or margins of ``split``."""
    return np.stack([m.confidences if split is None else m.margins[split] for m in members])


def _klom_values(unlearned: list[EnsembleMember], retrained: list[EnsembleMember]) -> dict[str, np.ndarray]:
    """KLoM per example and split; a KL of normalised histograms is >= 0, so a float sum's
    rounding below 0 is clipped."""
    return {split: np.clip(klom(_rows(unlearned, split), _rows(retrained, split)), 0.0, None) for split in SPLITS}


def _mean(members: list[EnsembleMember], field: str) -> float:
    return float(np.mean([getattr(m, field) for m in members]))


def _record(spec: EnsembleSpec, *, unlearn_seeds: list[int], retrained_seeds: list[int], epsilons: np.ndarray,
            points: np.ndarray, klom_values: dict[str, np.ndarray], **fields: Any) -> dict:
    """A record of :class:`~mucomp.store.ensembles.EnsembleResult`'s layout (JSON types)."""
    config = spec.stored_config()
    return {
        "format": ENSEMBLE_FORMAT, "key": spec.record_key(), "kind": spec.kind, "config": config,
        "group": group_id(config), "train_seed": spec.scenario.train_seed, "method": spec.method or "retrained",
        "n_models": len(unlearn_seeds), "n_retrained": len(retrained_seeds),
        "unlearn_seeds": [int(s) for s in unlearn_seeds], "retrained_seeds": [int(s) for s in retrained_seeds],
        "forget_indices": [int(i) for i in spec.scenario.forget_indices],
        "epsilons": [float(e) for e in epsilons], "points": [float(p) for p in points],
        "klom": {split: [float(v) for v in values] for split, values in klom_values.items()},
        "klom_p95": {split: klom_p95(values) for split, values in klom_values.items()},
        "created": now_iso(), "mucomp_version": __version__,
        **fields,
    }


def unlearned_record(spec: EnsembleSpec, unlearned: list[EnsembleMember], retrained: list[EnsembleMember], *,
                     seconds: float) -> dict:
    """The record of an unlearned ensemble against the Retrained one (the same N on both sides):
    per forget image ε and points, F (their mean), the final score, KLoM per example and split."""
    u_conf, r_conf = _rows(unlearned), _rows(retrained)
    n_models = len(unlearned)
    epsilons = challenge_epsilons(u_conf, r_conf)
    points = example_points(epsilons, n_models)
    quality = float(points.sum() / points.size)  # forget_quality's own sum, without a second ε sweep
    accuracies = {"unlearned_retain": _mean(unlearned, "retain_accuracy"),
                  "retrained_retain": _mean(retrained, "retain_accuracy"),
                  "unlearned_test": _mean(unlearned, "test_accuracy"),
                  "retrained_test": _mean(retrained, "test_accuracy")}
    score = challenge_score(quality, accuracies["unlearned_retain"], accuracies["retrained_retain"],
                            accuracies["unlearned_test"], accuracies["retrained_test"])
    return _record(
        spec, unlearn_seeds=[m.seed for m in unlearned], retrained_seeds=[m.seed for m in retrained],
        epsilons=epsilons, points=points, klom_values=_klom_values(unlearned, retrained),
        forget_quality=quality, score=float(score), accuracies=accuracies,
        confidences={"unlearned": u_conf.tolist(), "retrained": r_conf.tolist()},
        resolution=epsilon_resolution(n_models), self_score=None,
        member_seconds=[m.seconds for m in unlearned], seconds=float(seconds))


def retrained_record(spec: EnsembleSpec, retrained: list[EnsembleMember], *, seconds: float) -> dict:
    """The record of the Retrained ensemble: its accuracies, and its two disjoint halves (the first
    N // 2 members against the next N // 2) scored against each other like a method against the
    Retrained ensemble: ε, points and KLoM per example, and the self-score (F of the halves), the
    noise floor of F at N / 2 models per side (None below 2 models per half)."""
    half = len(retrained) // 2
    first, second = retrained[:half], retrained[half:2 * half]
    epsilons = challenge_epsilons(_rows(first), _rows(second))
    resolved = half >= MIN_MODELS
    points = example_points(epsilons, half) if resolved else np.zeros(epsilons.shape)
    accuracy = {"retain": _mean(retrained, "retain_accuracy"), "test": _mean(retrained, "test_accuracy")}
    seeds = [m.seed for m in retrained]
    return _record(
        spec, unlearn_seeds=seeds, retrained_seeds=seeds, epsilons=epsilons, points=points,
        klom_values=_klom_values(first, second), forget_quality=None, score=None,
        accuracies={f"{side}_{split}": accuracy[split] for side in ("unlearned", "retrained")
                    for split in ("retain", "test")},
        confidences={"unlearned": [], "retrained": _rows(retrained).tolist()},
        resolution=epsilon_resolution(half) if resolved else {"max_epsilon": 0.0, "buckets": 0},
        self_score=float(points.sum() / points.size) if resolved else None,
        member_seconds=[m.seconds for m in retrained], seconds=float(seconds))


def save_records(records: dict[str, EnsembleResult], home: Path | None = None) -> dict[str, Path | None]:
    """Store both records under ``home`` (default ``$MUCOMP_HOME``); the Retrained one only when no
    larger Retrained ensemble of the scenario is stored (another method may have asked for more
    models). Returns the paths (None: kept)."""
    from mucomp.store.ensembles import EnsembleFileError, read_ensemble_file, results_dir

    home = Path(settings.home() if home is None else home)
    paths: dict[str, Path | None] = {"unlearned": save_ensemble_result(records["unlearned"], home)}
    retrained = records["retrained"]
    lock = home / "ensembles" / ".locks" / f"{retrained.key}.lock"
    with locked(lock, waiting_for="another ensemble job storing the Retrained ensemble"):
        target = results_dir(home) / f"{retrained.key}.json"
        try:
            stored = read_ensemble_file(target) if target.exists() else None
        except EnsembleFileError:
            stored = None  # unreadable: replaced
        keep = stored is not None and stored.n_models > retrained.n_models
        paths["retrained"] = None if keep else save_ensemble_result(retrained, home)
    return paths


def run_ensemble(
    config: ExperimentConfig,
    n: int,
    *,
    device: Any = None,
    cancel: CancelFn | None = None,
    progress: ProgressFn | None = None,
    allow_costly: bool = False,
    started_at: float | None = None,
    save: bool = True,
) -> dict[str, EnsembleResult]:
    """Make (or load) the ``n`` Retrained and ``n`` unlearned members of ``config`` and score them.

    ``config``: the method configuration (from the Original; its unlearning seed is replaced by the
    members' 0..n-1; its training seed is the Original's). ``progress(done, total, kind=...,
    seed=..., step=...)`` per member (``total`` = 2 n). ``started_at``: the ``time.time()`` the
    job was submitted (its record's ``seconds`` then counts from there: members made by other jobs
    side by side). ``save``: store both records (:func:`save_records`).

    Returns ``{"unlearned": EnsembleResult, "retrained": EnsembleResult}``. Raises
    :class:`EnsembleError` before any work for an ensemble that can't be made,
    :class:`~mucomp.progress.RunStopped` when cancelled or a member's unlearning did not complete.
    """
    check_ensemble(config, n, allow_costly=allow_costly)
    clock = time.perf_counter()
    specs = {kind: EnsembleSpec(config, kind) for kind in ("retrained", "unlearned")}
    plan = [(kind, seed) for kind in specs for seed in specs[kind].member_seeds(n)]
    members: dict[str, list[EnsembleMember]] = {"retrained": [], "unlearned": []}
    for position, (kind, seed) in enumerate(plan):
        stop_if_cancelled(cancel, "while making the ensembles' models")

        def member_progress(step: str, done: float, position: int = position, kind: str = kind,
                            seed: int = seed) -> None:
            if progress is not None:
                progress(position + done, len(plan), kind=kind, seed=seed, step=step)

        member = ensemble_member(specs[kind], seed, device=device, cancel=cancel, progress=member_progress)
        members[kind].append(member)
        if progress is not None:
            progress(position + 1, len(plan), kind=kind, seed=seed, cached=member.cached)
    stop_if_cancelled(cancel, "before scoring the ensembles")
    seconds = time.time() - started_at if started_at is not None else time.perf_counter() - clock
    records = {
        "unlearned": EnsembleResult.model_validate(
            unlearned_record(specs["unlearned"], members["unlearned"], members["retrained"], seconds=seconds)),
        "retrained": EnsembleResult.model_validate(
            retrained_record(specs["retrained"], members["retrained"], seconds=seconds)),
    }
    if save:
        save_records(records)
    return records
