"""What a page's URL keeps of a session, so that a reload or a shared link restores it: the
scenario, Model A / B and the Attack page's settings (feature, strategy, custom thresholds, tab).

Plain functions (no Streamlit, no torch): :mod:`mucomp.ui.session` reads the query of a new
session with them and writes the session's state back into the URL after every change. A query
is untrusted: every value is checked against what it may be, and anything else is ignored (never
executed or rendered).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from mucomp.data import DATASETS, Scenario
from mucomp.display_text import for_markdown
from mucomp.forget_sets import kind_of, of_classes
from mucomp.privacy import METRIC_RANGES, METRICS
from mucomp.results import STRATEGY_LABELS
from mucomp.seeds import seed_from_text

#: The scenario a new session starts on: digits, forget class 3, training seed 0 (the README's
#: examples and the CLI's use the same class).
DEFAULT_SCENARIO = Scenario("digits", 3, 0)

SCENARIO_KEYS = ("dataset", "arch", "forget", "seed", "data_seed")
MODEL_KEYS = ("a", "b")
ATTACK_KEYS = ("feature", "strategy", "threshold_a", "threshold_b", "tab")
#: The URL query keys that keep a session's choices across reloads and in shared links.
QUERY_KEYS = SCENARIO_KEYS + MODEL_KEYS + ATTACK_KEYS

#: The Attack page's tabs: URL value -> label.
ATTACK_TABS: dict[str, str] = {
    "threshold": "Threshold attack",
    "ulira": "Per-example (U-LiRA)",
    "relearn": "Relearning",
    "ensembles": "Many models",
}
#: The Attack page's settings of a new session (``thresholds``: ``"metric:which"`` -> value).
DEFAULT_ATTACK: dict[str, Any] = {"metric": "entropy", "strategy": "max_attack_score", "thresholds": {},
                                  "tab": "threshold"}

_LINK_ID = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
_MAX_NUMBER_TEXT = 32


def default_attack() -> dict[str, Any]:
    """A fresh copy of :data:`DEFAULT_ATTACK` (the session mutates its own)."""
    return {**DEFAULT_ATTACK, "thresholds": {}}


def tab_of_label(label: Any) -> str:
    """The URL value of the Attack tab labelled ``label`` (the first tab for anything else)."""
    return next((tab for tab, text in ATTACK_TABS.items() if text == label), DEFAULT_ATTACK["tab"])


def state_from_query(query: Mapping[str, str]) -> tuple[Scenario | None, str | None, str | None]:
    """The scenario and Model A / B a URL query names, each None when absent or invalid. ``forget``
    is a class index (older links) or a forget-set text; an ``indices:`` set never comes from a URL
    (it would name a file on the server)."""
    scenario = None
    try:
        dataset = query.get("dataset", DEFAULT_SCENARIO.dataset)
        if dataset in DATASETS and any(k in query for k in ("dataset", "forget", "seed")):
            forget = str(query.get("forget", DEFAULT_SCENARIO.forget_class))[:64]
            forget = of_classes(int(forget)).text if forget.isascii() and forget.isdigit() else forget
            if kind_of(forget) in ("class", "classes", "random"):
                # the digits 0-9 only, as the CLI reads them (int() would take '1_0' and '١')
                seed, data_seed = seed_from_text(query.get("seed", "0")), seed_from_text(query.get("data_seed", "0"))
                arch = query.get("arch") if query.get("arch") in DATASETS[dataset].archs else None
                scenario = Scenario(dataset, None, seed, forget, data_seed, arch)
    except (TypeError, ValueError):
        scenario = None
    models = [query.get(k) if isinstance(query.get(k), str) and _LINK_ID.fullmatch(query.get(k)) else None
              for k in MODEL_KEYS]
    return scenario, models[0], models[1]


def unopened_scenario(query: Mapping[str, str]) -> str | None:
    """The sentence a new session shows when its URL names a scenario that could not be opened
    (:func:`state_from_query` gave None), or None when it named none."""
    given = [k for k in SCENARIO_KEYS if k in query]
    if not given:
        return None
    # A link is anybody's text: escaped, as the warning renders markdown.
    named = ", ".join(f"{k}={for_markdown(str(query[k])[:40])}" for k in given)
    why = ("a list of images (indices:) is chosen on Home from its file, not from a link"
           if str(query.get("forget", "")).startswith("indices:") else "it is not a data set, forget set and seed "
           "this app knows")
    return (f"The link names the scenario {named}, which cannot be opened ({why}): the default scenario is shown "
            "instead. Choose the scenario on Home.")


def _number(text: Any) -> float | None:
    """A finite float written in ``text``, else None."""
    if not isinstance(text, str) or len(text) > _MAX_NUMBER_TEXT:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def attack_from_query(query: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (the Attack page's) with the query's valid values applied: a known feature,
    strategy and tab, and thresholds inside the feature's range; anything else is ignored."""
    out = {**settings, "thresholds": dict(settings.get("thresholds") or {})}
    if query.get("feature") in METRICS:
        out["metric"] = query["feature"]
    if query.get("strategy") in STRATEGY_LABELS:
        out["strategy"] = query["strategy"]
    if query.get("tab") in ATTACK_TABS:
        out["tab"] = query["tab"]
    low, high = METRIC_RANGES[out["metric"]]
    for which in MODEL_KEYS:
        value = _number(query.get(f"threshold_{which}"))
        if value is not None and low <= value <= high:
            out["thresholds"][f"{out['metric']}:{which}"] = value
    return out


def attack_query(settings: Mapping[str, Any]) -> dict[str, str]:
    """The URL query of the Attack page's settings, defaults left out (custom thresholds only
    under the custom strategy, for the feature in use)."""
    query = {}
    metric, strategy = settings.get("metric"), settings.get("strategy")
    if metric in METRICS and metric != DEFAULT_ATTACK["metric"]:
        query["feature"] = metric
    if strategy in STRATEGY_LABELS and strategy != DEFAULT_ATTACK["strategy"]:
        query["strategy"] = strategy
    if strategy == "custom":
        for which in MODEL_KEYS:
            value = (settings.get("thresholds") or {}).get(f"{metric}:{which}")
            if isinstance(value, (int, float)) and math.isfinite(value):
                query[f"threshold_{which}"] = f"{value:.6g}"
    if settings.get("tab") in ATTACK_TABS and settings.get("tab") != DEFAULT_ATTACK["tab"]:
        query["tab"] = settings["tab"]
    return query


def scenario_query(s: Scenario, a: str | None, b: str | None) -> dict[str, str]:
    """The URL query of scenario ``s`` and Model A / B (a data seed of 0, the data set's own
    architecture and unchosen models left out)."""
    # One class stays a bare index (short links, and the links shared before forget sets still work).
    forget = str(s.forget_class) if s.forget_class is not None else s.forget_set.text
    query = {"dataset": s.dataset, "forget": forget, "seed": str(s.train_seed)}
    if s.data_seed:
        query["data_seed"] = str(s.data_seed)
    if s.arch != s.spec.arch:
        query["arch"] = s.arch
    query.update({k: v for k, v in (("a", a), ("b", b)) if v})
    return query


def missing_models(a: str | None, b: str | None, known: Iterable[str]) -> tuple[str | None, str | None, list[str]]:
    """Model A / B of a link checked against the scenario's experiment ids ``known``: the ids kept
    (None for one not found) and a sentence for each id not found."""
    known = set(known)
    kept, problems = [], []
    for which, experiment_id in (("A", a), ("B", b)):
        if experiment_id is None or experiment_id in known:
            kept.append(experiment_id)
            continue
        kept.append(None)
        problems.append(f"The link names `{experiment_id}` as Model {which}, but this scenario has no experiment "
                        f"with that id (it may have been deleted, or stored on another server): Model {which} is "
                        "not chosen. Pick one on Screen.")
    return kept[0], kept[1], problems
