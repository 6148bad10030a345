"""The method registry: ``@register`` and what it records (:class:`MethodInfo`).

A method is a function ``fn(ctx: UnlearnContext) -> None`` that updates ``ctx.model`` in place,
registered under a short name with :func:`register`. Built-in methods and a user's own methods
are registered the same way; :mod:`mucomp.methods.plugins` finds the user's and lists both alike
(:func:`~mucomp.methods.plugins.available_methods`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mucomp.catalogue import BUILTIN_METHOD_LABELS
from mucomp.methods.params import COMMON_NAMES, COMMON_PARAMS, Param
from mucomp.models import ARCHITECTURES, arch_info
from mucomp.specs import DATASETS
from mucomp.training import OPTIMIZERS

if TYPE_CHECKING:
    from mucomp.config import ExperimentConfig
    from mucomp.methods.context import UnlearnContext

MethodFn = Callable[["UnlearnContext"], None]

ALL_DATASETS = "*"
#: Suffix of a defaults key for image-wise forgetting (a random or index forget set) on a data set,
#: e.g. ``"cifar10:random"``: the published random-forgetting recipes differ from the class-wise ones.
IMAGEWISE_SUFFIX = ":random"
#: Architecture families a method's ``optimizer`` may name (besides architectures and ``"*"``).
FAMILIES = ("cnn", "vit")
#: The optimiser of a method that declares none, per architecture family: SGD (momentum 0.9,
#: weight decay 5e-4) for the CNNs and ResNets; AdamW (weight decay 0.01) for the vision
#: transformers, as their published checkpoints were trained (Yurim0507/vit-base-16-cifar10-
#: unlearning card: AdamW, lr 5e-5, weight decay 0.01). Plain SGD at the ResNet learning rates
#: sends a ViT's loss to NaN or wipes every class within an epoch.
FAMILY_OPTIMIZERS = {"cnn": "sgd", "vit": "adamw"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def imagewise(forget_kind: str | None) -> bool:
    """Whether a forget set of ``forget_kind`` (:attr:`mucomp.forget_sets.ForgetSet.kind`) forgets
    images rather than classes."""
    return forget_kind in ("random", "indices")


def _table_keys(dataset: str, arch: str | None, forget_kind: str | None) -> list[str]:
    """The defaults keys that apply, weakest first: ``"*"``, the data set, its image-wise key
    (for random and index forget sets), the architecture."""
    keys = [ALL_DATASETS, dataset]
    if imagewise(forget_kind):
        keys.append(dataset + IMAGEWISE_SUFFIX)
    if arch is not None:
        keys.append(arch)
    return keys


def _known_table_key(key: str) -> bool:
    base = key.removesuffix(IMAGEWISE_SUFFIX)
    if key != base:
        return base in DATASETS
    return key == ALL_DATASETS or key in DATASETS or key in ARCHITECTURES


@dataclass
class MethodInfo:
    """A registered method: its function, its declared hyper-parameters and their defaults.

    ``params`` holds every hyper-parameter, the common ones (:data:`COMMON_PARAMS`) first.
    ``defaults`` maps a data-set name, an architecture name (which overrides its data set's), or
    ``"*"`` for any data set, to default values. ``optimizers`` maps an architecture, a family
    (:data:`FAMILIES`) or ``"*"`` to an optimiser name (:data:`mucomp.training.OPTIMIZERS`); see
    :meth:`optimizer_for`. ``source`` is ``"builtin"``, the plugin file's path, ``"entry point
    NAME (VALUE)"``, or ``"module NAME"`` for a method registered by a plain import.
    """

    name: str
    label: str
    fn: MethodFn
    params: dict[str, Param]
    defaults: dict[str, dict[str, Any]]
    description: str = ""
    source: str = "builtin"
    default_sources: dict[str, dict[str, str]] = field(default_factory=dict)
    optimizers: dict[str, str] = field(default_factory=dict)
    uses: tuple[str, ...] = COMMON_NAMES

    def optimizer_for(self, arch: str | None) -> str:
        """The optimiser the method's run uses on ``arch``: the method's declaration for the
        architecture, else for its family, else its ``"*"``, else the family's default
        (:data:`FAMILY_OPTIMIZERS`; ``arch=None``: the CNN default)."""
        family = arch_info(arch).family if arch is not None else "cnn"
        for key in (arch, family, ALL_DATASETS):
            if key is not None and key in self.optimizers:
                return self.optimizers[key]
        return FAMILY_OPTIMIZERS[family]

    @property
    def module(self) -> str:
        return getattr(self.fn, "__module__", "") or ""

    @property
    def builtin(self) -> bool:
        return self.source == "builtin"

    @property
    def common_params(self) -> list[Param]:
        """The common hyper-parameters (:data:`COMMON_PARAMS`) the method uses (:attr:`uses`), in
        their usual order: the ones a form shows and a grid may vary."""
        return [self.params[name] for name in COMMON_NAMES if name in self.uses]

    @property
    def unused(self) -> tuple[str, ...]:
        """The common hyper-parameters the method ignores (e.g. SSD's ``lr``)."""
        return tuple(name for name in COMMON_NAMES if name not in self.uses)

    def check_used(self, names: Iterable[str]) -> None:
        """Refuse values for common hyper-parameters the method ignores: ValueError naming them and
        what the method uses (a grid over one would make identical runs under different names)."""
        ignored = [name for name in names if name in self.unused]
        if ignored:
            raise ValueError(
                f"method {self.name!r} does not use {', '.join(ignored)} (its runs ignore "
                f"{'it' if len(ignored) == 1 else 'them'}); drop {'it' if len(ignored) == 1 else 'them'}. "
                f"Of the common hyper-parameters it uses {', '.join(self.uses) or 'none'}"
            )

    @property
    def own_params(self) -> list[Param]:
        """The method's own hyper-parameters (not the common ones)."""
        return [p for name, p in self.params.items() if name not in COMMON_NAMES]

    def defaults_for(self, dataset: str, arch: str | None = None, forget_kind: str | None = None) -> dict[str, Any]:
        """The default value of every hyper-parameter on ``dataset`` with ``arch`` (default: the
        data set's own architecture) for a forget set of ``forget_kind`` (default: class-wise);
        ``None`` where the method gives none, so the user must set it. An architecture's defaults
        override the data set's image-wise ones (``"cifar10:random"``, for random and index
        forget sets), which override the data set's, which override ``"*"``."""
        values = {name: param.default for name, param in self.params.items()}
        for key in _table_keys(dataset, arch, forget_kind):
            values.update(self.defaults.get(key, {}))
        return values

    def resolve(self, dataset: str, hyper: Mapping[str, Any] | None = None, arch: str | None = None,
                forget_kind: str | None = None) -> dict[str, Any]:
        """The hyper-parameters a run uses: the defaults for ``dataset`` (and ``arch`` and
        ``forget_kind``, see :meth:`defaults_for`) updated with ``hyper``, every value validated.
        ValueError names the parameter and what is allowed."""
        hyper = dict(hyper or {})
        unknown = sorted(set(hyper) - set(self.params))
        if unknown:
            raise ValueError(
                f"method {self.name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
                f"it takes {', '.join(self.params)}"
            )
        values = self.defaults_for(dataset, arch, forget_kind)
        values.update(hyper)
        missing = [name for name, value in values.items() if value is None]
        if missing:
            where = dataset if arch is None else f"{dataset} with {arch}"
            raise ValueError(
                f"method {self.name!r} has no default for {', '.join(missing)} on {where}; set "
                + ", ".join(f"{name} ({self.params[name].allowed()})" for name in missing)
            )
        return {name: self.params[name].validate(values[name]) for name in self.params}

    def resolve_for(self, scenario, hyper: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """:meth:`resolve` on a :class:`mucomp.data.Scenario`: its data set, architecture and
        forget-set kind."""
        return self.resolve(scenario.dataset, hyper, scenario.arch, scenario.forget_set.kind)

    def stored_config(self, config: ExperimentConfig) -> dict:
        """``config`` as a run of it stores it: its dict with every hyper-parameter resolved for its
        scenario (:meth:`resolve_for`, defaults filled in; the method's own in ``params``), so two
        configs that run the same thing compare equal. ValueError as :meth:`resolve`."""
        hyper = self.resolve_for(config.scenario_definition, config.hyper())
        stored = config.to_dict()
        stored.update({name: value for name, value in hyper.items() if name in COMMON_NAMES})
        stored["params"] = {name: value for name, value in hyper.items() if name not in COMMON_NAMES}
        return stored

    def sources_for(self, dataset: str, arch: str | None = None, forget_kind: str | None = None) -> dict[str, str]:
        """Where each default on ``dataset`` (with ``arch``, for ``forget_kind``) comes from
        (parameter -> citation; ``"optimizer"`` -> the citation of the optimiser, where given);
        parameters without a cited source are left out."""
        out = {}
        tables = [self.default_sources.get(key, {}) for key in _table_keys(dataset, arch, forget_kind)]
        for table in tables:
            fallback = table.get(ALL_DATASETS)
            for name in (*self.params, "optimizer"):
                if name in table or (fallback is not None and name != "optimizer"):
                    out[name] = table.get(name, fallback)
        return out

    def as_dict(self, dataset: str | None = None, arch: str | None = None, forget_kind: str | None = None) -> dict:
        """A JSON-ready description; with ``dataset`` (and ``arch``, ``forget_kind``), its defaults
        there, their sources and the optimiser a run uses."""
        out = {
            "name": self.name, "label": self.label, "description": self.description,
            "source": self.source, "params": [p.as_dict() for p in self.params.values()],
            "uses": list(self.uses), "unused": list(self.unused),
        }
        if dataset is not None:
            out["defaults"] = self.defaults_for(dataset, arch, forget_kind)
            out["default_sources"] = self.sources_for(dataset, arch, forget_kind)
            out["optimizer"] = self.optimizer_for(arch or DATASETS[dataset].arch)
        return out


@dataclass(frozen=True)
class PluginError:
    """A plugin that could not be loaded: where it came from and what went wrong."""

    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass
class _State:
    methods: dict[str, MethodInfo] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)
    loaded_env: str | None = None
    entry_points_loaded: bool = False
    source: str | None = None  # who is registering right now (None: a plain import)
    added: list[str] = field(default_factory=list)  # names registered by the plugin being loaded


_STATE = _State()
_LOCK = threading.RLock()


def _normalise_params(params: Mapping[str, Any] | list | tuple | None) -> dict[str, Param]:
    """``params`` as ``{name: Param}``: accepts Params, or dicts of Param fields, in a list or a
    mapping keyed by name. The common parameters come first; a method may redeclare one of them
    (e.g. a narrower range), keeping its place."""
    declared: dict[str, Param] = {}
    items = params.items() if isinstance(params, Mapping) else ((None, p) for p in (params or ()))
    for key, spec in items:
        if isinstance(spec, dict):
            spec = Param(**{"name": key, **spec}) if key is not None else Param(**spec)
        if not isinstance(spec, Param):
            raise TypeError(f"params must hold Param objects or dicts of Param fields, got {spec!r}")
        if key is not None and key != spec.name:
            raise ValueError(f"params key {key!r} differs from the Param's name {spec.name!r}")
        declared[spec.name] = spec
    out = {p.name: declared.pop(p.name, p) for p in COMMON_PARAMS}
    out.update(declared)
    return out


def _normalise_defaults(defaults: Mapping[str, Any] | None, params: dict[str, Param], name: str) -> dict[str, dict]:
    """``defaults`` as ``{dataset, architecture or "*": {param: value}}``, every value validated.

    Either flat (``{"lr": 0.01, ...}``: any data set) or per data set and architecture
    (``{"digits": {...}, "cifar10": {...}, "vit_digits": {...}, "*": {...}}``)."""
    defaults = dict(defaults or {})
    per_dataset = bool(defaults) and all(isinstance(v, Mapping) for v in defaults.values())
    table = defaults if per_dataset else {ALL_DATASETS: defaults}
    out: dict[str, dict] = {}
    for dataset, values in table.items():
        if not _known_table_key(dataset):
            raise ValueError(
                f"method {name!r}: defaults for unknown data set {dataset!r} (nor an architecture); use "
                f"{', '.join(DATASETS)} (or e.g. 'cifar10{IMAGEWISE_SUFFIX}' for random and index forget sets), "
                f"an architecture ({', '.join(ARCHITECTURES)}) or '*'"
            )
        unknown = sorted(set(values) - set(params))
        if unknown:
            raise ValueError(f"method {name!r}: defaults name undeclared parameters {unknown}; declare them in params")
        try:
            out[dataset] = {key: params[key].validate(value) for key, value in values.items()}
        except ValueError as err:
            raise ValueError(f"method {name!r}, default on {dataset}: {err}") from None
    return out


def _normalise_sources(sources: Mapping[str, Any] | None, params: dict[str, Param], name: str) -> dict[str, dict]:
    """``default_sources`` as ``{dataset or "*": {param or "*": citation}}``.

    A data set's value is one citation for all its defaults, or a mapping from parameter names
    (``"*"``: every other parameter) to citations."""
    out: dict[str, dict] = {}
    for dataset, value in dict(sources or {}).items():
        if not _known_table_key(dataset):
            raise ValueError(f"method {name!r}: default_sources for unknown data set {dataset!r} (nor an architecture)")
        table = {ALL_DATASETS: value} if isinstance(value, str) else dict(value)
        unknown = sorted(set(table) - set(params) - {ALL_DATASETS, "optimizer"})
        if unknown or not all(isinstance(v, str) and v for v in table.values()):
            raise ValueError(
                f"method {name!r}: default_sources[{dataset!r}] must map declared parameters (or '*') "
                f"to non-empty citations{'; unknown: ' + ', '.join(unknown) if unknown else ''}"
            )
        out[dataset] = table
    return out


def _normalise_optimizers(optimizer: str | Mapping[str, str] | None, name: str) -> dict[str, str]:
    """``optimizer`` as ``{architecture, family or "*": optimiser name}``, every entry checked."""
    if optimizer is None:
        return {}
    table = {ALL_DATASETS: optimizer} if isinstance(optimizer, str) else dict(optimizer)
    for key, value in table.items():
        if key != ALL_DATASETS and key not in FAMILIES and key not in ARCHITECTURES:
            raise ValueError(
                f"method {name!r}: optimizer for unknown architecture {key!r}; use an architecture "
                f"({', '.join(ARCHITECTURES)}), a family ({', '.join(FAMILIES)}) or '*'"
            )
        if value not in OPTIMIZERS:
            raise ValueError(f"method {name!r}: unknown optimizer {value!r} for {key}; use one of {', '.join(OPTIMIZERS)}")
    return table


def _normalise_uses(uses: Iterable[str] | None, name: str) -> tuple[str, ...]:
    """``uses`` as the common hyper-parameters' names in their usual order (default: all of them)."""
    if uses is None:
        return COMMON_NAMES
    if isinstance(uses, str):
        uses = (uses,)
    unknown = sorted(set(uses) - set(COMMON_NAMES))
    if unknown:
        raise ValueError(f"method {name!r}: uses names {unknown}, which are not common hyper-parameters; "
                         f"name some of {', '.join(COMMON_NAMES)} (a method's own parameters go in params)")
    return tuple(p for p in COMMON_NAMES if p in set(uses))


def register(
    name: str,
    *,
    label: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | list | tuple | None = None,
    description: str | None = None,
    default_sources: Mapping[str, Any] | None = None,
    optimizer: str | Mapping[str, str] | None = None,
    uses: Iterable[str] | None = None,
) -> Callable[[MethodFn], MethodFn]:
    """Register ``fn(ctx: UnlearnContext) -> None`` as the unlearning method ``name``.

    Parameters
    ----------
    name:
        Short key, lower case letters, digits and ``_`` (``"my_method"``).
    label:
        What the app shows (default: ``name``).
    defaults:
        Default hyper-parameters, flat (any data set) or per data set:
        ``{"digits": {"epochs": 5, "lr": 0.01, "batch_size": 32}, "*": {...}}``. Every method
        has ``epochs``, ``lr`` and ``batch_size``; give them defaults, or the user must set them.
        A key ``"DATASET:random"`` holds what differs for random and index forget sets on that
        data set; an architecture's key overrides both.
    params:
        The method's own hyper-parameters: :class:`Param` objects (or dicts of their fields),
        in a list or keyed by name. They become controls in the app.
    description:
        One line saying what the method does (default: the first line of its docstring).
    default_sources:
        Where the defaults come from, per data set or architecture (or ``"*"``): one citation for
        all of them, or ``{param or "*" or "optimizer": citation}``; ``mucomp methods`` lists
        them beside the values.
    optimizer:
        The optimiser :attr:`UnlearnContext.optimizer <mucomp.methods.context.UnlearnContext.optimizer>`
        builds for a run (at the run's ``lr``): one name of :data:`mucomp.training.OPTIMIZERS`
        for every architecture, or ``{architecture, family ("cnn" / "vit") or "*": name}``.
        Default: SGD with momentum for the CNNs, AdamW for the vision transformers
        (:data:`FAMILY_OPTIMIZERS`). The method's code then only states its losses.
    uses:
        The common hyper-parameters (``epochs``, ``lr``, ``batch_size``) the method reads; default
        all three. The app shows (and a grid varies) only these, and the command line refuses a
        value for another, e.g. ``uses=("epochs", "batch_size")`` for a method without an
        optimiser step, whose ``lr`` would change nothing.

    The function is returned unchanged, so it can still be called directly.
    """

    def decorate(fn: MethodFn) -> MethodFn:
        if not callable(fn):
            raise TypeError(f"@register({name!r}) must decorate a function fn(ctx), got {fn!r}")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"method name {name!r} must be lower case letters, digits and _ (max 40), starting with a letter")
        declared = _normalise_params(params)
        info = MethodInfo(
            name=name,
            label=label or BUILTIN_METHOD_LABELS.get(name) or name,
            fn=fn,
            params=declared,
            defaults=_normalise_defaults(defaults, declared, name),
            description=description or _first_line(fn.__doc__),
            source=_STATE.source or _source_of(fn),
            default_sources=_normalise_sources(default_sources, declared, name),
            optimizers=_normalise_optimizers(optimizer, name),
            uses=_normalise_uses(uses, name),
        )
        with _LOCK:
            existing = _STATE.methods.get(name)
            if existing is not None and existing.source != info.source:
                raise ValueError(
                    f"method name {name!r} is already taken by {existing.source}; choose another name"
                )
            _STATE.methods[name] = info
            if _STATE.source is not None:  # a plugin is being loaded: remember what it added
                _STATE.added.append(name)
        return fn

    return decorate


def unregister(name: str) -> None:
    """Remove a method registered by a plugin or an import (built-ins cannot be removed)."""
    with _LOCK:
        info = _STATE.methods.get(name)
        if info is None:
            raise ValueError(f"no method {name!r} is registered")
        if info.builtin:
            raise ValueError(f"{name!r} is a built-in method and cannot be removed")
        del _STATE.methods[name]


def _source_of(fn: MethodFn) -> str:
    module = getattr(fn, "__module__", "") or ""
    return "builtin" if module.startswith("mucomp.methods.") else f"module {module}"


def _first_line(text: str | None) -> str:
    return text.strip().splitlines()[0].strip() if text and text.strip() else ""
