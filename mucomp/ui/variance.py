"""Replicates on the Screen page, as plain pandas and plotly (no Streamlit): the group table
(mean ± 95 % interval per metric), the spread of each method across seeds, rank stability and the
hyper-parameter sweep heatmap. Statistics come from :mod:`mucomp.groups`; nothing is computed here
but presentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mucomp.groups import metric_direction, rank_stability, resolved

#: Metrics of the group table: stored key -> column name (as in the experiment table).
GROUP_METRICS = {"UA": "UA", "RA": "RA", "TUA": "TUA", "TRA": "TRA", "RT": "RT", "PS": "PS", "MIA_efficacy": "MIA",
                 "avg_gap": "Avg. Gap", "leakage_js": "Leakage JS"}
PERCENT_KEYS = ("UA", "RA", "TUA", "TRA", "PS", "MIA_efficacy", "avg_gap")
TEMPLATE = "plotly_white"
#: Half-width of the seed points' horizontal jitter around their group, in group slots.
JITTER = 0.12
#: The spread figure's x axis spans at least this many group slots, so that the jitter stays a
#: narrow band (at most 2 * JITTER / MIN_SLOTS of the width) however few groups there are.
MIN_SLOTS = 5


def spread_x_range(groups: int) -> list[float]:
    """The spread figure's x range for ``groups`` groups at 0 .. groups - 1: half a slot beyond
    each end, widened to :data:`MIN_SLOTS` slots around their centre (one group sits in the middle)."""
    centre = (max(groups, 1) - 1) / 2.0
    half = max(groups, MIN_SLOTS) / 2.0
    return [centre - half, centre + half]


def interval_text(entry: dict | None, key: str) -> str:
    """``mean ± half-width`` of one :func:`mucomp.groups.t_interval` (percent for fractions,
    seconds for RT); ``—`` when there is no value, the mean alone for a single replicate."""
    if not entry or entry.get("mean") is None:
        return "—"
    percent = key in PERCENT_KEYS
    scale, unit = (100.0, "%") if percent else (1.0, " s" if key == "RT" else "")
    mean = f"{entry['mean'] * scale:.1f}" if percent else f"{entry['mean'] * scale:.3g}"
    if entry.get("half_width") is None:
        return mean + unit
    half = f"{entry['half_width'] * scale:.1f}" if percent else f"{entry['half_width'] * scale:.2g}"
    return f"{mean} ± {half}{unit}"


def not_counted_text(summary: dict) -> str:
    """Which members of a group its statistics leave out, in words (``"—"`` when none): repeats of
    a seed pair already counted, and members computed against another Retrained model."""
    parts = []
    if summary.get("repeats"):
        parts.append(f"{len(summary['repeats'])} repeat(s) of a seed pair")
    if summary.get("apart"):
        parts.append(f"{len(summary['apart'])} against another Retrained model")
    return "; ".join(parts) or "—"


def member_frame(summary: dict, members: Sequence[dict]) -> pd.DataFrame:
    """The members of one group as Screen lists them: id, seeds, whether the group's statistics
    count it (``"yes"``, ``"repeat of <id>"``, ``"no: another Retrained model"``), the figures."""
    repeats, apart = summary.get("repeats") or {}, summary.get("apart") or {}

    def counted(identifier: str) -> str:
        if identifier in apart:
            return "no: another Retrained model"
        return f"repeat of {repeats[identifier]}" if identifier in repeats else "yes"

    return pd.DataFrame([{"ID": r["id"], "Training seed": r["config"].get("train_seed"),
                          "Unlearning seed": r["config"].get("unlearn_seed"), "Counted": counted(r["id"]),
                          **{name: r["metrics"].get(key) for key, name in GROUP_METRICS.items()}}
                         for r in members])


def group_frame(summaries: Sequence[dict], metric: str = "UA") -> pd.DataFrame:
    """One row per group: ``Group``, ``Method``, ``Hyper-parameters``, ``n``, ``Seeds``, each of
    :data:`GROUP_METRICS` as ``mean ± half-width`` text, the gap of ``metric`` to the Retrained
    model (same training seed) and ``vs best``: whether the group's ``metric`` interval is apart
    from the best group's ("resolved"), overlaps it ("not resolved") or is the best. Where the
    forget set's reading is "closest to the Retrained model" (forgotten images), the best group
    has the smallest mean gap and the intervals compared are those of the gap."""
    best = _best_group(summaries, metric)
    by_gap = bool(summaries) and _by_gap(summaries, metric)
    rows = []
    for summary in summaries:
        config = summary["config"]
        hyper = ", ".join(f"{k} {config[k]:g}" if isinstance(config.get(k), float) else f"{k} {config[k]}"
                          for k in ("epochs", "lr", "batch_size") if config.get(k) is not None)
        hyper += "".join(f", {k} {v}" for k, v in sorted((config.get("params") or {}).items()))
        row = {"Group": summary["group"], "Method": summary.get("method_label") or summary.get("method"),
               "Hyper-parameters": hyper, "n": summary["n"],
               "Seeds": f"train {_seeds_text(summary['train_seeds'])} · unlearn {_seeds_text(summary['seeds'])}",
               "Not counted": not_counted_text(summary)}
        for key, column in GROUP_METRICS.items():
            row[column] = interval_text(summary["metrics"].get(key), key)
        entry = summary["metrics"].get(metric) or {}
        row[f"{GROUP_METRICS.get(metric, metric)} − Retrained"] = interval_text(entry.get("gap"), metric)
        if best is None or summary is best:
            row["vs best"] = "best" if summary is best else "—"
        else:
            theirs = best["metrics"].get(metric) or {}
            apart = resolved(entry.get("gap") or {}, theirs.get("gap") or {}) if by_gap else resolved(entry, theirs)
            row["vs best"] = "n < 2" if apart is None else ("resolved" if apart else "not resolved")
        rows.append(row)
    return pd.DataFrame(rows)


def _seeds_text(seeds: Sequence[int]) -> str:
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)


def _by_gap(summaries: Sequence[dict], metric: str) -> bool:
    """Whether ``metric`` ranks by the gap to the Retrained model for these groups' forget set."""
    return metric_direction(metric, summaries[0].get("forget")) == "retrained"


def _best_group(summaries: Sequence[dict], metric: str) -> dict | None:
    if not summaries:
        return None
    if _by_gap(summaries, metric):
        scored = [s for s in summaries if ((s["metrics"].get(metric) or {}).get("gap") or {}).get("mean") is not None]
        return min(scored, key=lambda s: abs(s["metrics"][metric]["gap"]["mean"])) if scored else None
    scored = [s for s in summaries if (s["metrics"].get(metric) or {}).get("mean") is not None]
    if not scored:
        return None
    higher = metric_direction(metric, summaries[0].get("forget")) != "lower"
    return (max if higher else min)(scored, key=lambda s: s["metrics"][metric]["mean"])


def spread_figure(summaries: Sequence[dict], metric: str, members: dict[str, Sequence[dict]]) -> go.Figure:
    """Per group, every replicate's ``metric`` (points, jittered by at most :data:`JITTER` of a
    group's slot on an axis of at least :data:`MIN_SLOTS` slots) with the mean and its 95 % interval
    (bar): how far apart seeds put one configuration. ``members``: group id -> its results."""
    fig = go.Figure()
    percent = metric in PERCENT_KEYS
    scale = 100.0 if percent else 1.0
    for position, summary in enumerate(summaries):
        label = f"{summary.get('method_label') or summary.get('method')} · {summary['group'][-4:]}"
        values = [r["metrics"].get(metric) for r in members.get(summary["group"], [])]
        values = [v * scale for v in values if v is not None]
        rng = np.random.default_rng(position)  # fixed jitter so reruns draw the same picture
        fig.add_trace(go.Scatter(
            x=(position + rng.uniform(-JITTER, JITTER, len(values))).tolist(), y=values, mode="markers", name=label,
            showlegend=False, marker={"size": 8, "opacity": 0.7},
            hovertemplate=f"{label}<br>%{{y:.3g}}<extra>one seed</extra>",
        ))
        entry = summary["metrics"].get(metric) or {}
        if entry.get("mean") is not None:
            half = (entry.get("half_width") or 0.0) * scale
            fig.add_trace(go.Scatter(
                x=[position], y=[entry["mean"] * scale], mode="markers", showlegend=False,
                marker={"symbol": "line-ew", "size": 26, "line": {"width": 3, "color": "#111827"}},
                error_y={"type": "data", "array": [half], "visible": bool(entry.get("half_width"))},
                hovertemplate=f"{label}<br>mean %{{y:.3g}} ± {half:.2g} (95 % t, n = {entry['n']})<extra></extra>",
            ))
    name = GROUP_METRICS.get(metric, metric)
    fig.update_layout(template=TEMPLATE, title=f"{name} across seeds: replicates and mean ± 95 % interval",
                      margin={"l": 60, "r": 20, "t": 50, "b": 80}, height=380,
                      meta={"metric": metric, "groups": [s["group"] for s in summaries]})
    fig.update_xaxes(tickmode="array", tickvals=list(range(len(summaries))), range=spread_x_range(len(summaries)),
                     ticktext=[f"{s.get('method_label') or s.get('method')}<br>{s['group'][-4:]}" for s in summaries])
    fig.update_yaxes(title=f"{name} (%)" if percent else ("RT (s)" if metric == "RT" else name))
    return fig


def rank_frame(members: dict[str, Sequence[dict]], labels: dict[str, str], metric: str, *,
               forget: str | None = None, retrained: dict[int, float] | None = None) -> pd.DataFrame:
    """Rank stability of the groups by ``metric`` across the seed pairs they share: ``Group``,
    ``Method``, ``Ranked first`` (share of seed pairs), ``Mean rank``, ``Ranks`` (per seed pair),
    ``Seed pairs``; empty when no seed pair is shared by every group. ``forget`` / ``retrained``:
    the forget set and the Retrained model's value per training seed
    (:func:`mucomp.groups.rank_stability`)."""
    stability = rank_stability(members, metric, forget=forget, retrained=retrained)
    rows = [{"Group": gid, "Method": labels.get(gid, gid), "Ranked first": f"{entry['first']:.0%}",
             "Mean rank": round(entry["mean_rank"], 2), "Ranks": " ".join(str(r) for r in entry["ranks"]),
             "Seed pairs": entry["pairs"]} for gid, entry in stability.items()]
    return pd.DataFrame(rows).sort_values("Mean rank") if rows else pd.DataFrame(rows)


def sweep_figure(grid: dict, x_param: str, y_param: str, metric: str, title: str) -> go.Figure:
    """A heatmap of :func:`mucomp.groups.sweep_grid`: ``metric`` (group means) over two
    hyper-parameters; the text of each cell gives the value and the replicates behind it."""
    percent = metric in PERCENT_KEYS
    z = [[None if v is None else (v * 100.0 if percent else v) for v in row] for row in grid["z"]]
    text = [[("" if v is None else (f"{v:.1f}%" if percent else f"{v:.3g}")) + (f"<br>n={n}" if n else "")
             for v, n in zip(row, counts, strict=True)] for row, counts in zip(z, grid["n"], strict=True)]
    way = metric_direction(metric, grid.get("forget"))
    fig = go.Figure(go.Heatmap(
        x=[str(v) for v in grid["x"]], y=[str(v) for v in grid["y"]], z=z, text=text, texttemplate="%{text}",
        # Darker = better; a value to be read against the Retrained model's has no darker end.
        colorscale={"higher": "Blues", "lower": "Blues_r"}.get(way, "Greys"),
        colorbar={"title": {"text": GROUP_METRICS.get(metric, metric)
                            + ("<br>(vs Retrained)" if way == "retrained" else "")}},
        hovertemplate=f"{x_param} %{{x}}<br>{y_param} %{{y}}<br>%{{text}}<extra></extra>",
    ))
    fig.update_layout(template=TEMPLATE, title=title, height=360, margin={"l": 70, "r": 20, "t": 50, "b": 50},
                      meta={"metric": metric, "x": x_param, "y": y_param})
    fig.update_xaxes(title=x_param, type="category")
    fig.update_yaxes(title=y_param, type="category")
    return fig
