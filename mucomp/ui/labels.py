"""Labels that tell experiments apart in the pickers (Model A / B, Details, Build's base), from a
listing alone (no Streamlit): eight runs of one method are not eight "Gradient ascent (GA) · id"."""

from __future__ import annotations

from collections.abc import Sequence

from mucomp.catalogue import method_label
from mucomp.groups import differing_params, hyper_value
from mucomp.results.access import base_label, experiment_label
from mucomp.results.screen import seeds_label

#: How a hyper-parameter is named in a label (the method's own keep their names).
SHORT_NAMES = {"epochs": "epochs", "lr": "lr", "batch_size": "batch"}


def _value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def experiment_labels(listing: Sequence[dict]) -> dict[str, str]:
    """Experiment id -> its label in the pickers, in listing order.

    The references keep their names (``"Original"``); an unlearned experiment reads
    ``"<method> · <settings> · <seeds> · <id>"``: only the hyper-parameters (and the base) whose
    values differ among the listing's experiments of the same method, then its seeds as Screen's
    Seeds column writes them (``seeds t0 u1``: training, unlearning seed). Uploads and published models
    keep ``"<label> · <id>"``.
    """
    by_method: dict[str, list[dict]] = {}
    for entry in listing:
        if entry.get("kind") == "unlearned" and isinstance(entry.get("config"), dict):
            by_method.setdefault(str(entry["config"].get("method")), []).append(entry["config"])
    labels = {}
    for entry in listing:
        if entry.get("kind") != "unlearned" or not isinstance(entry.get("config"), dict):
            labels[entry["id"]] = experiment_label(entry)
            continue
        config = entry["config"]
        siblings = by_method[str(config.get("method"))]
        parts = [f"{SHORT_NAMES.get(name, name)} {_value_text(hyper_value(config, name))}"
                 for name in differing_params(siblings)]
        if len({str(c.get("base")) for c in siblings}) > 1:
            parts.append(f"from {base_label(config.get('base'))}")
        settings = ", ".join(parts)
        seeds = f"seeds {seeds_label(entry)}"
        labels[entry["id"]] = " · ".join(p for p in (method_label(entry), settings, seeds, entry["id"]) if p)
    return labels
