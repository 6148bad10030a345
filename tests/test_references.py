import hashlib
import json

import numpy as np
import pytest
import torch

from mucomp.data import Scenario
from mucomp.evaluation import evaluate_scenario
from mucomp.metrics import accuracy_metrics
from mucomp.models import StateDictMismatchError, build_model, seeded_model
from mucomp.references import (
    ReferenceUnavailableError,
    cache_path,
    hub_filename,
    load_reference,
)


def metrics_of(model, scenario):
    evals = evaluate_scenario(model, scenario, layers=())
    return accuracy_metrics(evals["train"], evals["test"], scenario.forget_class)


def test_digits_references_meet_the_acceptance_figures(digits_scenario, digits_references):
    original, retrained = digits_references
    o = metrics_of(original.model, digits_scenario)
    r = metrics_of(retrained.model, digits_scenario)
    assert o["UA"] >= 0.95 and o["TRA"] >= 0.95
    assert r["UA"] == 0.0 and r["TRA"] >= 0.95


def test_second_request_is_served_from_the_disk_cache(digits_scenario, digits_references):
    original, retrained = digits_references
    again = load_reference(digits_scenario, "retrained")
    assert again.source == "cache"
    assert again.path == retrained.path == cache_path(digits_scenario, "retrained")
    for key, value in retrained.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])


def short_digits_recipe(monkeypatch) -> None:
    """Two epochs of the digits recipe: the tests of the cache and of determinism train a
    reference of their own, which needs no full training (the acceptance figures are above)."""
    from mucomp import recipes

    monkeypatch.setitem(recipes.RECIPES, "digits", recipes.TrainRecipe(epochs=2, lr=0.05, batch_size=64))


def test_same_seed_gives_identical_models_and_metrics(digits_scenario, tmp_path, monkeypatch):
    short_digits_recipe(monkeypatch)
    models = []
    for name in ("first", "second"):
        monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / name))
        fresh = load_reference(digits_scenario, "retrained")
        assert fresh.source == "trained" and str(fresh.path).startswith(str(tmp_path / name))
        models.append(fresh.model)
    for key, value in models[0].state_dict().items():
        assert torch.equal(value, models[1].state_dict()[key]), key
    assert metrics_of(models[0], digits_scenario) == metrics_of(models[1], digits_scenario)


def test_retrained_never_sees_the_forget_class(digits_scenario, monkeypatch, tmp_path):
    import mucomp.references as references

    seen = []

    def spy(model, split, indices, *args, **kwargs):
        seen.append(split.labels_np[indices])
        raise RuntimeError("stop after recording")

    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path))
    monkeypatch.setattr(references, "train", spy)
    with pytest.raises(RuntimeError, match="stop after recording"):
        load_reference(digits_scenario, "retrained")
    assert seen and 3 not in set(seen[0].tolist()) and seen[0].size == digits_scenario.retain_indices.size


def test_a_damaged_cache_file_is_retrained(digits_scenario, tmp_path, monkeypatch):
    short_digits_recipe(monkeypatch)
    monkeypatch.setenv("MUCOMP_HOME", str(tmp_path))
    path = cache_path(digits_scenario, "retrained")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a safetensors file")
    ref = load_reference(digits_scenario, "retrained")
    assert ref.source == "trained" and path.stat().st_size > 1000


def fake_hub_cache(cache_root, repo_id, files: dict):
    """The Hugging Face cache layout: models--org--name/refs/main + snapshots/<commit>/<file>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache_root / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, state in files.items():
        torch.save(state, snapshot / name)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_published_cifar_checkpoint_loads_through_the_hub_cache(hub_cache):
    scenario = Scenario("cifar10", "cat")
    state = seeded_model("resnet18_cifar", 10, 5).state_dict()
    fake_hub_cache(hub_cache, "jaeunglee/resnet18-cifar10-unlearning", {"resnet18_cifar10_no_cat.pth": state})
    ref = load_reference(scenario, "retrained", device="cpu")
    assert ref.source == "hub" and ref.path.name == "resnet18_cifar10_no_cat.pth"
    loaded = ref.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert hub_filename(scenario.spec, "original", 3) == "resnet18_cifar10_full.pth"


def test_published_fashion_checkpoint_loads_from_a_local_dir(tmp_path, monkeypatch):
    scenario = Scenario("fashion_mnist", 4)
    state = seeded_model("resnet18_fmnist", 10, 6).state_dict()
    torch.save(state, tmp_path / "resnet18_fashionmnist_forget4.pth")
    monkeypatch.setenv("MUCOMP_REFERENCE_DIR", str(tmp_path))
    ref = load_reference(scenario, "retrained", device="cpu")
    assert ref.path == tmp_path / "resnet18_fashionmnist_forget4.pth"
    assert torch.equal(ref.model.state_dict()["conv1.weight"], state["conv1.weight"])


def test_hub_file_of_the_wrong_architecture_names_keys(hub_cache):
    bad = build_model("resnet18_fmnist", 10).state_dict()  # 1-channel stem in a CIFAR slot
    fake_hub_cache(hub_cache, "jaeunglee/resnet18-cifar10-unlearning", {"resnet18_cifar10_full.pth": bad})
    with pytest.raises(StateDictMismatchError, match=r"conv1.weight \(64, 1, 3, 3\) vs expected \(64, 3, 3, 3\)"):
        load_reference(Scenario("cifar10", 0), "original", device="cpu")


def test_unreadable_hub_file_says_so(hub_cache):
    snapshot = fake_hub_cache(hub_cache, "jaeunglee/resnet18-cifar10-unlearning", {})
    (snapshot / "resnet18_cifar10_full.pth").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="not a readable PyTorch"):
        load_reference(Scenario("cifar10", 0), "original", device="cpu")


def test_pickled_code_is_refused_by_weights_only(hub_cache, tmp_path):
    snapshot = fake_hub_cache(hub_cache, "jaeunglee/resnet18-cifar10-unlearning", {})
    torch.save({"fn": np.random.default_rng}, snapshot / "resnet18_cifar10_full.pth")
    with pytest.raises(ValueError, match="not a readable PyTorch"):
        load_reference(Scenario("cifar10", 0), "original", device="cpu")


def test_missing_hub_file_offline_says_what_to_do(hub_cache):
    with pytest.raises(ReferenceUnavailableError) as info:
        load_reference(Scenario("cifar10", 1), "retrained", device="cpu")
    message = str(info.value)
    assert "resnet18_cifar10_no_automobile.pth" in message and "MUCOMP_REFERENCE_DIR" in message


def test_cli_references_json(digits_references, capsys):
    from mucomp.cli import main

    code = main(["references", "--dataset", "digits", "--forget-class", "3", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    payload = json.loads(out)
    assert set(payload) == {"original", "retrained"}
    for kind in payload:
        metrics = payload[kind]
        for key in ("UA", "RA", "TUA", "TRA", "accs", "t_accs", "label_dist", "conf_dist", "t_label_dist", "t_conf_dist"):
            assert key in metrics
        assert len(metrics["accs"]) == 10 and np.array(metrics["label_dist"]).shape == (10, 10)
    assert payload["retrained"]["UA"] == 0.0 and payload["original"]["UA"] >= 0.95
    assert "cache" in err  # served from the session's cache


def test_cli_bad_forget_class_exits_2(capsys):
    from mucomp.cli import main

    code = main(["references", "--forget-class", "eleven"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--forget-class" in err and "unknown class" in err


def test_load_checkpoint_reads_safetensors_and_names_an_unreadable_file(tmp_path):
    from safetensors.torch import save_file

    from mucomp.references import load_checkpoint

    state = seeded_model("digits_cnn", 10, 2).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "ref.safetensors"))
    model = load_checkpoint(tmp_path / "ref.safetensors", "digits_cnn", 10)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 64)
    for name in ("bad.safetensors", "absent.pth"):
        with pytest.raises(ValueError, match=f"{name} is not a readable PyTorch or safetensors") as info:
            load_checkpoint(tmp_path / name, "digits_cnn", 10)
        assert "download or export it again" in str(info.value)


def test_local_recipes_follow_the_cards_they_imitate():
    from mucomp.recipes import RECIPES
    from mucomp.recipes import recipe_hash as _recipe_hash

    cifar, fashion = RECIPES["cifar10"], RECIPES["fashion_mnist"]
    assert (cifar.epochs, cifar.lr, cifar.batch_size, cifar.nesterov, cifar.augment) == (200, 0.1, 128, True, True)
    assert (fashion.epochs, fashion.nesterov, fashion.augment, fashion.clip_grad_norm) == (200, True, True, 0.5)
    # Digits uses none of the later fields: its cache folder (and reference ids) keep their old name.
    later = ("nesterov", "clip_grad_norm", "optimizer", "warmup_epochs")
    old_style = json.dumps({"arch": "digits_cnn", "recipe": {
        k: v for k, v in RECIPES["digits"].as_dict().items() if k not in later}}, sort_keys=True)
    assert _recipe_hash("digits_cnn", RECIPES["digits"]) == hashlib.sha256(old_style.encode()).hexdigest()[:12]


def test_training_applies_nesterov_and_the_gradient_clip(digits_scenario):
    from mucomp.training import TrainRecipe, train

    split = digits_scenario.data.train
    indices = np.arange(128)
    outcomes = {}
    for name, recipe in {
        "plain": TrainRecipe(epochs=1, lr=0.05, batch_size=32),
        "nesterov": TrainRecipe(epochs=1, lr=0.05, batch_size=32, nesterov=True),
        "clipped": TrainRecipe(epochs=1, lr=0.05, batch_size=32, clip_grad_norm=1e-4),
    }.items():
        model = seeded_model("digits_cnn", 10, 0)
        train(model, split, indices, recipe, seed=0)
        outcomes[name] = model.state_dict()
    start = seeded_model("digits_cnn", 10, 0).state_dict()
    assert not torch.equal(outcomes["plain"]["fc.weight"], outcomes["nesterov"]["fc.weight"])

    def moved(state):
        return sum(float((state[k].float() - start[k].float()).norm()) for k in start if start[k].is_floating_point())

    assert moved(outcomes["clipped"]) < 0.05 * moved(outcomes["plain"])
    with pytest.raises(ValueError, match="clip_grad_norm"):
        TrainRecipe(epochs=1, lr=0.1, batch_size=8, clip_grad_norm=-1.0)


def test_reference_weights_do_not_depend_on_the_processs_thread_count(tmp_path, monkeypatch):
    """The same scenario's Retrained weights, trained at 1 and at 3 torch threads (3 rounds
    differently from 1, 2 and 4 on a 2-core machine when the count is not fixed), are bit-identical."""
    short_digits_recipe(monkeypatch)  # two epochs show the difference
    scenario = Scenario("digits", 5, 0)
    before = torch.get_num_threads()
    weights = {}
    try:
        for threads in (1, 3):
            monkeypatch.setenv("MUCOMP_HOME", str(tmp_path / f"threads-{threads}"))
            torch.set_num_threads(threads)
            reference = load_reference(scenario, "retrained", source="train")
            assert reference.source == "trained"
            assert torch.get_num_threads() == threads  # the process's own setting is put back
            weights[threads] = reference.model.state_dict()
    finally:
        torch.set_num_threads(before)
    assert weights[1].keys() == weights[3].keys()
    for key, value in weights[1].items():
        assert torch.equal(value, weights[3][key]), key
