"""Vision transformers (issue 17): ViT-B/16 in torchvision's layout through the Hub path, vit_digits
on the transformer path, per-architecture optimisers and defaults, opt-in bf16 evaluation."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mucomp import reference_check
from mucomp.data import Scenario
from mucomp.evaluation import evaluate
from mucomp.methods import UnlearnContext, get_method, register, run_unlearning, unregister
from mucomp.models import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PretrainedUnavailableError,
    build_model,
    layer_names,
    penultimate_layer,
    seeded_model,
    starting_model,
)
from mucomp.precision import autocast_dtype, cpu_bf16_supported, requested_precision
from mucomp.references import hub_filename, load_reference


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on 2 shared cores a second thread waits for a busy core at every op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def torchvision_vit():
    """torchvision's ``vit_b_16(weights=None)`` drawn from seed 5 (1000-class head), once."""
    from torchvision.models import vit_b_16

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        return vit_b_16(weights=None)


@pytest.fixture(scope="module")
def vit_digits_scenario():
    return Scenario("digits", 3, 0, arch="vit_digits")


def test_vit_b16_layout_is_torchvision_and_a_hub_file_loads_strictly(torchvision_vit, tmp_path, monkeypatch):
    layout = {k: tuple(v.shape) for k, v in torchvision_vit.state_dict().items()}
    layout.update({"heads.head.weight": (10, 768), "heads.head.bias": (10,)})  # vit_b_16 with a 10-class head
    with torch.device("meta"):
        built = build_model("vit_b16_cifar", 10).state_dict()
    assert list(built) == list(layout)  # key for key, in order
    assert {k: tuple(v.shape) for k, v in built.items()} == layout and len(built) == 152

    # Seeded weights are vit_b_16(weights=None)'s draws, in the same order, then a new Linear(768, 10).
    expected = seeded_model("vit_b16_cifar", 10, 5).state_dict()
    theirs = torchvision_vit.state_dict()
    assert all(torch.equal(expected[k], theirs[k]) for k in expected if not k.startswith("heads."))

    # A file saved in that layout is a published Retrained file, found offline in MUCOMP_REFERENCE_DIR.
    torch.save(expected, tmp_path / "vit_base_16_cifar10_forget3.pth")
    monkeypatch.setenv("MUCOMP_REFERENCE_DIR", str(tmp_path))
    scenario = Scenario("cifar10", "cat", arch="vit_b16_cifar")
    assert hub_filename(scenario.spec, "retrained", 3, "vit_b16_cifar") == "vit_base_16_cifar10_forget3.pth"
    assert hub_filename(scenario.spec, "original", 3, "vit_b16_cifar") == "vit_base_16_cifar10_original.pth"
    ref = load_reference(scenario, "retrained", device="cpu")
    assert ref.source == "hub" and ref.checkpoint_id == "Yurim0507/vit-base-16-cifar10-unlearning/vit_base_16_cifar10_forget3.pth"
    loaded = ref.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_vit_input_is_renormalised_and_resized_on_the_fly():
    from mucomp.models import VIT_B16_INPUT_NORMALISATION, ImageViT

    assert VIT_B16_INPUT_NORMALISATION == (IMAGENET_MEAN, IMAGENET_STD)
    # vit_b16_cifar's input path on a ViT small enough for a test (48 x 48, one block of width 32).
    model = ImageViT(image_size=48, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64,
                     num_classes=10, input_stats=(CIFAR10_MEAN, CIFAR10_STD),
                     model_stats=VIT_B16_INPUT_NORMALISATION).eval()
    x = torch.randn(2, 3, 32, 32)
    raw = x * torch.tensor(CIFAR10_STD).view(1, 3, 1, 1) + torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    imagenet = (raw - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = F.interpolate(imagenet, size=(48, 48), mode="bilinear", align_corners=False)
    prepared = model.prepare_input(x)
    assert prepared.shape == (2, 3, 48, 48)
    assert torch.allclose(prepared, expected, atol=1e-5)
    with torch.inference_mode():
        assert model(x).shape == (2, 10)
    assert "input_scale" not in model.state_dict()  # no persistent buffer: the layout stays torchvision's
    with torch.device("meta"):
        big = build_model("vit_b16_cifar", 10)
    assert big.image_size == 224 and big.renormalise and not build_model("vit_digits", 10).renormalise


def test_vit_layers_and_class_token_features(vit_digits_scenario):
    for arch, blocks in (("vit_digits", 4), ("vit_b16_cifar", 12)):
        names = layer_names(arch)
        assert names == ["conv_proj", *(f"encoder.layers.encoder_layer_{i}" for i in range(blocks)), "heads.head"]
    model = seeded_model("vit_digits", 10, 0).eval()
    assert set(layer_names("vit_digits")) <= set(dict(model.named_modules()))
    assert penultimate_layer(model) is model.heads.head
    split = vit_digits_scenario.data.train
    picked = np.arange(12)
    result = evaluate(model, split, picked, layer_names("vit_digits"))
    images, _ = split.batch(picked)
    with torch.inference_mode():
        tokens = model._process_input(model.prepare_input(images))
        tokens = torch.cat([model.class_token.expand(12, -1, -1), tokens], dim=1)
        class_token = model.encoder(tokens)[:, 0]
    assert np.allclose(result.features, class_token.numpy(), atol=1e-5)  # the representation before `heads`
    assert result.activations["conv_proj"].shape == (12, 64 * 4 * 4)
    assert result.activations["encoder.layers.encoder_layer_3"].shape == (12, 17 * 64)
    assert result.activations["heads.head"].shape == (12, 10)


def test_pretrained_start_offline_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setenv("MUCOMP_OFFLINE", "1")
    with pytest.raises(PretrainedUnavailableError, match=r"IMAGENET1K_V1 weights, which are not in .*vit_b_16-c867db91.pth"):
        starting_model("vit_b16_cifar", 10, 0)  # refused before anything is built
    fresh, seeded = starting_model("vit_digits", 10, 0), seeded_model("vit_digits", 10, 0)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in seeded.state_dict().items())  # no pretrained start


def test_pretrained_start_loads_the_backbone_and_keeps_a_fresh_head(tmp_path, monkeypatch):
    """The ImageNet start's mechanism on vit_digits standing in for ViT-B/16 (same code path)."""
    from torchvision.models._api import WeightsEnum

    import mucomp.models as models

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "vit_b_16-c867db91.pth").write_bytes(b"")  # "in the cache"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(models, "PRETRAINED", {"vit_digits": "ViT_B_16_Weights.IMAGENET1K_V1"})
    pretrained = seeded_model("vit_digits", 1000, 99).state_dict()  # a 1000-class "ImageNet" model
    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: pretrained)
    ours = starting_model("vit_digits", 10, 7).state_dict()
    fresh = seeded_model("vit_digits", 10, 7).state_dict()
    assert all(torch.equal(ours[k], pretrained[k]) for k in ours if not k.startswith("heads."))
    assert torch.equal(ours["heads.head.weight"], fresh["heads.head.weight"]) and ours["heads.head.weight"].shape == (10, 64)


def test_vit_reference_check_uses_the_vit_card_only():
    figures = reference_check.published_figures("cifar10", "retrained", 3, "vit_base_16_cifar10_forget3.pth")
    assert figures == {"card test accuracy": 0.9859}  # no ResNet comparator figures for a ViT file
    assert reference_check.published_figures("cifar10", "original", 0, "vit_base_16_cifar10_original.pth") == {
        "card test accuracy": 0.9836}


def test_methods_state_their_optimiser_per_architecture(vit_digits_scenario):
    assert get_method("ft").optimizer_for("digits_cnn") == "sgd"
    assert get_method("ft").optimizer_for("vit_digits") == get_method("ga").optimizer_for("vit_b16_cifar") == "adamw"
    assert get_method("bad_teacher").optimizer_for("vit_digits") == "adam"
    assert get_method("neggrad_plus").optimizer_for("resnet18_cifar") == "sgd_plain"
    assert get_method("neggrad_plus").optimizer_for("vit_b16_cifar") == "adam"
    assert get_method("unsir").optimizer_for("digits_cnn") == "sgd" and get_method("unsir").optimizer_for("resnet18_cifar") == "adam"
    # Per-architecture defaults override the data set's; every built-in has ViT-B/16 ones with a source.
    ft = get_method("ft")
    assert ft.defaults_for("digits", "vit_digits") != ft.defaults_for("digits")
    for name in ("ft", "ga", "rl", "scrub", "salun", "salun_comparator", "neggrad_plus", "l1_sparse", "ssd", "bad_teacher",
                 "unsir", "retrain"):
        info = get_method(name)
        assert "vit_b16_cifar" in info.defaults and "vit_digits" in info.defaults, name
        assert info.sources_for("cifar10", "vit_b16_cifar"), name
    hyper = ft.resolve("digits", {"epochs": 1}, arch="vit_digits")
    model = seeded_model("vit_digits", 10, 0)
    with UnlearnContext("ft", model, vit_digits_scenario, hyper, 0) as ctx:
        assert isinstance(ctx.optimizer, torch.optim.AdamW) and ctx.optimizer.param_groups[0]["weight_decay"] == 0.01


def test_a_plugin_declares_optimiser_and_architecture_defaults(vit_digits_scenario):
    @register("arch_aware", defaults={"digits": {"epochs": 1, "lr": 0.1, "batch_size": 64},
                                      "vit_digits": {"lr": 1e-3}}, optimizer={"vit": "adam", "*": "sgd_plain"})
    def arch_aware(ctx):
        """Fine-tune on one retain batch."""
        assert isinstance(ctx.optimizer, torch.optim.Adam)
        for _epoch in ctx.epochs():
            images, labels = next(ctx.retain_batches())
            ctx.step(F.cross_entropy(ctx.model(images), labels))

    try:
        info = get_method("arch_aware")
        assert info.defaults_for("digits", "vit_digits")["lr"] == 1e-3 and info.defaults_for("digits")["lr"] == 0.1
        assert info.optimizer_for("vit_digits") == "adam" and info.optimizer_for("digits_cnn") == "sgd_plain"
        result = run_unlearning("arch_aware", seeded_model("vit_digits", 10, 0), vit_digits_scenario, device="cpu")
        assert result.status == "completed" and result.hyper["lr"] == 1e-3
        with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
            register("bad_opt", defaults={"epochs": 1, "lr": 0.1, "batch_size": 8}, optimizer="lion")(arch_aware)
        with pytest.raises(ValueError, match="optimizer for unknown architecture 'vgg'"):
            register("bad_arch", defaults={"epochs": 1, "lr": 0.1, "batch_size": 8}, optimizer={"vgg": "adam"})(arch_aware)
    finally:
        unregister("arch_aware")


@pytest.mark.parametrize("name", ["ft", "salun"])
def test_methods_run_on_the_transformer_path(vit_digits_scenario, name):
    """AdamW by default; SalUn's saliency mask over a ViT's parameters (class token, positions)."""
    model = seeded_model("vit_digits", 10, 1)
    result = run_unlearning(name, model, vit_digits_scenario, {"epochs": 1, "batch_size": 128}, device="cpu")
    assert result.status == "completed", result.message
    assert result.cost["optimizer_steps"] > 0 and result.hyper["lr"] == get_method(name).defaults["vit_digits"]["lr"]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_precision_is_fp32_unless_asked(vit_digits_scenario, monkeypatch):
    monkeypatch.delenv("MUCOMP_PRECISION", raising=False)
    assert requested_precision() == "fp32" and autocast_dtype("cpu") is None
    monkeypatch.setenv("MUCOMP_PRECISION", "bfloat16")
    assert requested_precision() == "bf16"
    assert autocast_dtype("cpu") == (torch.bfloat16 if cpu_bf16_supported() else None)
    assert autocast_dtype("cpu", "fp16") is None  # no fast float16 on a CPU: fp32
    monkeypatch.setenv("MUCOMP_PRECISION", "fp8")
    with pytest.raises(ValueError, match="MUCOMP_PRECISION='fp8' is not a precision"):
        requested_precision()
    model = seeded_model("vit_digits", 10, 0)
    split = vit_digits_scenario.data.test
    fp32 = evaluate(model, split, np.arange(64), precision="fp32")
    bf16 = evaluate(model, split, np.arange(64), precision="bf16")
    assert fp32.precision == "fp32" and bf16.precision == ("bf16" if cpu_bf16_supported() else "fp32")
    assert bf16.logits.dtype == np.float32 and bf16.features.dtype == np.float32
    assert np.abs(bf16.logits - fp32.logits).max() < 0.1


def test_cli_precision_flag_and_arch_defaults(monkeypatch, capsys):
    from mucomp.cli import main as cli_main

    monkeypatch.setenv("MUCOMP_PRECISION", "fp32")  # restored after the test
    assert cli_main(["--precision", "bf16", "methods", "--dataset", "digits", "--arch", "vit_digits", "--json"]) == 0
    import os

    assert os.environ["MUCOMP_PRECISION"] == "bf16"
    payload = json.loads(capsys.readouterr().out)
    assert payload["arch"] == "vit_digits"
    ft = next(m for m in payload["methods"] if m["name"] == "ft")
    assert ft["optimizer"] == "adamw" and ft["defaults"] == get_method("ft").defaults_for("digits", "vit_digits")
    assert cli_main(["methods", "--dataset", "digits", "--arch", "vit_b16_cifar"]) == 2


def test_vit_digits_weights_pass_the_import_and_upload_checks_of_their_own_architecture():
    """An exported vit_digits experiment imports, and a vit_digits state dict uploads, checked
    against the scenario's architecture rather than the data set's CNN."""
    import io

    from safetensors.torch import save

    from mucomp.store import StoreError, weights_problem
    from mucomp.store.archive import check_model_files
    from mucomp.uploads import UploadError, check_upload

    vit = seeded_model("vit_digits", 10, 0).state_dict()
    cnn = seeded_model("digits_cnn", 10, 0).state_dict()
    assert weights_problem("digits", vit, "vit_digits") is None
    assert weights_problem("digits", cnn) is None
    assert "digits (vit_digits) architecture" in weights_problem("digits", cnn, "vit_digits")
    assert "not an architecture of digits" in weights_problem("digits", cnn, "resnet18")
    result = {"config": {"dataset": "digits", "arch": "vit_digits"}, "kind": "unlearned"}
    check_model_files([("abcdef12", result, save({k: v.contiguous() for k, v in vit.items()}))])
    with pytest.raises(StoreError, match="do not fit"):
        check_model_files([("abcdef12", result, save({k: v.contiguous() for k, v in cnn.items()}))])
    buffer = io.BytesIO()
    torch.save(vit, buffer)
    spec = Scenario("digits", 3, 0, arch="vit_digits").spec
    assert isinstance(check_upload("vit.pth", buffer.getvalue(), spec, arch="vit_digits").model, torch.nn.Module)
    with pytest.raises(UploadError, match="missing|unexpected"):
        check_upload("vit.pth", buffer.getvalue(), spec)  # the CNN's layout
