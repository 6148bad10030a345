"""Issue 29, round two: the comparator's SalUn as its own method, FT's cosine schedule to the
comparator's floor, unlearning-time augmentation where a cited recipe augments, and SalUn's
published random-forgetting protocol. Tiny models and fake labels: no reference is trained."""

import copy
import math
import re
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mucomp.training
from mucomp.cli import main
from mucomp.data import Scenario, derive_seed
from mucomp.forget_sets import parse_forget
from mucomp.methods import BUILTIN_METHODS, UnlearnContext, get_method, run_unlearning
from mucomp.schema import FORGET_PATTERN
from mucomp.specs import DATASETS
from mucomp.training import make_generator

FORGET_CLASS = 3


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario("digits", FORGET_CLASS, 0)


def tiny_model(seed: int = 0) -> nn.Module:
    """A linear classifier on digits' 8 x 8 images, seeded (its last layer is ``fc``, as mucomp's)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(OrderedDict(flat=nn.Flatten(), fc=nn.Linear(64, 10)))


# --- salun_comparator -----------------------------------------------------------------------------
def test_salun_comparator_masks_the_top_75_percent_from_the_first_5_forget_batches(scenario):
    from mucomp.methods.salun_comparator import first_batches_mask

    info = get_method("salun_comparator")
    assert {k: info.defaults_for("cifar10")[k] for k in ("mask_ratio", "mask_batches", "clip_grad_norm")} == {
        "mask_ratio": 0.75, "mask_batches": 5, "clip_grad_norm": 100.0}
    hyper = info.resolve("digits", {"batch_size": 16})
    model = tiny_model()
    with UnlearnContext("salun_comparator", model, scenario, hyper, seed=4) as ctx:
        mask = first_batches_mask(ctx, 0.75, 5)
    # Independently: the unlearning seed's first shuffle of D_f, its first 5 batches of 16, eval
    # mode, |gradient of the batch-mean cross-entropy| summed per weight, top int(0.75 n) kept.
    order = torch.randperm(scenario.forget_indices.size, generator=make_generator(derive_seed(4, "unlearn")))
    first = torch.as_tensor(scenario.forget_indices)[order[:80]]
    split = scenario.data.train
    summed = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for start in range(0, 80, 16):
        batch = first[start:start + 16]
        model.zero_grad()
        F.cross_entropy(model(split.normalize(split.images[batch])), split.labels[batch]).backward()
        for name, p in model.named_parameters():
            summed[name] += p.grad.abs()
    flat = torch.cat([s.flatten() for s in summed.values()])
    threshold = torch.sort(flat, descending=True).values[int(0.75 * flat.numel()) - 1]
    for name, s in summed.items():
        assert torch.equal(mask[name], s >= threshold), name
    kept = sum(int(m.sum()) for m in mask.values())
    assert kept == int(0.75 * flat.numel())  # no ties on this model: exactly the top 75 %


def test_salun_comparator_relabels_the_forget_pass_with_other_classes_and_masks_gradients_only(scenario, monkeypatch):
    from mucomp.methods import salun_comparator

    targets: list[torch.Tensor] = []
    real = F.cross_entropy

    def spy(logits, labels, *args, **kwargs):
        targets.append(labels.clone())
        return real(logits, labels, *args, **kwargs)

    monkeypatch.setattr(salun_comparator, "F", SimpleNamespace(cross_entropy=spy))  # the method's losses only
    model = tiny_model(1)
    start = copy.deepcopy(model)
    hyper = {"epochs": 1, "batch_size": 32, "mask_ratio": 0.5, "lr": 0.05}
    result = run_unlearning("salun_comparator", model, scenario, hyper, seed=0)
    assert result.ok, result.message
    n_forget = math.ceil(scenario.forget_indices.size / 32)
    mask_pass, forget_pass = targets[:5], targets[5:5 + n_forget]
    retain_pass = targets[5 + n_forget:]
    assert all((t == FORGET_CLASS).all() for t in mask_pass)  # the saliency uses the true labels
    forget_labels = torch.cat(forget_pass)
    assert (forget_labels != FORGET_CLASS).all() and len(forget_labels.unique()) == 9  # the 9 other classes
    assert sum(t.numel() for t in retain_pass) == scenario.retain_indices.size
    # Outside the mask only weight decay moved the weights: one common factor (< 1) for all of them.
    after, before = model.fc.weight.detach(), start.fc.weight.detach()
    unmoved_by_gradient = (after - before).abs() < 1e-3 * before.abs().max()
    ratios = (after / before)[unmoved_by_gradient & (before.abs() > 1e-3)]
    assert ratios.numel() > 0 and (ratios < 1).all()
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4)


# --- FT's schedule -------------------------------------------------------------------------------
def learning_rates(scenario: Scenario, hyper: dict) -> list[float]:
    """The rate of each epoch of an FT context with ``hyper`` (one tiny step per epoch)."""
    rates = []
    with UnlearnContext("ft", tiny_model(), scenario, hyper, seed=0) as ctx:
        for _epoch in ctx.epochs():
            rates.append(ctx.optimizer.param_groups[0]["lr"])
            images, labels = next(ctx.retain_batches(batch_size=8))
            ctx.step(F.cross_entropy(ctx.model(images), labels))
    return rates


def test_ft_anneals_with_cosine_to_the_comparators_floor_on_cifar10(scenario):
    ft = get_method("ft")
    for dataset in ("cifar10", "fashion_mnist"):
        defaults = ft.defaults_for(dataset)
        assert (defaults["lr_schedule"], defaults["lr_floor"], defaults["lr"]) == ("cosine", 0.01, 0.01), dataset
    cifar = ft.resolve("cifar10", {"epochs": 4})
    assert learning_rates(scenario, cifar) == pytest.approx([0.01] * 4)  # at lr 0.01: constant, as there
    faster = learning_rates(scenario, {**cifar, "lr": 0.05})
    assert faster == pytest.approx([0.01 + 0.04 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert ft.defaults_for("digits")["lr_schedule"] == "constant"
    assert learning_rates(scenario, ft.resolve("digits", {"epochs": 3})) == pytest.approx([0.07] * 3)
    assert "unlearn_FT.py:26" in ft.sources_for("cifar10")["lr_floor"]


# --- augmentation --------------------------------------------------------------------------------
AUGMENTING = {"ft": "cifar10:random", "ga": "cifar10:random", "salun": "cifar10:random", "l1_sparse": "cifar10"}


def test_augmentation_defaults_follow_the_cited_recipes():
    for name in BUILTIN_METHODS:
        info = get_method(name)
        for dataset in ("digits", "fashion_mnist"):
            assert not info.defaults_for(dataset).get("augment", False), (name, dataset)
        random = info.defaults_for("cifar10", forget_kind="random").get("augment", False)
        classwise = info.defaults_for("cifar10").get("augment", False)
        expected = AUGMENTING.get(name)
        assert random == (expected is not None), name
        assert classwise == (expected == "cifar10"), name
        if expected:
            source = info.sources_for("cifar10", forget_kind="random")["augment"]
            assert "dataset.py:542-555" in source and "no-aug" in source, name


@pytest.mark.parametrize("name", sorted(AUGMENTING))
def test_augmentation_reaches_the_training_batches_only(scenario, monkeypatch, name):
    calls: list[int] = []
    real = mucomp.training.augment_batch

    def spy(images, generator, pad=4):
        calls.append(images.shape[0])
        return real(images, generator, pad)

    monkeypatch.setattr(mucomp.training, "augment_batch", spy)
    hyper = {"epochs": 1, "batch_size": 128}
    plain = run_unlearning(name, tiny_model(), scenario, hyper, seed=0)  # the digits defaults: never
    assert plain.ok and plain.hyper["augment"] is False and calls == []
    runs = [run_unlearning(name, model, scenario, {**hyper, "augment": True}, seed=0)
            for model in (tiny_model(), tiny_model())]
    assert all(r.ok for r in runs)
    # Every image the method forwarded was augmented, and nothing else: the per-epoch
    # forget-accuracy pass (not counted in the cost) never is.
    assert sum(calls) == 2 * runs[0].cost["samples_forwarded"] > 0


def test_augmentation_is_deterministic_from_the_unlearning_seed_and_leaves_the_shuffle(scenario):
    hyper = {"epochs": 1, "batch_size": 64}
    a, b, c, plain = (tiny_model() for _ in range(4))
    run_unlearning("ft", a, scenario, {**hyper, "augment": True}, seed=2)
    run_unlearning("ft", b, scenario, {**hyper, "augment": True}, seed=2)
    run_unlearning("ft", c, scenario, {**hyper, "augment": True}, seed=3)
    run_unlearning("ft", plain, scenario, {**hyper, "augment": False}, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.fc.weight, c.fc.weight) and not torch.equal(a.fc.weight, plain.fc.weight)
    with UnlearnContext("ft", tiny_model(), scenario, {**hyper, "augment": True}, seed=2) as on, \
            UnlearnContext("ft", tiny_model(), scenario, {**hyper, "augment": False}, seed=2) as off:
        (_, labels_on), (_, labels_off) = next(on.retain_batches()), next(off.retain_batches())
    assert torch.equal(labels_on, labels_off)  # the same shuffle: crops and flips have a stream of their own


# --- SalUn's random-forgetting protocol ----------------------------------------------------------
def authors_draw(labels: np.ndarray, count: int, seed: int = 2) -> np.ndarray:
    """What OPTML-Group/Unlearn-Saliency's ``cifar10_dataloaders`` and ``replace_class(-1)`` mark,
    as original training indices, written the way that code does it."""
    rng = np.random.RandomState(seed)
    valid_idx = np.hstack([rng.choice(np.where(labels == i)[0], int(0.1 * len(np.where(labels == i)[0])),
                                      replace=False) for i in range(max(labels) + 1)])
    train_idx = list(set(range(len(labels))) - set(valid_idx))
    marked = np.random.RandomState(seed - 1).choice(np.flatnonzero(np.ones(len(train_idx))), size=count, replace=False)
    return np.sort(np.asarray(train_idx)[marked]), valid_idx


def test_the_salun_protocol_draws_4500_of_the_45000_left_after_a_per_class_hold_out():
    labels = np.repeat(np.arange(10), 5000)
    np.random.default_rng(11).shuffle(labels)  # CIFAR-shaped: 50,000 labels, 5,000 per class, mixed
    forget = parse_forget("random:4500:salun", DATASETS["cifar10"])
    assert forget.kind == "random" and forget.text == "random:4500:salun" and forget.key == "r4500salun"
    drawn = forget.indices_in(labels, data_seed=0)
    expected, held_out = authors_draw(labels, 4500)
    assert drawn.size == 4500 and np.array_equal(drawn, expected)
    assert not np.isin(drawn, held_out).any() and held_out.size == 5000
    assert np.bincount(labels[held_out], minlength=10).tolist() == [500] * 10
    assert np.array_equal(forget.indices_in(labels, data_seed=7), drawn)  # the protocol's seeds, not the data seed
    assert np.array_equal(parse_forget(forget.text, DATASETS["cifar10"]).indices_in(labels, 0), drawn)
    with pytest.raises(ValueError, match="45000 left after its 10% hold-out"):
        parse_forget("random:45001:salun", DATASETS["cifar10"]).indices_in(labels, 0)


def test_the_salun_protocol_round_trips_through_text_store_scenario_and_cli(capsys):
    import json

    for text in ("random:4500:salun", "RANDOM: 4500 :SALUN"):
        assert parse_forget(text, DATASETS["cifar10"]).text == "random:4500:salun"
    assert re.fullmatch(FORGET_PATTERN, "random:4500:salun") and not re.fullmatch(FORGET_PATTERN, "random:10%:salun")
    for bad in ("random:10%:salun", "random:4500:sparse", "random:0:salun"):
        with pytest.raises(ValueError, match="random:N:salun|salun protocol|no known protocol"):
            parse_forget(bad, DATASETS["cifar10"])
    scenario = Scenario("digits", forget="random:100:salun", data_seed=3)
    assert scenario.forget_set.text == "random:100:salun" and scenario.forget_indices.size == 100
    assert np.array_equal(scenario.forget_indices, Scenario("digits", forget="random:100:salun").forget_indices)
    assert main(["methods", "--dataset", "cifar10", "--forget", "random:4500:salun", "--json"]) == 0
    methods = {m["name"]: m for m in json.loads(capsys.readouterr().out)["methods"]}
    assert methods["salun"]["defaults"]["lr"] == 0.013 and methods["salun"]["defaults"]["augment"] is True
