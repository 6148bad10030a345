"""The Build page's rules as plain functions (no Streamlit): parse what a user typed into the
hyper-parameter grid, validate it against the method's declared :class:`~mucomp.methods.Param`\\ s
(only the common ones it uses), expand it into experiment configs within the one grid limit
(:data:`MAX_GRID_RUNS`, :func:`grid_limit_text`), find the runs already stored, and choose the
jobs the Progress panel lists. Tested without a browser; the page only draws the widgets."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mucomp.config import MAX_APP_RUNS, ExperimentConfig, TooManyRunsError, grid_size, plan_runs
from mucomp.data import Scenario
from mucomp.execution import FINISHED, PrepareReferences, request_scenario
from mucomp.groups import same_runs
from mucomp.methods import MethodInfo, Param

#: Most runs one click may queue (the queue is shared by every visitor of a server).
MAX_GRID_RUNS = MAX_APP_RUNS
#: Most values one list may hold.
MAX_VALUES = 8
_SEPARATORS = re.compile(r"[,;\s]+")
PARAM_LABELS = {"epochs": "Epochs", "lr": "Learning rate", "batch_size": "Batch size"}


class GridError(ValueError):
    """A value the user typed was refused; the message names the field and what is allowed."""


def grid_limit_text() -> str:
    """The app's grid limit in words: the one statement the Build page's caption and its refusal
    of a larger grid both give."""
    return f"One click of Run queues at most {MAX_GRID_RUNS} runs (grid points × unlearning seeds)"


def unused_text(info: MethodInfo) -> str | None:
    """Why the form shows no field for a common hyper-parameter the method ignores (SSD's
    learning rate), or None when it uses all of them."""
    if not info.unused:
        return None
    names = " and ".join(PARAM_LABELS.get(name, name).lower() for name in info.unused)
    it = "it" if len(info.unused) == 1 else "them"
    return f"{info.label} does not use the {names}: its runs ignore {it}, so the form has no field for {it}."


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
    try:
        info.check_used(grid)
    except ValueError as err:
        raise GridError(str(err)) from None
    config = ExperimentConfig.for_scenario(scenario, unlearn_seed=seeds[0], method=info.name, base=base,
                                           params=dict(fixed or {}))
    try:
        configs = plan_runs(config, {k: list(v) for k, v in grid.items()}, unlearn_seeds=seeds,
                            max_runs=MAX_GRID_RUNS, raise_with="")
    except TooManyRunsError:
        count = grid_size({k: list(v) for k, v in grid.items()}) * len(seeds)
        raise GridError(f"This grid makes {count} runs. {grid_limit_text()}: narrow the grid or use fewer "
                        "seeds.") from None
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


def stored_runs(info: MethodInfo, configs: Sequence[ExperimentConfig], listing: Sequence[dict]) -> dict[int, str]:
    """Which of ``configs`` (the grid about to be queued) ran before: config index -> the id of
    the first stored experiment with the identical run (scenario, method, base, every
    hyper-parameter once its defaults are filled in, seed pair; :func:`mucomp.groups.same_runs`).
    Running one again stores a copy that its replicate group counts once."""
    found = {}
    for index, config in enumerate(configs):
        try:
            ids = same_runs(info.stored_config(config), listing)
        except ValueError:  # a combination the method refuses: the grid's own error says so
            continue
        if ids:
            found[index] = ids[0]
    return found


def stored_runs_text(found: Mapping[int, str], total: int) -> str:
    """The Build page's notice of runs that exist already (:func:`stored_runs`)."""
    if total == 1 and found:
        return (f"This exact run exists: experiment {next(iter(found.values()))} ran the same method, base, "
                "hyper-parameters and seeds in this scenario. Running it again stores a copy with the same "
                "seeds, which its replicate group counts once; open the stored one instead.")
    return (f"{len(found)} of these {total} runs {'exists' if len(found) == 1 else 'exist'} already (the same "
            "method, base, hyper-parameters and seeds "
            "in this scenario). Running them again stores copies that their replicate groups count once; "
            "narrow the grid or change the seeds to run only new ones.")


def progress_job(job: dict, scenario: Scenario) -> bool:
    """Whether Build's Progress panel lists ``job`` (a job snapshot): a run, upload or pull of
    ``scenario`` (reference preparation is shown above the form, other scenarios' jobs are counted)."""
    return not isinstance(job["config"], PrepareReferences) and request_scenario(job["config"]) == scenario


def other_scenarios_text(jobs: Sequence[dict], scenario: Scenario, owner: str) -> str | None:
    """A line counting the jobs the Progress panel would list but for their scenario (this
    session's runs, and other sessions' running ones, of another scenario); None when there are none."""
    others = [job for job in jobs if not isinstance(job["config"], PrepareReferences)
              and request_scenario(job["config"]) != scenario
              and (job["owner"] == owner or job["state"] == "running")]
    if not others:
        return None
    active = sum(job["state"] not in FINISHED for job in others)
    one = len(others) == 1
    return (f"{len(others)} run{'' if one else 's'} of other scenarios {'is' if one else 'are'} not listed here "
            f"({active} queued or running, {len(others) - active} finished): choose {'its' if one else 'their'} "
            f"scenario on Home to follow {'it' if one else 'them'}.")
