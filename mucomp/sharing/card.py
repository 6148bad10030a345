"""The dataset card (``README.md``) of a Hub repo of mucomp experiments.

YAML front matter (``pretty_name``, ``tags``, ``viewer: false``: the folders are experiments, not a
table the dataset viewer could show), then two markdown tables: every experiment with its settings
and metrics, and every replicate group (experiments that differ only in their seeds) with the
mean ± half-width of the 95 % Student-t interval of each metric and n (:func:`mucomp.groups.summarize`).

The card is a pure function of the experiments' manifests (no dates, a fixed order), so pushing
the same experiments twice writes the same bytes. A manifest read back from a repo is someone
else's file: every text value from it goes through :func:`mucomp.display_text.for_markdown` (no
image, link, HTML, escape sequence or bidi override reaches the card) and the table-cell rules;
the group is recomputed from the config (:func:`mucomp.groups.group_id`), never read from the
stored ``group``, and a built-in method is named by the catalogue from its config
(:func:`mucomp.catalogue.method_label`), never by the free-text stored label.
"""

from __future__ import annotations

from typing import Any

from mucomp.catalogue import method_label
from mucomp.display_text import for_markdown
from mucomp.groups import SEED_KEYS, distinct_replicates, group_id, summarize, train_seed_of, unlearn_seed_of
from mucomp.names import ID_PATTERN

#: The metrics the card shows, with their column titles (docs/definitions.md: accuracies are fractions).
CARD_METRICS = (("UA", "UA"), ("RA", "RA"), ("TUA", "TUA"), ("TRA", "TRA"), ("PS", "PS"),
                ("MIA_efficacy", "MIA"), ("avg_gap", "Avg. Gap"), ("RT", "RT (s)"))


def cell(value: Any) -> str:
    """A value safe inside a markdown table cell. A number as it is (digits, sign, point: nothing to
    escape); any other value through :func:`~mucomp.display_text.for_markdown`, the one escaping
    helper (markdown, HTML, pipes and backslashes escaped; control characters, escape sequences and
    bidi overrides removed), with ``(`` escaped too so no link-shaped ``](http`` is left even in the
    raw text, and whitespace runs made one space so the cell stays on its row."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return " ".join(for_markdown(value).replace("(", "\\(").split())


def code(value: Any) -> str:
    """An id as a code span when it is one (:data:`~mucomp.names.ID_PATTERN`: nothing a code span
    would show differently), else as an escaped cell: inside backticks an escape shows literally."""
    text = str(value)
    return f"`{text}`" if ID_PATTERN.fullmatch(text) else cell(text)


def number(value: Any, digits: int = 4) -> str:
    """A metric in a cell: fixed decimals, ``—`` when not measured."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value:.{digits}f}"


def check_card_values(manifest: dict, where: str) -> dict:
    """``manifest`` when every metric the card and the group statistics read (:data:`CARD_METRICS`,
    :data:`~mucomp.catalogue.SUMMARY_METRICS`) is a number and every seed of its config an integer,
    or absent (null); else ValueError naming ``where`` and the field (a manifest read from a repo is
    someone else's file)."""
    from mucomp.catalogue import SUMMARY_METRICS

    metrics = manifest.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"{where}: metrics is not a mapping of metric names to numbers")
    for key in dict.fromkeys([*(k for k, _ in CARD_METRICS), *SUMMARY_METRICS]):
        value = metrics.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{where}: the metric {key} is {str(value)[:40]!r}, not a number")
    config = manifest.get("config")
    seeds = config if isinstance(config, dict) else {}
    for key in (*SEED_KEYS, "data_seed"):  # the seeds cell and the replicates read them as integers
        value = seeds.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"{where}: the seed {key} is {str(value)[:40]!r}, not an integer")
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


def _group(manifest: dict) -> str | None:
    """The replicate group of an unlearned experiment, recomputed from its config: the stored
    ``group`` is free to claim another method's group and merge into its statistics."""
    config = manifest.get("config")
    if manifest.get("kind") != "unlearned" or not isinstance(config, dict):
        return None
    return group_id(config)


def _order(manifest: dict) -> tuple:
    return (_group(manifest) or "~", str(manifest.get("created_at") or ""), str(manifest["id"]))


def _seeds(config: dict) -> str:
    """The seeds cell: training, data and unlearning seed (a config before schema 4 names the
    unlearning seed ``seed``; :func:`~mucomp.groups.train_seed_of` and
    :func:`~mucomp.groups.unlearn_seed_of` read either)."""
    return " / ".join(cell(seed) for seed in (train_seed_of(config), config.get("data_seed", "—"),
                                              unlearn_seed_of(config)))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def dataset_card(repo_id: str, manifests: list[dict], *, version: str | None = None) -> str:
    """The whole ``README.md`` for ``repo_id`` holding the experiments of ``manifests`` (bundle
    manifests, see :mod:`mucomp.sharing.bundle`)."""
    import yaml

    from mucomp import __version__

    manifests = sorted((check_card_values(m, f"the manifest of {m.get('id')}") for m in manifests), key=_order)
    front = {"pretty_name": f"mucomp experiments: {repo_id}", "tags": ["machine-unlearning", "mucomp"],
             "viewer": False}
    groups: dict[str, list[dict]] = {}
    for manifest in manifests:
        if (group := _group(manifest)) is not None:
            groups.setdefault(group, []).append(manifest)
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
        rows.append([code(m["id"]), cell(m.get("kind")), cell(method_label(m)), cell(config.get("dataset")),
                     cell(config.get("forget") or config.get("forget_class")), _seeds(config),
                     cell(config.get("epochs") if config.get("epochs") is not None else "—"),
                     f"{config['lr']:g}" if isinstance(config.get("lr"), (int, float)) else "—",
                     cell(config.get("batch_size") if config.get("batch_size") is not None else "—"),
                     *(number(metrics.get(key), _digits(key)) for key, _ in CARD_METRICS),
                     code(_group(m) or "—"),
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
            rows.append([code(group), cell(method_label(members[0])), cell(first.get("dataset")),
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
