"""What defines a scenario and an experiment, before any data is loaded (torch-free).

- :class:`ScenarioDefinition`: a data set, an architecture, the images to forget and the two seeds
  of a scenario (the **training seed**, which trains the Original and Retrained models, and the
  **data seed**, which draws a random forget set and the fixed subsets), validated, with its key.
  :class:`mucomp.data.Scenario` adds the cuts of the loaded data to it.
- :class:`ExperimentConfig`: a scenario plus one run (method, base, hyper-parameters and the
  **unlearning seed**, which drives batch order, random labels and tie-breaks).
- :func:`plan_runs`: a grid of hyper-parameters times training and unlearning seeds as configs,
  refused before any work when it makes more runs than the limit (one rule for the CLI, the app
  and every backend).
- :func:`base_problem`: whether a stored experiment may be the starting point of a run (one rule
  for the runner, the CLI, the app and Ray).
- :func:`reference_experiment_id`: the store id of a scenario's Original or Retrained model.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, asdict, dataclass, field
from typing import Any

from mucomp.forget_sets import ForgetSet, check_sizes, index_set, parse_forget, stored_forget_text
from mucomp.seeds import validate_seed
from mucomp.specs import DATASETS, DatasetSpec, get_spec

#: The fields of a scenario, in the order :class:`ScenarioDefinition` takes them.
SCENARIO_FIELDS = ("dataset", "forget_class", "train_seed", "forget", "data_seed", "arch")


@dataclass(frozen=True)
class ScenarioDefinition:
    """A data set, a model architecture, the images to forget and the seeds of the references.

    - ``forget``: a forget set (:mod:`mucomp.forget_sets`: ``class:3``, ``classes:3,5``,
      ``random:10%``, ``random:100``, ``indices:FILE``); ``forget_class`` is the short form of
      ``class:K`` (an index or a class name), so ``Scenario("digits", 3)`` works.
    - ``train_seed``: trains the Original and Retrained models.
    - ``data_seed``: draws a random forget set and the fixed subsets (embedding, CKA, MIA).
    - ``arch``: the architecture; None means the data set's default (:attr:`DatasetSpec.arch`).
    - ``seed``: the older name of ``train_seed``, accepted as a keyword.

    The unlearning seed is not part of the scenario: it belongs to each experiment.
    """

    dataset: str = "digits"
    forget_class: int | str | None = None
    train_seed: int = 0
    forget: str | ForgetSet | None = None
    data_seed: int = 0
    arch: str | None = None
    seed: InitVar[int | None] = None

    def __post_init__(self, seed: int | None = None) -> None:
        spec = get_spec(self.dataset)
        if self.forget is None:
            forget = ForgetSet("class", (spec.class_index(0 if self.forget_class is None else self.forget_class),))
        else:
            forget = parse_forget(self.forget, spec)
            if self.forget_class is not None and (
                not forget.by_class or forget.classes != (spec.class_index(self.forget_class),)
            ):
                raise ValueError(f"forget_class {self.forget_class!r} contradicts forget set {forget.text!r}; give one")
            count = forget.images_of(spec.train_images)
            if count is not None and spec.train_images:  # too few to evaluate: refused before anything loads
                check_sizes(forget, count, spec.train_images)
        object.__setattr__(self, "forget", forget)
        object.__setattr__(self, "forget_class", forget.classes[0] if forget.kind == "class" else None)
        object.__setattr__(self, "train_seed", validate_seed(self.train_seed if seed is None else seed))
        object.__setattr__(self, "data_seed", validate_seed(self.data_seed))
        arch = spec.arch if self.arch is None else self.arch
        if arch not in spec.archs:
            raise ValueError(f"architecture {arch!r} is not available for {self.dataset}; choose one of {', '.join(spec.archs)}")
        object.__setattr__(self, "arch", arch)

    def __getstate__(self) -> dict:
        # Only the fields travel (to worker processes, Ray tasks): never cached data.
        return {name: getattr(self, name) for name in SCENARIO_FIELDS}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | ExperimentConfig) -> ScenarioDefinition:
        """The scenario of a stored config dict (current schema) or of an :class:`ExperimentConfig`."""
        if isinstance(config, ExperimentConfig):
            config = config.to_dict()
        forget = config.get("forget")
        if isinstance(forget, str) and forget.startswith("indices:"):
            forget = index_set(config.get("forget_indices") or [])
        return cls(config["dataset"], None, config.get("train_seed", 0),
                   forget if forget is not None else stored_forget_text(config),
                   config.get("data_seed", 0), config.get("arch"))

    def definition(self) -> ScenarioDefinition:
        """The bare definition (no loaded data): what travels and what equality compares."""
        return ScenarioDefinition(self.dataset, None, self.train_seed, self.forget, self.data_seed, self.arch)

    def config_fields(self) -> dict:
        """The scenario's part of a stored config: ``dataset``, ``forget`` (text), ``forget_class``
        (class sets of one class, else None), ``train_seed``, ``data_seed``, ``arch`` and, for
        index sets, ``forget_indices``."""
        fields = {"dataset": self.dataset, "forget": self.forget_set.text, "forget_class": self.forget_class,
                  "train_seed": self.train_seed, "data_seed": self.data_seed, "arch": self.arch}
        if self.forget_set.kind == "indices":
            fields["forget_indices"] = list(self.forget_set.indices)
        return fields

    @property
    def spec(self) -> DatasetSpec:
        return DATASETS[self.dataset]

    @property
    def forget_set(self) -> ForgetSet:
        return self.forget  # type: ignore[return-value]  # always a ForgetSet after __post_init__

    @property
    def by_class(self) -> bool:
        """Whether the forget set is whole classes (class metrics) or images (random / indices)."""
        return self.forget_set.by_class

    @property
    def forget_classes(self) -> tuple[int, ...]:
        """The classes forgotten whole (class sets); empty for random and index sets."""
        return self.forget_set.classes

    @property
    def forget_class_name(self) -> str:
        """The forget set in words: a class name, several names, or the random / index set."""
        names = self.spec.class_names
        if self.by_class:
            return ", ".join(names[k] for k in self.forget_classes)
        return self.forget_set.describe(self.spec)

    @property
    def retain_classes(self) -> list[int]:
        return [k for k in range(self.spec.num_classes) if k not in self.forget_classes]

    @property
    def key(self) -> str:
        """A short stable text id, e.g. ``digits-c3-s0`` (``-d1`` for a data seed, the arch when
        not the default)."""
        arch = "" if self.arch == self.spec.arch else f"-{self.arch.replace('_', '')}"
        data = f"-d{self.data_seed}" if self.data_seed else ""
        return f"{self.dataset}{arch}-{self.forget_set.key}-s{self.train_seed}{data}"

    def describe(self) -> str:
        """The scenario in words for messages: data set, forget set, seeds and architecture."""
        return (f"{self.dataset} / forget {self.forget_set.text} / training seed {self.train_seed} / "
                f"data seed {self.data_seed} / {self.arch}")


def _renamed(old: str, new: str) -> property:
    """A read of an attribute that was renamed: a clear AttributeError, never the init default."""

    def read(self: object) -> None:
        raise AttributeError(f"{type(self).__name__}.{old} was renamed; read .{new}")

    return property(read)


# ``seed`` named the training seed of a scenario (and the unlearning seed of a run): still
# accepted as a keyword (an InitVar), never read back.
ScenarioDefinition.seed = _renamed("seed", "train_seed")  # type: ignore[assignment]


def reference_experiment_id(scenario: ScenarioDefinition, kind: str, checkpoint_id: str) -> str:
    """The store id of a scenario's reference: kind, the scenario key and a checkpoint hash
    (``retrained-digits-c3-s0-<hash>``).

    Built only from validated fields (never from user text), so it is a safe path component; a
    new checkpoint or recipe gives a new id instead of overwriting the old figures.
    """
    digest = hashlib.sha256(checkpoint_id.encode()).hexdigest()[:6]
    return f"{kind}-{scenario.key.replace('_', '-').replace('+', '-')}-{digest}"


# ---------------------------------------------------------------------------------------------
# Experiments


@dataclass
class ExperimentConfig:
    """Everything that defines one experiment.

    The scenario part: ``dataset``, the forget set (``forget``; ``forget_class`` is the short form
    of ``class:K``), ``train_seed``, ``data_seed`` and ``arch`` (see :class:`ScenarioDefinition`).
    The run's part: ``unlearn_seed`` (batch order, random labels, masks' ties), ``method``,
    ``base`` (``"original"`` or the id of a stored experiment to start from), ``epochs``, ``lr``
    and ``batch_size`` (None: the method's defaults for the data set) and ``params`` (the method's
    own hyper-parameters). After construction the scenario fields are normalised (``forget`` is the canonical text, an
    index set's indices are in ``forget_indices``).
    """

    dataset: str = "digits"
    forget_class: int | str | None = None
    unlearn_seed: int = 0
    method: str = "ga"
    base: str = "original"
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    params: dict = field(default_factory=dict)
    forget: str | None = None
    train_seed: int = 0
    data_seed: int = 0
    arch: str | None = None
    forget_indices: list[int] | None = None

    def __post_init__(self) -> None:
        self.unlearn_seed = validate_seed(self.unlearn_seed)
        scenario = self.scenario_definition
        self.forget, self.forget_class, self.arch = scenario.forget_set.text, scenario.forget_class, scenario.arch
        self.train_seed, self.data_seed = scenario.train_seed, scenario.data_seed
        self.forget_indices = list(scenario.forget_set.indices) if scenario.forget_set.kind == "indices" else None

    @classmethod
    def for_scenario(cls, scenario: ScenarioDefinition, **run: Any) -> ExperimentConfig:
        """A config of ``scenario`` with the run's fields ``run`` (``unlearn_seed``, ``method``, ...)."""
        fields = scenario.config_fields()
        return cls(**{k: v for k, v in fields.items() if k != "forget_class"}, **run)

    @property
    def scenario_definition(self) -> ScenarioDefinition:
        """The scenario part, validated (no data loaded)."""
        forget: str | ForgetSet | None = self.forget
        if self.forget_indices is not None and (forget is None or str(forget).startswith("indices:")):
            forget = index_set(self.forget_indices)
        return ScenarioDefinition(self.dataset, self.forget_class if forget is None else None, self.train_seed,
                                  forget, self.data_seed, self.arch)

    @property
    def scenario_key(self) -> str:
        return self.scenario_definition.key

    def hyper(self) -> dict:
        """User-set hyper-parameters (common ones and the method's own), unset ones left out."""
        common = {k: getattr(self, k) for k in GRID_KEYS if getattr(self, k) is not None}
        return {**common, **self.params}

    def to_dict(self) -> dict:
        data = asdict(self)
        if data["forget_indices"] is None:
            del data["forget_indices"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """A config from its stored dict (``to_dict``; a stored ``seed`` is the unlearning seed of
        results stored before schema version 4)."""
        data = dict(data)
        if "seed" in data:
            data.setdefault("unlearn_seed", data.pop("seed"))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
        if data.get("forget") is not None:
            data["forget_class"] = None  # the forget set says it; the stored class is its echo
        return cls(**data)


# ---------------------------------------------------------------------------------------------
# Grids and run limits

#: The hyper-parameters every method has; any other grid key is a method parameter.
GRID_KEYS = ("epochs", "lr", "batch_size")
#: At most this many runs in one submission unless the caller raises it (``--max-runs``).
MAX_RUNS = 256
#: At most this many runs one click of the app's Build page queues (every visitor shares the queue).
MAX_APP_RUNS = 24


class SubmissionError(ValueError):
    """A submission refused before any work (too many runs, a full queue, an unknown request)."""


class TooManyRunsError(SubmissionError):
    """More runs in one submission than the limit allows."""


def check_run_count(count: int, max_runs: int | None = MAX_RUNS, *, what: str = "this submission",
                    raise_with: str = "--max-runs N on the command line") -> None:
    """Refuse ``count`` runs when above ``max_runs`` (``None``: no limit), saying how to make fewer
    and (``raise_with``) how to raise the limit, when it can be raised."""
    if max_runs is not None and count > max_runs:
        how = f", or raise the limit ({raise_with})" if raise_with else ""
        raise TooManyRunsError(
            f"{what} makes {count:,} runs; at most {max_runs} can be submitted at once: narrow the grid or use "
            f"fewer seeds{how}"
        )


def grid_size(grid: Mapping[str, Sequence]) -> int:
    """How many runs ``grid`` makes (the product of its value lists' lengths), without building
    any config. ValueError when a value list is not a non-empty list or tuple."""
    n = 1
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"grid values for {key!r} must be a non-empty list")
        n *= len(values)
    return n


def expand_grid(config: ExperimentConfig, grid: Mapping[str, Sequence],
                max_runs: int | None = MAX_RUNS) -> list[ExperimentConfig]:
    """One config per combination of the ``grid`` values (keys: epochs, lr, batch_size or a
    method parameter), in a stable order (the last key varies fastest). Raises
    :class:`TooManyRunsError` before building anything when it makes more than ``max_runs``."""
    return plan_runs(config, grid, max_runs=max_runs)


def plan_runs(
    config: ExperimentConfig,
    grid: Mapping[str, Sequence] | None = None,
    *,
    train_seeds: Sequence[int] | None = None,
    unlearn_seeds: Sequence[int] | None = None,
    max_runs: int | None = MAX_RUNS,
    raise_with: str = "--max-runs N on the command line",
) -> list[ExperimentConfig]:
    """Every run of ``config`` over ``grid`` x training seeds x unlearning seeds (defaults: the
    config's own seeds), in order: training seed outermost (a worker prepares each scenario once),
    then the grid (last key fastest), then the unlearning seed.

    Values or seeds that spell one run twice make it once. Raises :class:`TooManyRunsError` before
    building anything when the runs are more than ``max_runs`` (``None``: no limit), ValueError for
    an empty value list.
    """
    grid = dict(grid or {})
    train_seeds = [config.train_seed] if train_seeds is None else [validate_seed(s) for s in train_seeds]
    unlearn_seeds = [config.unlearn_seed] if unlearn_seeds is None else [validate_seed(s) for s in unlearn_seeds]
    if not train_seeds or not unlearn_seeds:
        raise ValueError("give at least one training seed and one unlearning seed")
    points = grid_size(grid)
    seeds = len(train_seeds) * len(unlearn_seeds)
    what = "this grid" if seeds == 1 else f"{points:,} grid point(s) x {seeds:,} seed pair(s)"
    check_run_count(points * seeds, max_runs, what=what, raise_with=raise_with)
    keys = list(grid)
    variants = []
    for combination in itertools.product(*(grid[k] for k in keys)):
        updated = copy.deepcopy(config)
        for key, value in zip(keys, combination, strict=True):
            if key in GRID_KEYS:
                setattr(updated, key, value)
            else:
                updated.params[key] = value
        variants.append(updated)
    runs = [dataclasses.replace(item, train_seed=train_seed, unlearn_seed=seed)
            for train_seed in train_seeds for item in variants for seed in unlearn_seeds]
    return _distinct(runs)


def _distinct(runs: list[ExperimentConfig]) -> list[ExperimentConfig]:
    """``runs`` without repeats, first kept: ``lr=0.05,5e-2`` or ``--seeds 1,1`` spell one run
    twice, and a repeat would only store the same replicate again."""
    seen: set[str] = set()
    out = []
    for run in runs:
        identity = json.dumps(run.to_dict(), sort_keys=True, default=str)
        if identity not in seen:
            seen.add(identity)
            out.append(run)
    return out


# ---------------------------------------------------------------------------------------------
# The base of a run


def base_problem(config: ExperimentConfig, base_id: str, base_config: Mapping[str, Any]) -> str | None:
    """Why stored experiment ``base_id`` (its stored ``base_config``) can't be the starting point
    of ``config``, or None when it can.

    A base must belong to the run's scenario: the same data set, architecture, forget set (for a
    random set the same data seed, i.e. the same drawn images) and training seed (the run is
    compared with the references of that seed). Every path that starts a run from a stored
    experiment asks this one function.
    """
    try:
        found = ScenarioDefinition.from_config(base_config)
    except (KeyError, TypeError, ValueError) as err:
        return f"base experiment {base_id} has no readable scenario ({err}); pick another base"
    wanted = config.scenario_definition
    if found.key != wanted.key or found.forget_set != wanted.forget_set:
        return (f"base experiment {base_id} belongs to scenario {found.key} ({found.describe()}), not to this "
                f"run's {wanted.key} ({wanted.describe()}); pick a base of the same scenario "
                f"(`mucomp list --dataset {wanted.dataset} --forget {wanted.forget_set.text}`)")
    return None
