"""What a static report shows: its scenarios, the experiments of each, and the pairs it contrasts
and attacks (pure: the store's light listing in, a :class:`ReportPlan` out; nothing is loaded).

A scenario is named by its key (:attr:`mucomp.config.ScenarioDefinition.key`, e.g.
``digits-c3-s0``), which is also its folder in the site. By default every scenario of the store is
reported with all its experiments, and each experiment is paired with the Original and with the
Retrained model it was computed against (A = the experiment, B = the reference), after one pair of
the two references themselves; experiments imported from the published comparator are paired with
the comparator's own Original and Retrained files. ``experiments`` narrows the experiments (the references stay: the
table, the Pareto view and the attack need them); ``pairs`` replaces the default pairs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mucomp.config import ScenarioDefinition
from mucomp.display_text import for_terminal
from mucomp.results.imported import is_comparator

#: The kinds of the two reference models of a scenario.
REFERENCE_KINDS = ("original", "retrained")
#: What a scenario folder's name may hold (a scenario key always fits; this is defence in depth).
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


class ReportSelectionError(ValueError):
    """A scenario, experiment or pair the store does not hold, or a pair across two scenarios;
    the message names it and says where the valid names are listed."""


@dataclass(frozen=True)
class Pair:
    """Model A and Model B of one Contrast / Attack page (experiment ids of one scenario)."""

    a: str
    b: str

    @property
    def page(self) -> str:
        """The pair page's file name (ids hold no ``_``, so ``_vs_`` cannot be ambiguous)."""
        return f"{self.a}_vs_{self.b}.html"


@dataclass
class ScenarioPlan:
    """One scenario of a report: ``rows`` its experiments (light results, the store's order),
    ``family`` the light results of every training seed of the same data set, forget set, data
    seed and architecture (the variance view groups replicates across training seeds),
    ``references`` kind -> the id of its newest Original / Retrained, ``pairs`` in page order."""

    key: str
    definition: ScenarioDefinition
    rows: list[dict]
    family: list[dict]
    references: dict[str, str]
    pairs: list[Pair] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return _UNSAFE.sub("_", self.key)


@dataclass
class ReportPlan:
    """Every scenario a report shows, and the stored experiments it left out with the reason."""

    scenarios: list[ScenarioPlan]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def experiment_count(self) -> int:
        return sum(len(s.rows) for s in self.scenarios)

    @property
    def pair_count(self) -> int:
        return sum(len(s.pairs) for s in self.scenarios)


def _family(definition: ScenarioDefinition) -> tuple:
    """The scenario without its training seed: replicate groups span training seeds."""
    return definition.dataset, definition.forget_set.text, definition.data_seed, definition.arch


def parse_pairs(text: str | Iterable[str] | None) -> list[tuple[str, str]]:
    """``"A:B,C:D"`` (or a list of ``"A:B"``) as ``[("A", "B"), ("C", "D")]``."""
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else [part for item in text for part in item.split(",")]
    pairs = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        a, sep, b = item.partition(":")
        if not sep or not a.strip() or not b.strip():
            raise ReportSelectionError(f"pair {for_terminal(item)!r} is not A:B (two experiment ids joined by ':')")
        pairs.append((a.strip(), b.strip()))
    return pairs


def _recorded_reference(row: Mapping, kind: str, present: Mapping[str, Mapping]) -> str | None:
    """The id of the ``kind`` reference ``row`` recorded it was computed against, when the
    scenario holds it (results before references were recorded: None)."""
    recorded = row.get("references")
    block = recorded.get(kind) if isinstance(recorded, Mapping) else None
    identifier = block.get("id") if isinstance(block, Mapping) else None
    return identifier if isinstance(identifier, str) and identifier in present else None


def _is_reference(row: Mapping) -> bool:
    """An Original or Retrained model: mucomp's own, or one imported from the published comparator."""
    imported = str((row.get("config") or {}).get("comparator_type") or "").lower()
    return row.get("kind") in REFERENCE_KINDS or (is_comparator(row) and imported in REFERENCE_KINDS)


def imported_references(rows: Sequence[Mapping]) -> dict[str, str]:
    """kind -> id of the newest Original / Retrained imported from the published comparator
    (kind ``comparator``): its own experiments are compared with those, on the same images."""
    found = {}
    for row in rows:
        kind = str((row.get("config") or {}).get("comparator_type") or "").lower()
        if is_comparator(row) and kind in REFERENCE_KINDS:
            found[kind] = str(row["id"])
    return found


def default_pairs(rows: Sequence[Mapping], references: Mapping[str, str]) -> list[Pair]:
    """The references against each other, then every other experiment against the Original and
    against the Retrained model: the ones it recorded, else the scenario's newest; an experiment
    imported from the published comparator against the comparator's own Original and Retrained
    (its attack values cover the comparator's forget images only)."""
    present = {str(r["id"]): r for r in rows}
    imported = imported_references(rows)
    pairs = [Pair(refs["original"], refs["retrained"]) for refs in (references, imported) if len(refs) == 2]
    for row in rows:
        identifier = str(row["id"])
        if row.get("kind") in REFERENCE_KINDS or identifier in imported.values():
            continue
        own = imported if is_comparator(row) and imported else references
        for kind in REFERENCE_KINDS:
            reference = _recorded_reference(row, kind, present) or own.get(kind)
            if reference is not None:
                pairs.append(Pair(identifier, reference))
    return pairs


def _scenarios_of(listing: Sequence[Mapping]) -> tuple[dict[str, ScenarioDefinition], dict[str, str], dict[str, str]]:
    """Each readable row's scenario key, the definitions by key, and the rows whose config names
    no valid scenario (id -> why)."""
    keys, definitions, skipped = {}, {}, {}
    for row in listing:
        identifier = str(row["id"])
        try:
            definition = ScenarioDefinition.from_config(row.get("config") or {})
        except (KeyError, TypeError, ValueError) as err:
            skipped[identifier] = f"its config names no valid scenario ({err})"
            continue
        keys[identifier] = definition.key
        definitions.setdefault(definition.key, definition)
    return keys, definitions, skipped


def _unknown(kind: str, names: Iterable[str], known: Iterable[str], where: str) -> None:
    missing = [n for n in names if n not in set(known)]
    if missing:
        shown = ", ".join(for_terminal(n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ReportSelectionError(f"no {kind} {shown} in the store; {where}")


def plan_report(
    listing: Sequence[Mapping],
    *,
    scenarios: Sequence[str] | None = None,
    experiments: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> ReportPlan:
    """Choose what a report shows from the store's light listing (oldest first).

    ``scenarios``: scenario keys (default: the scenarios of ``experiments``, else of ``pairs``,
    else every one); ``experiments``: ids to list (default: all; the references of their
    scenarios are always listed); ``pairs``: ``(A, B)`` ids of one scenario each, replacing the
    default pairs. Raises :class:`ReportSelectionError` for an unknown scenario, id or a pair
    across scenarios.
    """
    keys, definitions, skipped = _scenarios_of(listing)
    explicit_pairs = list(pairs or [])
    chosen_ids = list(dict.fromkeys([*(experiments or []), *(i for pair in explicit_pairs for i in pair)]))
    _unknown("experiment", chosen_ids, keys, "`mucomp list` shows the stored experiments' ids")
    for a, b in explicit_pairs:
        if keys[a] != keys[b]:
            raise ReportSelectionError(f"pair {a}:{b} joins two scenarios ({keys[a]} and {keys[b]}); "
                                       "pair experiments of one scenario")
    if scenarios:
        _unknown("scenario", scenarios, definitions,
                 f"the store holds {', '.join(sorted(definitions)) or 'no experiments'}")
        wanted = list(dict.fromkeys(scenarios))
        outside = [i for i in chosen_ids if keys[i] not in wanted]
        if outside:
            raise ReportSelectionError(f"experiment {for_terminal(outside[0])} belongs to scenario {keys[outside[0]]}, "
                                       "which --scenario leaves out; name it too or leave the experiment out")
    elif chosen_ids:
        wanted = list(dict.fromkeys(keys[i] for i in chosen_ids))
    else:
        wanted = list(definitions)
    narrowed = set(chosen_ids) if experiments else None
    plans = []
    for key in wanted:
        definition = definitions[key]
        def kept(row: Mapping) -> bool:
            return narrowed is None or _is_reference(row) or row["id"] in narrowed

        rows = [dict(r) for r in listing if keys.get(str(r["id"])) == key and kept(r)]
        family = [dict(r) for r in listing if str(r["id"]) in keys and kept(r)
                  and _family(definitions[keys[str(r["id"])]]) == _family(definition)]
        references = {r["kind"]: str(r["id"]) for r in rows if r.get("kind") in REFERENCE_KINDS}  # newest wins
        plan = ScenarioPlan(key, definition, rows, family, references)
        plan.pairs = ([Pair(a, b) for a, b in explicit_pairs if keys[a] == key] if explicit_pairs
                      else default_pairs(rows, references))
        plans.append(plan)
    return ReportPlan(plans, skipped)
