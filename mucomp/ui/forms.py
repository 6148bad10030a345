"""The Build page's hyper-parameter grid as plain functions (no Streamlit): parse what a user
typed, validate it against the method's declared :class:`~mucomp.methods.Param`\\ s, and expand
it into experiment configs. Tested without a browser; the page only draws the widgets."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mucomp.config import MAX_APP_RUNS, ExperimentConfig, TooManyRunsError, plan_runs
from mucomp.data import Scenario
from mucomp.methods import MethodInfo, Param

#: Most runs one click may queue (the queue is shared by every visitor of a server).
MAX_GRID_RUNS = MAX_APP_RUNS
#: Most values one list may hold.
MAX_VALUES = 8
_SEPARATORS = re.compile(r"[,;\s]+")
PARAM_LABELS = {"epochs": "Epochs", "lr": "Learning rate", "batch_size": "Batch size"}


class GridError(ValueError):
    """A value the user typed was refused; the message names the field and what is allowed."""


def label_of(param: Param) -> str:
    """How a parameter is named on the page."""
    return PARAM_LABELS.get(param.name, param.name.replace("_", " ").capitalize())


def format_value(value: Any) -> str:
    """A value as the user would type it (``0.05``, ``1e-05``, ``12``)."""
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def default_text(param: Param, value: Any) -> str:
    """The text a list field starts with: the method's default on the data set."""
    return format_value(value)


def parse_values(param: Param, text: str) -> list:
    """The values typed into a list field (separated by commas, semicolons or spaces), each
    validated by ``param`` (type and range); duplicates removed, order kept.

    Raises :class:`GridError` for an empty field, too many values, or a value that is not
    allowed (e.g. a learning rate of 0 or a word), naming the field and the allowed values.
    """
    label = label_of(param)
    items = [item for item in _SEPARATORS.split(str(text or "").strip()) if item]
    if not items:
        raise GridError(f"{label}: enter at least one value ({param.allowed()}).")
    if len(items) > MAX_VALUES:
        raise GridError(f"{label}: at most {MAX_VALUES} values per list, got {len(items)}.")
    values: list = []
    for item in items:
        try:
            value = param.validate(item)
        except ValueError:
            raise GridError(f"{label}: {item!r} is refused; it must be {param.allowed()}.") from None
        if value not in values:
            values.append(value)
    return values


def grid_configs(
    info: MethodInfo,
    scenario: Scenario,
    base: str,
    grid: Mapping[str, Sequence],
    fixed: Mapping[str, Any] | None = None,
    *,
    seeds: Sequence[int] = (0,),
) -> list[ExperimentConfig]:
    """One validated :class:`ExperimentConfig` per combination of ``grid`` (epochs, lr,
    batch_size and the method's list-valued parameters) and unlearning seed (``seeds``: the
    replicates), with ``fixed`` single-valued parameters, for ``scenario``. Raises
    :class:`GridError` when the grid is too large or a combination is refused by the method."""
    config = ExperimentConfig.for_scenario(scenario, unlearn_seed=seeds[0], method=info.name, base=base,
                                           params=dict(fixed or {}))
    try:
        configs = plan_runs(config, {k: list(v) for k, v in grid.items()}, unlearn_seeds=seeds,
                            max_runs=MAX_GRID_RUNS, raise_with="")
    except TooManyRunsError as err:
        raise GridError(f"{str(err)[0].upper()}{str(err)[1:]}.") from None
    except ValueError:
        raise GridError("The grid is empty: give every list at least one value.") from None
    for item in configs[::len(seeds)]:
        try:
            info.resolve_for(scenario, item.hyper())
        except ValueError as err:
            raise GridError(str(err)) from None
    return configs


def clean_label(text: str, limit: int = 60) -> str:
    """A user's label as every visitor sees it: letters, digits, spaces and ``-_.,()+`` only (no
    markdown or HTML), runs of spaces collapsed, at most ``limit`` characters."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w .,()+-]", "", str(text))).strip()[:limit]
