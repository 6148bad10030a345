"""Does a loaded Hub reference reproduce what its publishers measured?

The published figures ship inside the package (``published_reference_accuracies.json``; they are
facts, collected from their sources):

- CIFAR-10 ResNet-18 (jaeunglee/resnet18-cifar10-unlearning): the model card's test accuracy of
  every file, and the published comparator's stored evaluation of each Original / Retrained file
  per forget class (gnueaj/Machine-Unlearning-Comparator: UA, RA, TUA, TRA, per-class accuracies);
- Fashion-MNIST ResNet-18 (Yurim0507/resnet18-fashionmnist-unlearning) and CIFAR-10 ViT-B/16
  (Yurim0507/vit-base-16-cifar10-unlearning): the model cards' test accuracies.

A card's test accuracy is over all test images for the Original and over the retained classes'
test images for a Retrained file. :func:`check_reference` compares these test accuracies with the
ones measured after mucomp's own evaluation pass; a difference above :data:`TOLERANCE` means the
architecture, the input normalisation or the data differ from the publishers', and the
scenario's figures are not comparable with published ones.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - type hints only
    from mucomp.evaluation import Evaluation

#: Largest accepted difference between a published and a measured test accuracy (1 point).
TOLERANCE = 0.01

#: Data set -> the block of the published table holding its Hub checkpoints.
TABLES = {"cifar10": "cifar10_resnet18", "fashion_mnist": "fashion_mnist_resnet18", "cifar10_vit": "cifar10_vit_b16"}
#: Data set -> every block of its Hub checkpoints, one per published architecture (the file
#: names differ between them, so a file's name says which block holds its figures).
DATASET_TABLES = {"cifar10": ("cifar10_resnet18", "cifar10_vit_b16"), "fashion_mnist": ("fashion_mnist_resnet18",)}


@lru_cache(maxsize=1)
def published_table() -> dict[str, Any]:
    """The shipped published figures (parsed once)."""
    text = resources.files("mucomp").joinpath("published_reference_accuracies.json").read_text(encoding="utf-8")
    return json.loads(text)


def published_figures(dataset: str, kind: str, forget_class: int, filename: str) -> dict[str, float]:
    """The published test accuracies of one reference file: ``{figure name: fraction}``.

    ``"card test accuracy"`` where the model card gives it; for the CIFAR-10 ResNet-18 files
    also the comparator's ``"TUA"`` and ``"TRA"`` of that scenario (the ViT-B/16 files have their
    card only). The block is the one whose card lists ``filename``. Empty when nothing was
    published for the file.
    """
    table = published_table()
    blocks = [table.get(name, {}) for name in DATASET_TABLES.get(dataset, ())]
    listing = [b for b in blocks if filename in b.get("card_test_accuracy", {})]
    # A file no card lists falls back to the data set's default block (its comparator figures).
    block = listing[0] if listing else table.get(TABLES.get(dataset, ""), {})
    figures = {}
    card = block.get("card_test_accuracy", {}).get(filename)
    if card is not None:
        figures["card test accuracy"] = float(card)
    stored = block.get("comparator_evaluation", {}).get(str(forget_class), {}).get(kind)
    if stored is not None:
        figures["TUA"] = float(stored["TUA"])
        figures["TRA"] = float(stored["TRA"])
    return figures


def measured_test_accuracy(test_eval: Evaluation, kind: str, forget_class: int) -> float:
    """Accuracy over the test images a card measures: all of them for the Original, those of the
    retained classes for a Retrained model (a fraction in [0, 1])."""
    labels, predictions = np.asarray(test_eval.labels), np.asarray(test_eval.predictions)
    keep = np.ones(labels.shape, dtype=bool) if kind == "original" else labels != forget_class
    return float((predictions[keep] == labels[keep]).mean()) if keep.any() else float("nan")


def check_reference(
    dataset: str,
    kind: str,
    forget_class: int,
    filename: str,
    test_eval: Evaluation,
    metrics: dict[str, Any],
) -> dict[str, Any] | None:
    """Compare one loaded Hub reference with its published test accuracies.

    ``test_eval``: the reference's test-split evaluation; ``metrics``: its metrics (TUA, TRA).
    Returns None when nothing was published for ``filename``; else ``{"file", "tolerance",
    "figures": [{"name", "published", "measured", "difference"}], "matches": bool, "message":
    str}``, where ``matches`` is False as soon as one test accuracy differs by more than
    :data:`TOLERANCE` and ``message`` says so in plain words.
    """
    published = published_figures(dataset, kind, forget_class, filename)
    if not published:
        return None
    measured = {
        "card test accuracy": measured_test_accuracy(test_eval, kind, forget_class),
        "TUA": float(metrics["TUA"]),
        "TRA": float(metrics["TRA"]),
    }
    sources = {name: "its model card" if name == "card test accuracy" else "the published comparator" for name in published}
    return compare_figures(filename, published, measured, sources)


def compare_figures(
    filename: str, published: dict[str, float], measured: dict[str, float], sources: dict[str, str]
) -> dict[str, Any]:
    """The check block of one file: each published figure beside the measured one (fractions).

    ``sources`` names where each published figure comes from (for the message). ``matches`` is
    False as soon as one figure differs by more than :data:`TOLERANCE` (or was not measured).
    """
    figures = [
        {"name": name, "published": value, "measured": measured[name], "difference": measured[name] - value}
        for name, value in published.items()
    ]
    worst = max(figures, key=lambda f: abs(f["difference"]) if np.isfinite(f["difference"]) else np.inf)
    matches = bool(np.isfinite(worst["difference"]) and abs(worst["difference"]) <= TOLERANCE)
    if matches:
        message = (f"{filename} reproduces its published test accuracy (largest difference "
                   f"{abs(worst['difference']) * 100:.1f} points, {worst['name']}).")
    else:
        message = (
            f"{filename} does not reproduce what its publishers measured: {worst['name']} "
            f"{worst['measured']:.3f} here, {worst['published']:.3f} in {sources[worst['name']]} "
            f"({abs(worst['difference']) * 100:.1f} points apart; the tolerance is {TOLERANCE * 100:.0f}). "
            "The architecture, the input normalisation or the data differ from the publishers'; this "
            "scenario's figures are not comparable with published ones."
        )
    return {"file": filename, "tolerance": TOLERANCE, "figures": figures, "matches": matches, "message": message}
