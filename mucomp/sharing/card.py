"""The dataset card (``README.md``) of a Hub repo of mucomp experiments.

YAML front matter (``pretty_name``, ``tags``, ``viewer: false``: the folders are experiments, not a
table the dataset viewer could show), then two markdown tables: every experiment with its settings
and metrics, and every replicate group (experiments that differ only in their seeds) with the
mean ± half-width of the 95 % Student-t interval of each metric and n (:func:`mucomp.groups.summarize`).

The card is a pure function of the experiments' manifests (no dates, a fixed order), so pushing
the same experiments twice writes the same bytes. Every value that comes from a result (method
labels of uploads are free text) is escaped for a table cell.
"""

from __future__ import annotations

from typing import Any

#: The metrics the card shows, with their column titles (docs/definitions.md: accuracies are fractions).
CARD_METRICS = (("UA", "UA"), ("RA", "RA"), ("TUA", "TUA"), ("TRA", "TRA"), ("PS", "PS"),
                ("MIA_efficacy", "MIA"), ("avg_gap", "Avg. Gap"), ("RT", "RT (s)"))


def cell(value: Any) -> str:
    """Text safe inside a markdown table cell: pipes, backslashes, HTML and line breaks neutralised."""
    text = str(value)
    for raw, safe in (("\\", "\\\\"), ("|", "\\|"), ("<", "&lt;"), (">", "&gt;"), ("`", "'")):
        text = text.replace(raw, safe)
    return " ".join(text.split())


def number(value: Any, digits: int = 4) -> str:
    """A metric in a cell: fixed decimals, ``—`` when not measured."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value:.{digits}f}"


def check_card_values(manifest: dict, where: str) -> dict:
    """``manifest`` when every metric the card and the group statistics read (:data:`CARD_METRICS`,
    :data:`~mucomp.catalogue.SUMMARY_METRICS`) is a number or absent (null); else ValueError naming
    ``where`` and the field (a manifest read from a repo is someone else's file)."""
    from mucomp.catalogue import SUMMARY_METRICS

    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"{where}: metrics is not a mapping of metric names to numbers")
    for key in dict.fromkeys([*(k for k, _ in CARD_METRICS), *SUMMARY_METRICS]):
        value = metrics.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{where}: the metric {key} is {str(value)[:40]!r}, not a number")
    return manifest


def _digits(metric: str) -> int:
    return 2 if metric == "RT" else 4


def _interval(stats: dict | None, metric: str) -> str:
    if not stats or stats.get("mean") is None:
        return "—"
    digits = _digits(metric)
    if stats.get("half_width") is None:  # one replicate: no interval
        return number(stats["mean"], digits)
    return f"{number(stats['mean'], digits)} ± {number(stats['half_width'], digits)}"


def _order(manifest: dict) -> tuple:
    return (manifest.get("group") or "~", str(manifest.get("created_at") or ""), manifest["id"])


def _method(manifest: dict) -> str:
    return str(manifest.get("config", {}).get("method") or manifest.get("method_label") or manifest.get("kind"))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def dataset_card(repo_id: str, manifests: list[dict], *, version: str | None = None) -> str:
    """The whole ``README.md`` for ``repo_id`` holding the experiments of ``manifests`` (bundle
    manifests, see :mod:`mucomp.sharing.bundle`)."""
    import yaml

    from mucomp import __version__
    from mucomp.groups import distinct_replicates, summarize

    manifests = sorted((check_card_values(m, f"the manifest of {m.get('id')}") for m in manifests), key=_order)
    front = {"pretty_name": f"mucomp experiments: {repo_id}", "tags": ["machine-unlearning", "mucomp"],
             "viewer": False}
    groups: dict[str, list[dict]] = {}
    for manifest in manifests:
        if manifest.get("kind") == "unlearned" and manifest.get("group"):
            groups.setdefault(manifest["group"], []).append(manifest)
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=False).rstrip(), "---", "",
             "# mucomp experiments", "",
             f"{len(manifests)} machine-unlearning experiment(s) in {len(groups)} replicate group(s), pushed with "
             f"mucomp {version or __version__} (`mucomp push`). Each folder `<id>/` holds `result.json` (every "
             "stored figure), `bundle.json` (the reproducibility manifest: the config with every seed, the data and "
             "forget-set hashes, the references' identities, the code and the environment) and, when pushed with "
             "`--weights`, `model.safetensors`.", "",
             "Accuracies are fractions in [0, 1]: UA and TUA (forget set, train and test) lower is better, RA and "
             "TRA (retain set) higher is better; PS is the privacy score (1 = indistinguishable from retraining), "
             "MIA the SVC membership-inference efficacy, Avg. Gap the mean absolute gap to the Retrained model, "
             "RT the seconds of the unlearning loop.", "",
             "## Experiments", ""]
    header = ["ID", "Type", "Method", "Data set", "Forget", "Seeds (train / data / run)", "Epochs", "LR", "Batch",
              *(title for _, title in CARD_METRICS), "Group", "Weights"]
    rows = []
    for m in manifests:
        config, metrics = m.get("config", {}), m.get("metrics", {})
        seeds = " / ".join(cell(config.get(k, "—")) for k in ("train_seed", "data_seed", "seed"))
        rows.append([f"`{cell(m['id'])}`", cell(m.get("kind")), cell(_method(m)), cell(config.get("dataset")),
                     cell(config.get("forget") or config.get("forget_class")), seeds,
                     cell(config.get("epochs") if config.get("epochs") is not None else "—"),
                     cell(f"{config['lr']:g}" if isinstance(config.get("lr"), (int, float)) else "—"),
                     cell(config.get("batch_size") if config.get("batch_size") is not None else "—"),
                     *(number(metrics.get(key), _digits(key)) for key, _ in CARD_METRICS),
                     f"`{cell(m['group'])}`" if m.get("group") else "—",
                     "yes" if m.get("weights_included") else "no"])
    lines += _table(header, rows)
    lines += ["", "## Replicate groups", "",
              "Experiments that differ only in their seeds. Each figure is the mean ± the half-width of the 95 % "
              "Student-t interval (n - 1 degrees of freedom); a group of one has no interval.", ""]
    if groups:
        header = ["Group", "Method", "Data set", "Forget", "n", *(title for _, title in CARD_METRICS)]
        rows = []
        for group, members in groups.items():
            stats = summarize(members, metrics=[key for key, _ in CARD_METRICS])
            first = members[0].get("config", {})
            rows.append([f"`{cell(group)}`", cell(_method(members[0])), cell(first.get("dataset")),
                         cell(first.get("forget")), str(len(distinct_replicates(members))),
                         *(_interval(stats.get(key), key) for key, _ in CARD_METRICS)])
        lines += _table(header, rows)
    else:
        lines.append("No unlearned experiments, so no groups.")
    lines += ["", "## Use", "", "```",
              "# import the experiments pushed with --weights into your mucomp store",
              f"mucomp pull {repo_id}",
              "# or write every experiment as a reproducibility bundle, rerun it here and diff every metric",
              f"mucomp pull {repo_id} -o bundle.zip",
              "mucomp reproduce bundle.zip", "```", ""]
    return "\n".join(lines)
