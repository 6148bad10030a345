"""Replicate groups: experiments that differ only in their seeds, and their statistics (torch-free).

Two experiments are *replicates* when their configs are equal once the training seed
(``train_seed``, which trains the references) and the unlearning seed (``unlearn_seed``) are left out.
They share a **group** id (:func:`group_id`), stored as the result's top-level ``group``.

A group's figure is the mean of its members with a 95 % Student-t confidence interval (n - 1
degrees of freedom; :func:`t_interval`), the definition in docs/definitions.md ("Forget sets and seeds").
:func:`summarize` gives it for every metric; :func:`rank_stability` says how often each method of
a comparison ranks first across seeds, and :func:`resolved` whether two intervals are apart.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence

from mucomp.catalogue import BY_KEY, HIGHER_IS_BETTER, SUMMARY_METRICS, direction, method_label
from mucomp.forget_sets import stored_forget_text

#: Config keys that vary between replicates of one group (``seed``: the unlearning seed's name
#: before schema version 4).
SEED_KEYS = ("unlearn_seed", "seed", "train_seed")
CONFIDENCE = 0.95


def group_id(config: dict) -> str:
    """A stable id of ``config`` without its seeds: ``g-`` and 10 hex digits.

    Equal for configs that differ only in :data:`SEED_KEYS`; JSON-canonical (sorted keys), so the
    order of keys or of a dict's entries never changes it.
    """
    rest = {key: value for key, value in config.items() if key not in SEED_KEYS}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str)
    return "g-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def t_interval(values: Iterable[float | None], confidence: float = CONFIDENCE) -> dict:
    """Mean and two-sided Student-t interval of the finite values (None and NaN left out).

    Returns ``{"mean", "low", "high", "half_width", "std", "n"}``; ``std`` uses n - 1. With one
    value the interval is unknown (``low`` = ``high`` = None); with none every figure is None.
    """
    from scipy import stats

    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "half_width": None, "std": None, "n": 0}
    mean = sum(finite) / n
    if n == 1:
        return {"mean": mean, "low": None, "high": None, "half_width": None, "std": None, "n": 1}
    if max(finite) == min(finite):  # equal replicates: no spread (not rounding noise of the mean)
        return {"mean": finite[0], "low": finite[0], "high": finite[0], "half_width": 0.0, "std": 0.0, "n": n}
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "std": std, "n": n}


def summarize(
    results: Sequence[dict],
    metrics: Sequence[str] = SUMMARY_METRICS,
    retrained_by_train_seed: dict[int, dict] | None = None,
) -> dict[str, dict]:
    """Per metric, :func:`t_interval` over the members' ``metrics`` (metrics no member has are left
    out), one value per distinct replicate (:func:`distinct_replicates`). With
    ``retrained_by_train_seed`` (training seed -> that seed's Retrained ``metrics``), each entry
    also has ``gap``: the interval of member - Retrained of the member's training seed."""
    results = distinct_replicates(results)
    out = {}
    for metric in metrics:
        values = [r.get("metrics", {}).get(metric) for r in results]
        if all(v is None for v in values):
            continue
        entry = t_interval(values)
        entry["values"] = values
        if retrained_by_train_seed is not None:
            gaps = []
            for result, value in zip(results, values, strict=True):
                reference = retrained_by_train_seed.get(train_seed_of(result.get("config", {})), {})
                ref_value = reference.get(metric)
                gaps.append(None if value is None or ref_value is None else value - ref_value)
            entry["gap"] = t_interval(gaps)
        out[metric] = entry
    return out


def train_seed_of(config: dict) -> int:
    """A config's training seed (results older than schema 3 used one ``seed`` for both)."""
    return int(config.get("train_seed", unlearn_seed_of(config)))


def unlearn_seed_of(config: dict) -> int:
    """The unlearning seed of a stored config (``seed`` in results of schema version 3)."""
    return int(config.get("unlearn_seed", config.get("seed", 0)))


def resolved(a: dict, b: dict) -> bool | None:
    """Whether two :func:`t_interval` results are apart (the intervals do not overlap); None when
    either interval is unknown (fewer than two values)."""
    if None in (a.get("low"), a.get("high"), b.get("low"), b.get("high")):
        return None
    return a["high"] < b["low"] or b["high"] < a["low"]


def metric_direction(metric: str, forget: str | None = None) -> str:
    """How a group's ``metric`` (stored key) ranks for the forget set ``forget`` (canonical text):
    ``"higher"``, ``"lower"`` or ``"retrained"`` (closest to the Retrained model's value is best:
    UA, TUA and MIA-Efficacy of forgotten images, :func:`mucomp.catalogue.direction`)."""
    column = BY_KEY[metric].column if metric in BY_KEY else metric
    found = direction(column, forget)
    if found is not None:
        return found
    return "higher" if HIGHER_IS_BETTER.get(metric, True) else "lower"


def retrained_by_train_seed(entries: Sequence[dict], metric: str) -> dict[int, float]:
    """``{training seed: metric}`` of the stored Retrained models among listing ``entries`` (one
    scenario's, every training seed): what "closest to the Retrained model" ranks against."""
    found = {}
    for entry in entries:
        value = (entry.get("metrics") or {}).get(metric)
        if entry.get("kind") == "retrained" and value is not None:
            found[train_seed_of(entry.get("config", {}))] = float(value)
    return found


def rank_stability(groups: dict[str, Sequence[dict]], metric: str, *, forget: str | None = None,
                   retrained: dict[int, float] | None = None) -> dict[str, dict]:
    """How each group (e.g. one per method) ranks by ``metric`` across seeds.

    Members are matched across groups by their (training seed, unlearning seed); only seed pairs
    that every group has count. Rank 1 is the best (:func:`metric_direction` for the forget set
    ``forget``; where that is "closest to the Retrained model", by the distance to ``retrained``,
    the Retrained model's value per training seed, and members without one are left out). Ties
    share the better rank. Returns per group ``{"first": share of seed pairs ranked first,
    "mean_rank", "ranks": [rank per seed pair], "pairs": number of seed pairs}``; empty when no
    pair is shared.
    """
    way = metric_direction(metric, forget)
    by_seed: dict[str, dict[tuple[int, int], float]] = {}
    for label, members in groups.items():
        table = {}
        for result in members:
            value = result.get("metrics", {}).get(metric)
            config = result.get("config", {})
            seed = train_seed_of(config)
            if value is None:
                continue
            if way == "retrained":
                if retrained is None or seed not in retrained:
                    continue
                value = -abs(float(value) - retrained[seed])  # closer is better: higher scores rank first
            table[(seed, unlearn_seed_of(config))] = float(value)
        by_seed[label] = table
    higher = way != "lower"
    shared = sorted(set.intersection(*(set(t) for t in by_seed.values()))) if by_seed else []
    if not shared:
        return {}
    ranks: dict[str, list[int]] = {label: [] for label in groups}
    for pair in shared:
        scores = {label: by_seed[label][pair] for label in groups}
        for label, score in scores.items():
            better = sum(1 for other in scores.values() if (other > score if higher else other < score))
            ranks[label].append(better + 1)
    return {
        label: {"first": sum(r == 1 for r in values) / len(shared), "mean_rank": sum(values) / len(shared),
                "ranks": values, "pairs": len(shared)}
        for label, values in ranks.items()
    }


def _scenario_of(config: dict, train_seed: int | None = None) -> tuple:
    seed = unlearn_seed_of(config)
    return (config.get("dataset"), stored_forget_text(config),
            config.get("data_seed", seed), config.get("arch"),
            train_seed_of(config) if train_seed is None else train_seed)


def distinct_replicates(results: Sequence[dict]) -> list[dict]:
    """``results`` with one member per (training seed, unlearning seed) pair: the first of each
    (a pair run twice is one replicate, whatever number of copies the store holds)."""
    seen: set[tuple[int, int]] = set()
    out = []
    for result in results:
        pair = seed_pair(result.get("config", {}))
        if pair not in seen:
            seen.add(pair)
            out.append(result)
    return out


def seed_pair(config: dict) -> tuple[int, int]:
    """A member's replicate identity: (training seed, unlearning seed). Two experiments of one group
    with the same pair are the same replicate run twice, not two replicates."""
    return train_seed_of(config), unlearn_seed_of(config)


def recorded_reference(result: dict, kind: str = "retrained") -> str | None:
    """The weights hash (``weights_sha256``) of the ``kind`` reference a result's figures were
    computed against, as it recorded them (``references``); None when it recorded none (results
    made before experiments recorded their references)."""
    references = result.get("references")
    block = references.get(kind) if isinstance(references, dict) else None
    value = block.get("weights_sha256") if isinstance(block, dict) else None
    return value if isinstance(value, str) else None


def stored_references(entries: Sequence[dict]) -> dict[tuple, frozenset[str]]:
    """Scenario (as :func:`_scenario_of` keys it) -> the weights hashes of every Retrained model
    stored for it among listing ``entries`` (reference results record theirs in
    ``config.weights_sha256``; a store can hold several, e.g. trained with another thread count)."""
    out: dict[tuple, set[str]] = {}
    for entry in entries:
        if entry.get("kind") == "retrained":
            digest = entry.get("config", {}).get("weights_sha256")
            if isinstance(digest, str):
                out.setdefault(_scenario_of(entry["config"]), set()).add(digest)
    return {scenario: frozenset(digests) for scenario, digests in out.items()}


def reference_conflict(result: dict, references: dict[tuple, frozenset[str]]) -> str | None:
    """Why ``result`` cannot be compared with this store's experiments, or None.

    ``references``: :func:`stored_references` of the store. A result that recorded the Retrained
    model it was computed against, in a scenario for which the store holds Retrained models but not
    that one, measured its gaps, privacy score and attack against another model: its figures must
    not be pooled with (or imported beside) the store's.
    """
    recorded = recorded_reference(result)
    stored = references.get(_scenario_of(result.get("config", {})))
    if recorded is None or not stored or recorded in stored:
        return None
    held = ", ".join(sorted(digest[:12] for digest in stored))
    return (f"it was computed against a Retrained model with weights {recorded[:12]}, and this store's "
            f"Retrained model of that scenario has weights {held}: its figures compare with another model")


def _other_reference(items: Sequence[dict]) -> dict[str, str]:
    """Members of one group computed against another Retrained model than its first member that
    recorded one (``{id: reason}``): a group never pools across references. Members that recorded
    none (results made before mucomp recorded them) pool only with each other."""
    chosen = next((digest for item in items if (digest := recorded_reference(item)) is not None), None)
    if chosen is None:
        return {}
    out = {}
    for item in items:
        digest = recorded_reference(item)
        if digest is None:
            out[item["id"]] = ("it recorded no Retrained model (made before mucomp recorded them), and the group's "
                               f"other members were computed against {chosen[:12]}")
        elif digest != chosen:
            out[item["id"]] = (f"it was computed against a Retrained model with weights {digest[:12]}, and the "
                               f"group's first member against {chosen[:12]}: a group never pools across references")
    return out


def group_summaries(entries: Sequence[dict], *, group: str | None = None, method: str | None = None) -> list[dict]:
    """One summary per replicate group among listing ``entries`` (dicts with ``kind``, ``group``,
    ``config``, ``metrics``, ``id``; e.g. ``ExperimentStore.entries()``), oldest group first.

    ``group`` / ``method`` keep only that group / that method's groups. Each summary:
    ``{"group", "method", "method_label", "dataset", "forget", "config" (the first member's,
    without seeds), "n", "ids", "counted", "repeats", "apart", "train_seeds", "seeds", "metrics":
    summarize(...)}``. ``n`` is the number of distinct (training seed, unlearning seed) pairs: of
    members that share a pair only the first stored counts (the others are in ``repeats``, as
    ``{id: the id counted instead}``); members computed against another Retrained model than the
    store's (:func:`reference_conflict`) count in no statistic (``apart``: ``{id: reason}``). The
    gaps are taken to the stored Retrained model of each member's own training seed (same data
    set, forget set, data seed and arch); each metric's entry says the ``n`` it averaged (members
    without the metric left out).
    """
    retrained = {_scenario_of(e["config"]): e.get("metrics", {}) for e in entries if e.get("kind") == "retrained"}
    references = stored_references(entries)
    members: dict[str, list[dict]] = {}
    for entry in entries:
        if entry.get("kind") != "unlearned" or not entry.get("group"):
            continue
        if group is not None and entry["group"] != group:
            continue
        if method is not None and entry.get("config", {}).get("method") != method:
            continue
        members.setdefault(entry["group"], []).append(entry)
    return [_group_summary(gid, items, retrained, references) for gid, items in members.items()]


def _group_summary(gid: str, items: list[dict], retrained: dict[tuple, dict], references: dict[tuple, str]) -> dict:
    apart = {item["id"]: reason for item in items if (reason := reference_conflict(item, references))}
    apart.update(_other_reference([item for item in items if item["id"] not in apart]))
    kept = distinct_replicates([item for item in items if item["id"] not in apart])
    first_of = {seed_pair(item["config"]): item["id"] for item in kept}
    counted = {item["id"] for item in kept}
    repeats = {item["id"]: first_of[seed_pair(item.get("config", {}))] for item in items
               if item["id"] not in apart and item["id"] not in counted}
    first = items[0]["config"]
    gaps_to = {}
    for item in kept:
        seed = train_seed_of(item["config"])
        found = retrained.get(_scenario_of(item["config"], seed))
        if found is not None:
            gaps_to[seed] = found
    return {
        "group": gid,
        "method": first.get("method"),
        "method_label": method_label(items[0]),
        "dataset": first.get("dataset"),
        "forget": stored_forget_text(first),
        "config": {k: v for k, v in first.items() if k not in SEED_KEYS},
        "n": len(kept),
        "ids": [item["id"] for item in items],
        "counted": [item["id"] for item in kept],
        "repeats": repeats,
        "apart": apart,
        "train_seeds": sorted({train_seed_of(item["config"]) for item in kept}),
        "seeds": sorted({unlearn_seed_of(item["config"]) for item in kept}),
        "metrics": summarize(kept, retrained_by_train_seed=gaps_to),
    }


def sweep_grid(summaries: Sequence[dict], x_param: str, y_param: str, metric: str) -> dict:
    """One method's ``metric`` over two hyper-parameters, from its group summaries (group means).

    ``x_param`` / ``y_param``: ``epochs``, ``lr``, ``batch_size`` or a method parameter (``params``).
    Groups that differ in anything else than these two map to the same cell: the cell holds their
    mean, and ``cells`` counts the groups behind each. Returns ``{"x": sorted x values, "y": sorted
    y values, "z": [len(y)][len(x)] means or None, "n": [len(y)][len(x)] replicates behind each
    cell, "forget": the groups' forget set (how the metric reads)}``.
    """
    cells: dict[tuple, list[tuple[float, int]]] = {}
    for summary in summaries:
        entry = summary["metrics"].get(metric)
        if entry is None or entry["mean"] is None:
            continue
        key = (hyper_value(summary["config"], x_param), hyper_value(summary["config"], y_param))
        if None in key:
            continue
        cells.setdefault(key, []).append((entry["mean"], entry["n"]))
    xs = sorted({k[0] for k in cells}, key=_sort_key)
    ys = sorted({k[1] for k in cells}, key=_sort_key)
    z = [[None] * len(xs) for _ in ys]
    n = [[0] * len(xs) for _ in ys]
    for (xv, yv), items in cells.items():
        row, column = ys.index(yv), xs.index(xv)
        z[row][column] = sum(mean for mean, _ in items) / len(items)
        n[row][column] = sum(count for _, count in items)
    forget = summaries[0].get("forget") if summaries else None
    return {"x": xs, "y": ys, "z": z, "n": n, "forget": forget}


def _sort_key(value):
    return (0, float(value), "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0.0, str(value))


def members_of(entries: Sequence[dict], group: str) -> list[dict]:
    """The listing entries of replicate ``group``, in listing order."""
    return [entry for entry in entries if entry.get("group") == group]


def methods_by_count(summaries: Sequence[dict]) -> list[str]:
    """The methods of the groups, the one with the most configurations first (then by name)."""
    counts: dict[str, int] = {}
    for summary in summaries:
        if summary.get("method"):
            counts[summary["method"]] = counts.get(summary["method"], 0) + 1
    return sorted(counts, key=lambda m: (-counts[m], m))


def varied_params(summaries: Sequence[dict]) -> list[str]:
    """The hyper-parameters that differ between the groups (``epochs``, ``lr``, ``batch_size``,
    then the method's own, sorted): what a sweep can put on its axes."""
    return differing_params([g["config"] for g in summaries])


def differing_params(configs: Sequence[dict]) -> list[str]:
    """The hyper-parameters whose value differs among ``configs`` (stored config dicts): ``epochs``,
    ``lr``, ``batch_size``, then the method's own (``params``), sorted; empty for fewer than two."""
    params = [p for p in ("epochs", "lr", "batch_size") if len({str(c.get(p)) for c in configs}) > 1]
    own = {k for c in configs for k in (c.get("params") or {})}
    params += sorted(k for k in own if len({str((c.get("params") or {}).get(k)) for c in configs}) > 1)
    return params


def hyper_value(config: dict, name: str):
    """The value of hyper-parameter ``name`` in a stored config: a common one or the method's own."""
    return config.get(name, (config.get("params") or {}).get(name))


def same_runs(config: dict, entries: Sequence[dict]) -> list[str]:
    """The ids of the stored unlearned experiments among ``entries`` (listing entries) that ran
    ``config`` exactly: the same scenario, method, base and hyper-parameters (one :func:`group_id`)
    and the same seed pair (:func:`seed_pair`), in listing order.

    ``config`` must be complete as a run stores it, every hyper-parameter resolved (defaults filled
    in): running it again stores a copy that its group counts once (a repeat of one replicate).
    An entry's ``group`` is the store's, derived from its config at every read
    (:func:`mucomp.schema.with_group`), so no config is hashed here but ``config``.
    """
    gid, pair = group_id(config), seed_pair(config)
    return [entry["id"] for entry in entries
            if entry.get("kind") == "unlearned" and entry.get("group") == gid
            and isinstance(entry.get("config"), dict) and seed_pair(entry["config"]) == pair]
