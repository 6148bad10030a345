"""Reading stored results for the views: validation at the boundary, scenario checks, labels.

Every view function (:mod:`mucomp.results.screen`, :mod:`~mucomp.results.contrast`,
:mod:`~mucomp.results.attack`) takes stored result dicts (``Experiment.result``, the blocks of
:mod:`mucomp.experiment.figures`) or :class:`~mucomp.store.Experiment` objects. Two results must
belong to the same scenario (data set, forget set, seeds, architecture), and a result that lacks a
block a view needs (for example one stored by an older mucomp) raises :class:`MissingBlockError`
naming the experiment and what to do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mucomp import catalogue
from mucomp.forget_sets import parse_forget, stored_forget_text
from mucomp.specs import get_spec


class IncompatibleResultsError(ValueError):
    """Two results that can't be compared (different scenarios, different attack samples...)."""


class MissingBlockError(ValueError):
    """A stored result lacks a block (or a field of a block) a view needs."""


ResultLike = Any  # a stored result dict or an object with a ``.result`` dict (an Experiment)

SPLITS = ("train", "test")


def as_result(item: ResultLike, name: str = "result") -> dict:
    """The result dict of ``item``: a stored result dict itself, or ``item.result`` (an Experiment)."""
    result = getattr(item, "result", item)
    if not isinstance(result, Mapping):
        raise TypeError(f"{name} must be a stored result dict or an Experiment, got {type(item).__name__}")
    if "id" not in result or "config" not in result:
        raise MissingBlockError(f"{name} has no 'id' or 'config': it is not a stored mucomp result")
    return dict(result)


def describe(result: Mapping) -> str:
    return f"experiment {result.get('id', '?')} ({result.get('kind', '?')})"


def block(result: Mapping, key: str, fields: Sequence[str] = ()) -> Mapping:
    """``result[key]`` with the given ``fields`` present, else a :class:`MissingBlockError`."""
    value = result.get(key)
    if not isinstance(value, Mapping):
        raise MissingBlockError(
            f"{describe(result)} has no '{key}' block: it was stored by an older or different mucomp "
            f"(code version {result.get('code_version', 'unknown')}). Re-run the experiment to see this view."
        )
    missing = [f for f in fields if f not in value]
    if missing:
        raise MissingBlockError(
            f"{describe(result)}: its '{key}' block lacks {missing} (stored by code version "
            f"{result.get('code_version', 'unknown')}). Re-run the experiment to see this view."
        )
    return value


def scenario_of(result: ResultLike) -> tuple[str, str, int, int, str | None]:
    """``(dataset, forget set text, training seed, data seed, arch)`` of a stored result.

    Reads a current-schema config (``forget``, ``train_seed``, ...) and, for hand-made or older
    dicts, the single ``forget_class`` and ``seed`` they had instead.
    """
    result = as_result(result)
    config = result["config"]
    try:
        seed = int(config.get("seed", config.get("unlearn_seed", 0)))
        forget = stored_forget_text(config)
        return (str(config["dataset"]), str(forget), int(config.get("train_seed", seed)),
                int(config.get("data_seed", seed)), config.get("arch"))
    except (KeyError, TypeError, ValueError) as err:
        raise MissingBlockError(f"{describe(result)}: its config lacks the dataset or forget set") from err


def _scenario_words(scenario: tuple) -> str:
    dataset, forget, train_seed, data_seed, arch = scenario
    return f"{dataset} / forget {forget} / training seed {train_seed} / data seed {data_seed}" + (f" / {arch}" if arch else "")


def check_same_scenario(results: Sequence[ResultLike], names: Sequence[str] | None = None) -> tuple:
    """The common scenario (:func:`scenario_of`) of ``results``; :class:`IncompatibleResultsError`
    if they differ (an arch of None matches any: hand-made results may not say it)."""
    if not results:
        raise ValueError("no results given")
    names = list(names) if names is not None else [f"result {k + 1}" for k in range(len(results))]
    scenarios = [scenario_of(r) for r in results]
    first = scenarios[0]
    for name, result, scenario in zip(names, results, scenarios, strict=True):
        if scenario[:4] != first[:4] or None not in (scenario[4], first[4]) and scenario[4] != first[4]:
            raise IncompatibleResultsError(
                f"{names[0]} ({as_result(results[0])['id']}) belongs to {_scenario_words(first)} but {name} "
                f"({as_result(result)['id']}) to {_scenario_words(scenario)}; pick experiments of the same scenario"
            )
    return first


def forget_classes_of(forget: str, dataset: str) -> tuple[int, ...]:
    """The classes a canonical forget-set text of ``dataset`` forgets whole (``class:3`` -> (3,),
    ``classes:3,5`` -> (3, 5)); () for random and index sets, which forget images."""
    if catalogue.imagewise(forget):
        return ()
    try:
        return parse_forget(forget, get_spec(dataset)).classes
    except ValueError as err:
        raise MissingBlockError(f"stored forget set {forget!r} of {dataset} is not readable ({err})") from err


def forget_classes(results: Sequence[dict], forget_class: int | None = None,
                   names: Sequence[str] | None = None) -> tuple[int, ...]:
    """The forget classes of the results' common scenario (given ``forget_class`` must match)."""
    scenario = check_same_scenario(results, names)
    stored = forget_classes_of(scenario[1], scenario[0])
    if forget_class is None:
        return stored
    if isinstance(forget_class, bool) or not isinstance(forget_class, (int, np.integer)):
        raise ValueError(f"forget_class must be an int, got {forget_class!r}")
    if (int(forget_class),) != stored:
        raise IncompatibleResultsError(
            f"forget_class {forget_class} does not match the results' forget set {stored or 'of images'}"
        )
    return stored


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def floats(values: Any, what: str) -> np.ndarray:
    """A float64 array of stored numbers (``None`` / null -> NaN)."""
    try:
        return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise MissingBlockError(f"{what} must be a list of numbers") from err


def number(value: Any) -> float:
    """A stored number as a float (``None`` / null -> NaN)."""
    return math.nan if value is None else float(value)


def base_label(base: Any) -> str:
    if base is None:
        return "—"
    return "Original" if base == "original" else str(base)


def experiment_label(result: ResultLike) -> str:
    """A short human label for pickers and legends: ``"Original"``, ``"Retrained"`` or
    ``"<method label> · <id>"``."""
    result = as_result(result)
    if result.get("kind") in ("original", "retrained"):
        return catalogue.TYPE_LABELS[result["kind"]]
    return f"{catalogue.method_label(result)} · {result['id']}"


def failed_reference_check(result: ResultLike) -> str | None:
    """The plain-words warning of a reference (or a published unlearned model) whose Hub file did
    not reproduce the test accuracy its publishers measured (its stored ``reference_check`` /
    ``published_check`` block says ``matches: false``), else None: local references, your own
    experiments and older stores carry no check."""
    stored = as_result(result, "a stored result")
    for key in ("reference_check", "published_check"):  # a Hub reference; a published unlearned model
        check = stored.get(key)
        if isinstance(check, dict) and check.get("matches") is False and isinstance(check.get("message"), str):
            return check["message"]
    return None


def reference_check_warnings(results: Iterable[ResultLike]) -> list[str]:
    """:func:`failed_reference_check`'s warning of every such reference in ``results``, in input
    order."""
    return [message for message in map(failed_reference_check, results) if message is not None]


def unreproduced_references(results: Iterable[ResultLike]) -> dict[str, str]:
    """``{experiment id: warning}`` of the references in ``results`` whose Hub file did not
    reproduce its published accuracy (:func:`failed_reference_check`), in input order."""
    found = {}
    for item in results:
        message = failed_reference_check(item)
        if message is not None:
            found[str(as_result(item, "a stored result")["id"])] = message
    return found
