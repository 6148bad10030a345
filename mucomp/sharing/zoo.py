"""Published unlearned models: checkpoints other people made, stored beside your own experiments.

The comparator's co-authors publish unlearned ResNet-18 CIFAR-10 checkpoints made from the same
Original file mucomp loads (jaeunglee/resnet18-cifar10-unlearning), one file per forget class.
The table (``published_unlearned_models.json``, shipped in the package; read from the model cards)
lists each repository with its file-name pattern, method, recipe and the cards' forget-class and
retain-class test accuracies.

:func:`pull` downloads one file through ``hf_hub_download`` (or finds it in
``$MUCOMP_REFERENCE_DIR``, as the references do), reads it with ``weights_only`` and loads it
strictly into the scenario's architecture, evaluates it with the same single pass as any model,
and stores it as a ``published`` experiment whose config names the method, the recipe and the
source; its ``published_check`` block compares the measured TUA / TRA with the card's (the
tolerance of :mod:`mucomp.reference_check`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - type hints only
    from mucomp.data import Scenario
    from mucomp.progress import ProgressFn
    from mucomp.store import Experiment, ExperimentStore


class ZooError(ValueError):
    """A request the zoo cannot serve; the message says what to do."""


@dataclass(frozen=True)
class PublishedModel:
    """One repository of published unlearned checkpoints (one file per forget class)."""

    repo: str
    method: str
    filename: str  # with ``{k}`` for the forget class
    dataset: str
    recipe: str
    published: dict[str, dict[str, float]]  # forget class (str) -> card accuracies (fractions)

    def __post_init__(self) -> None:
        """Every card accuracy is a fraction in [0, 1]; ZooError names the repo, class and field."""
        for forget_class, card in self.published.items():
            if not isinstance(card, dict):
                raise ZooError(f"the model card figures of {self.repo}, class {forget_class}, are not a mapping of "
                               "field names to numbers")
            for name, value in card.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if not number or not 0.0 <= value <= 1.0:  # NaN fails the range too
                    raise ZooError(f"the model card value {name} of {self.repo}, class {forget_class}, is "
                                   f"{str(value)[:40]!r}: not an accuracy (a number from 0 to 1)")

    def file_for(self, forget_class: int) -> str:
        return self.filename.format(k=int(forget_class))

    def as_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "method": self.method, "filename": self.filename, "dataset": self.dataset,
                "recipe": self.recipe, "published": self.published}


@lru_cache(maxsize=1)
def catalogue() -> tuple[PublishedModel, ...]:
    """Every known repository of published unlearned models, in table order."""
    text = resources.files("mucomp").joinpath("published_unlearned_models.json").read_text(encoding="utf-8")
    return tuple(PublishedModel(**entry) for entry in json.loads(text)["models"])


def find(repo: str) -> PublishedModel:
    """The catalogue entry of ``repo`` (exact name, case-insensitive)."""
    for entry in catalogue():
        if entry.repo.lower() == str(repo).strip().lower():
            return entry
    known = ", ".join(e.repo for e in catalogue())
    raise ZooError(f"{repo!r} is not in mucomp's table of published unlearned models; use one of {known}")


def published_check(entry: PublishedModel, forget_class: int, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The card's forget-class and retain-class test accuracies beside the measured TUA / TRA
    (:func:`mucomp.reference_check.compare_figures`); None when the card gives none."""
    from mucomp.reference_check import compare_figures

    card = entry.published.get(str(int(forget_class)))
    if card is None:
        return None
    published = {"TUA": float(card["forget_test_accuracy"]), "TRA": float(card["retain_test_accuracy"])}
    measured = {"TUA": float(metrics["TUA"]), "TRA": float(metrics["TRA"])}
    return compare_figures(entry.file_for(forget_class), published, measured, dict.fromkeys(published, "its model card"))


def pull(
    repo: str,
    scenario: Scenario,
    store: ExperimentStore,
    *,
    owner: str | None = None,
    progress: ProgressFn | None = None,
) -> Experiment:
    """Download, check, evaluate and store the published model of ``repo`` for ``scenario``.

    Raises :class:`ZooError` for a repository or data set the table does not serve,
    :class:`mucomp.references.ReferenceUnavailableError` when the file cannot be fetched, and
    ValueError / :class:`mucomp.models.StateDictMismatchError` for a file that is unreadable, too
    large (packed or unpacked), of another architecture or whose weights hold NaN or infinite
    values (:func:`mucomp.references.load_checkpoint`: all before anything is evaluated); nothing
    is stored then.
    """
    # Here, not at import: listing the catalogue (mucomp zoo list, the Build page) needs no torch.
    from mucomp.experiment import store_custom_model
    from mucomp.references import download_checkpoint, load_checkpoint

    entry = find(repo)
    if scenario.dataset != entry.dataset:
        raise ZooError(f"{entry.repo} holds {entry.dataset} models; choose the {entry.dataset} scenario")
    if scenario.forget_class is None:
        raise ZooError(f"{entry.repo} holds models that forgot one class; choose a forget set class:K, not "
                       f"{scenario.forget_set.text}")
    if scenario.arch != scenario.spec.arch:
        raise ZooError(f"{entry.repo} holds {scenario.spec.arch} models; choose the {scenario.spec.arch} architecture, "
                       f"not {scenario.arch}")
    filename = entry.file_for(scenario.forget_class)
    path = download_checkpoint(entry.repo, filename)
    spec = scenario.spec
    model = load_checkpoint(path, spec.arch, spec.num_classes)
    config = {"method": "published", "params": {}, "source": f"{entry.repo}/{filename}",
              "published_method": entry.method, "recipe": entry.recipe}

    def checks(metrics: dict) -> dict:
        check = published_check(entry, scenario.forget_class, metrics)
        return {} if check is None else {"published_check": check}

    return store_custom_model(model, scenario, store, label=f"{entry.method} (published)", owner=owner,
                              progress=progress, kind="published", config=config, checks=checks)
