"""The method registry: ``@register``, hyper-parameter declarations and plugin discovery.

A method is a function ``fn(ctx: UnlearnContext) -> None`` that updates ``ctx.model`` in place,
registered under a short name with :func:`register`. Built-in methods and a user's own methods
are registered the same way, so :func:`available_methods` lists both alike.

User methods are found in two places (searched on first use, again after
:func:`refresh_plugins`):

- ``MUCOMP_PLUGINS``: ``os.pathsep``-separated ``.py`` files or folders (every ``*.py`` in a
  folder, sorted, not recursive, names starting with ``_`` or ``.`` skipped);
- the entry-point group ``mucomp.methods`` of installed distributions (each entry point's
  object is loaded; loading a module that calls ``@register`` is enough).

A plugin that fails to import or to register never breaks the app: the error is kept, with
where it came from, in :func:`plugin_errors`, and whatever that plugin had registered is
dropped again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import math
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mucomp.data import DATASETS
from mucomp.models import ARCHITECTURES, arch_info
from mucomp.training import OPTIMIZERS

if TYPE_CHECKING:
    from mucomp.methods.context import UnlearnContext

MethodFn = Callable[["UnlearnContext"], None]

PARAM_TYPES = ("float", "int", "choice", "bool")
ENTRY_POINT_GROUP = "mucomp.methods"
PLUGINS_ENV = "MUCOMP_PLUGINS"
ALL_DATASETS = "*"
#: Suffix of a defaults key for image-wise forgetting (a random or index forget set) on a data set,
#: e.g. ``"cifar10:random"``: the published random-forgetting recipes differ from the class-wise ones.
IMAGEWISE_SUFFIX = ":random"


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
#: Architecture families a method's ``optimizer`` may name (besides architectures and ``"*"``).
FAMILIES = ("cnn", "vit")
#: The optimiser of a method that declares none, per architecture family: SGD (momentum 0.9,
#: weight decay 5e-4) for the CNNs and ResNets; AdamW (weight decay 0.01) for the vision
#: transformers, as their published checkpoints were trained (Yurim0507/vit-base-16-cifar10-
#: unlearning card: AdamW, lr 5e-5, weight decay 0.01). Plain SGD at the ResNet learning rates
#: sends a ViT's loss to NaN or wipes every class within an epoch.
FAMILY_OPTIMIZERS = {"cnn": "sgd", "vit": "adamw"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PARAM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Param:
    """One hyper-parameter of a method; it drives a control in the app and the validation.

    ``type`` is ``"float"``, ``"int"``, ``"choice"`` or ``"bool"``. ``min`` / ``max`` bound
    numbers (inclusive; ``exclusive_min`` makes the lower bound strict, e.g. a learning rate
    > 0). ``choices`` lists the values of a ``"choice"``. ``default`` is used for a data set the
    method's ``defaults`` do not cover. ``log`` hints that a slider should be logarithmic.
    """

    name: str
    type: str = "float"
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    help: str = ""
    exclusive_min: bool = False
    log: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PARAM_RE.match(self.name):
            raise ValueError(f"parameter name {self.name!r} must be a Python identifier of at most 40 characters")
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: type must be one of {PARAM_TYPES}, got {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name!r} is a choice: give its choices")
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.default is not None:
            object.__setattr__(self, "default", self.validate(self.default))

    def allowed(self) -> str:
        """The allowed values in words, for error messages and help texts."""
        if self.type == "bool":
            return "true or false"
        if self.type == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.type == "int" else "a number"
        if self.min is None and self.max is None:
            return kind
        low = "(" if self.exclusive_min else "["
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{kind} in {low}{lo}, {hi}]"

    def validate(self, value: Any) -> Any:
        """``value`` converted to this parameter's type; ValueError naming the parameter and the
        allowed values when it does not fit. Strings are parsed (the CLI and forms pass them)."""
        try:
            converted = self._convert(value)
        except (TypeError, ValueError):
            converted = None
        if converted is None or not self._in_range(converted):
            raise ValueError(f"{self.name} must be {self.allowed()}, got {value!r}")
        return converted

    def _convert(self, value: Any) -> Any:
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.strip().lower() in ("true", "1", "yes")
            return None
        if self.type == "choice":
            for choice in self.choices:
                if value == choice or (isinstance(value, str) and value.strip() == str(choice)):
                    return choice
            return None
        if isinstance(value, bool):
            return None
        if self.type == "int":
            number = float(value.strip()) if isinstance(value, str) else value
            if isinstance(number, float):
                if not number.is_integer():
                    return None
                number = int(number)
            return int(number) if isinstance(number, int) or hasattr(number, "__index__") else None
        number = float(value.strip() if isinstance(value, str) else value)
        return number if math.isfinite(number) else None

    def _in_range(self, value: Any) -> bool:
        if self.type in ("bool", "choice"):
            return True
        if self.min is not None and (value <= self.min if self.exclusive_min else value < self.min):
            return False
        return self.max is None or value <= self.max

    def as_dict(self) -> dict:
        """A JSON-ready description (what the app builds a control from)."""
        return {
            "name": self.name, "type": self.type, "default": self.default, "min": self.min,
            "max": self.max, "exclusive_min": self.exclusive_min, "choices": list(self.choices),
            "log": self.log, "help": self.help, "allowed": self.allowed(),
        }


#: The hyper-parameters every method has; the app's grid varies them.
COMMON_PARAMS: tuple[Param, ...] = (
    Param("epochs", "int", min=1, max=1000, help="passes of the method's loop over its data"),
    Param("lr", "float", min=0.0, max=1e6, exclusive_min=True, log=True, help="learning rate"),
    Param("batch_size", "int", min=1, max=8192, help="images per optimisation step"),
)
COMMON_NAMES = tuple(p.name for p in COMMON_PARAMS)


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


#: Citations of the published defaults the built-in methods share (``default_sources``).
COMPARATOR_CLASSWISE = (
    "published comparator, class-wise defaults: gnueaj/Machine-Unlearning-Comparator "
    "frontend/src/utils/config/unlearning.ts"
)
COMPARATOR_MAX_GRAD_NORM = (
    "published comparator backend: gnueaj/Machine-Unlearning-Comparator backend/app/config/settings.py "
    "(MAX_GRAD_NORM = 100)"
)
#: Random forgetting on CIFAR-10 (``"cifar10:random"``): 4,500 random training images (10 %) on
#: ResNet-18. Epochs and lr only; the batch size stays the class-wise default.
SPARSE_RANDOM = (
    "Unlearn-Sparse authors, random forgetting of 4,500 CIFAR-10 images: OPTML-Group/Unlearn-Sparse "
    "README.MD (FT: 10 epochs, lr 0.01; GA: 5 epochs, lr 1e-4)"
)
SALUN_RANDOM = (
    "SalUn authors, random forgetting of 10 % of CIFAR-10: OPTML-Group/Unlearn-Saliency "
    "Classification/README.md (RL with the saliency mask: 10 epochs, lr 0.013, mask/with_0.5.pt)"
)
#: ViT-B/16 on CIFAR-10: no published unlearning defaults exist for these files. mucomp's start:
#: the optimiser and learning-rate scale of the files' own recipe, lower for unlearning, batch 64
#: (what fits a 16 GB GPU at 224 x 224), fewer epochs than the ResNet recipes (an epoch is ~20x
#: the compute). Not tuned on the published files (no GPU was available when they were set).
VIT_B16_RECIPE = (
    "mucomp's start for ViT-B/16, not yet tuned on the published files: AdamW (weight decay 0.01) at "
    "learning rates below the files' fine-tuning lr 5e-5 (Yurim0507/vit-base-16-cifar10-unlearning model card: "
    "AdamW, lr 5e-5, weight decay 0.01, batch 16)"
)
#: The SSD authors' ViT-B/16 runs (if-loops/selective-synaptic-dampening ``forget_full_class_main.py``
#: and ``forget_full_class_strategies.py``): SSD's selection weighting 10 x 0.5 = 5 for a ViT,
#: Bad Teacher's batch lowered to 128, Adam at lr 1e-4 for Bad Teacher and UNSIR.
SSD_AUTHORS_VIT = (
    "SSD authors' ViT runs: if-loops/selective-synaptic-dampening forget_full_class_main.py "
    "(selection_weighting 10 x 0.5 for ViT) and forget_full_class_strategies.py (Bad Teacher batch 128; Adam lr 1e-4)"
)
#: vit_digits: mucomp's own, tuned like the digits CNN's (benchmarks/classwise_digits.py --arch vit_digits).
VIT_DIGITS_TUNED = "mucomp's own, tuned on vit_digits (benchmarks/classwise_digits.py --arch vit_digits)"


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


def register(
    name: str,
    *,
    label: str | None = None,
    defaults: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | list | tuple | None = None,
    description: str | None = None,
    default_sources: Mapping[str, Any] | None = None,
    optimizer: str | Mapping[str, str] | None = None,
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
            label=label or name,
            fn=fn,
            params=declared,
            defaults=_normalise_defaults(defaults, declared, name),
            description=description or _first_line(fn.__doc__),
            source=_STATE.source or _source_of(fn),
            default_sources=_normalise_sources(default_sources, declared, name),
            optimizers=_normalise_optimizers(optimizer, name),
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


# ---------------------------------------------------------------------------------------------
# Discovery


@contextlib.contextmanager
def _loading(source: str) -> Iterator[None]:
    """Register everything done inside as coming from ``source``; on an error, drop it again
    and keep the error."""
    previous_source, previous_added = _STATE.source, _STATE.added
    _STATE.source, _STATE.added = source, []
    try:
        yield
    except (Exception, SystemExit) as err:  # a plugin may raise anything, even sys.exit()
        for name in _STATE.added:
            info = _STATE.methods.get(name)
            if info is not None and info.source == source:
                del _STATE.methods[name]
        _STATE.errors.append(PluginError(source, _describe(err)))
    finally:
        _STATE.source, _STATE.added = previous_source, previous_added


def _describe(err: BaseException) -> str:
    """``Type: message (file:line)``, the line being the innermost frame in plugin code."""
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "importlib" not in frame.filename and not frame.filename.endswith("registry.py"):
            where = f" ({Path(frame.filename).name}, line {frame.lineno})"
            break
    if isinstance(err, SyntaxError) and err.filename:
        where = f" ({Path(err.filename).name}, line {err.lineno})"
    text = str(err).strip() or "no details"
    return f"{type(err).__name__}: {text}{where}"


def plugin_paths(value: str | None = None) -> tuple[list[Path], list[PluginError]]:
    """The ``.py`` files named by ``MUCOMP_PLUGINS`` (or ``value``), and errors for entries
    that do not exist or are not Python files."""
    value = os.environ.get(PLUGINS_ENV, "") if value is None else value
    files: list[Path] = []
    errors: list[PluginError] = []
    for entry in (e.strip() for e in value.split(os.pathsep)):
        if not entry:
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith(("_", ".")))
        elif path.is_file() and path.suffix == ".py":
            files.append(path)
        elif path.exists():
            errors.append(PluginError(str(path), f"{PLUGINS_ENV} names a file that is not a .py file"))
        else:
            errors.append(PluginError(str(path), f"{PLUGINS_ENV} names a file or folder that does not exist"))
    return files, errors


def load_plugin_file(path: str | os.PathLike) -> list[str]:
    """Import one plugin file; returns the names it registered (errors go to
    :func:`plugin_errors`). A file loaded again (after an edit) replaces its methods."""
    path = Path(path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"mucomp_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{digest}"
    with _LOCK, _loading(str(path)):
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        if not _STATE.added:
            raise LookupError("the file registered no method; decorate a function fn(ctx) with @register(...)")
        return list(_STATE.added)
    return []


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        source = f"entry point {ep.name} ({ep.value})"
        with _loading(source):
            obj = ep.load()
            registered = any(info.fn is obj or info.module == ep.module for info in _STATE.methods.values())
            if not _STATE.added and not registered:
                raise LookupError("loading it registered no method; decorate a function fn(ctx) with @register(...)")


def _ensure_plugins() -> None:
    """Load what ``MUCOMP_PLUGINS`` names (again when it changed) and, once, the entry points."""
    with _LOCK:
        value = os.environ.get(PLUGINS_ENV, "")
        if not _STATE.entry_points_loaded:
            _STATE.entry_points_loaded = True
            try:
                _load_entry_points()
            except Exception as err:  # a broken installed distribution must not break the app
                _STATE.errors.append(PluginError("entry points", _describe(err)))
        if _STATE.loaded_env != value:
            _STATE.loaded_env = value
            for name in [n for n, info in _STATE.methods.items() if _is_file_source(info.source)]:
                del _STATE.methods[name]
            _STATE.errors = [e for e in _STATE.errors if not _is_file_source(e.source)]
            files, errors = plugin_paths(value)
            _STATE.errors += errors
            for path in files:
                load_plugin_file(path)


def _is_file_source(source: str) -> bool:
    return not source.startswith(("builtin", "entry point", "module "))


def refresh_plugins() -> None:
    """Forget the methods of plugin files and every plugin error, then search
    ``MUCOMP_PLUGINS`` and the entry points again (after installing or editing a plugin, or in
    tests). Methods of imported modules stay: a module runs its decorators only once."""
    with _LOCK:
        _STATE.errors = []
        _STATE.loaded_env = None
        _STATE.entry_points_loaded = False
    _ensure_plugins()


def available_methods() -> dict[str, MethodInfo]:
    """Every registered method, built-ins first (in their fixed order), then plugins."""
    _ensure_plugins()
    with _LOCK:
        return dict(_STATE.methods)


def get_method(name: str) -> MethodInfo:
    """The method registered as ``name``; ValueError lists the available ones."""
    methods = available_methods()
    try:
        return methods[name]
    except KeyError:
        hint = ""
        if plugin_errors():
            hint = f" ({len(plugin_errors())} plugin(s) failed to load: see `mucomp methods`)"
        raise ValueError(f"unknown method {name!r}; available: {', '.join(methods)}{hint}") from None


def plugin_errors() -> list[PluginError]:
    """Plugins that could not be loaded, each with its source and a readable message."""
    _ensure_plugins()
    with _LOCK:
        return list(_STATE.errors)
