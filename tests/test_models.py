import pytest
import torch

from mucomp.models import (
    StateDictMismatchError,
    build_model,
    layer_names,
    model_from_state_dict,
    seeded_model,
    unwrap_state_dict,
)


def published_resnet18_cifar_layout() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the published CIFAR ResNet-18 checkpoints, written out by hand:
    torchvision's ResNet-18 names with a 3x3 3->64 stem and a 512->10 head."""
    layout = {"conv1.weight": (64, 3, 3, 3)}

    def bn(prefix, c):
        layout.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                       f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    bn("bn1", 64)
    in_c = 64
    for stage, out_c in enumerate([64, 128, 256, 512], start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            first_in = in_c if block == 0 else out_c
            layout[f"{p}.conv1.weight"] = (out_c, first_in, 3, 3)
            bn(f"{p}.bn1", out_c)
            layout[f"{p}.conv2.weight"] = (out_c, out_c, 3, 3)
            bn(f"{p}.bn2", out_c)
            if block == 0 and stage > 1:
                layout[f"{p}.downsample.0.weight"] = (out_c, first_in, 1, 1)
                bn(f"{p}.downsample.1", out_c)
        in_c = out_c
    layout["fc.weight"] = (10, 512)
    layout["fc.bias"] = (10,)
    return layout


def test_resnet18_cifar_has_the_published_keys_and_shapes():
    state = build_model("resnet18_cifar", 10).state_dict()
    expected = published_resnet18_cifar_layout()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert len(state) == 122


def test_resnet18_cifar_stem_and_forward():
    model = build_model("resnet18_cifar", 10).eval()
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model.conv1.stride == (1, 1) and model.conv1.bias is None
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_fmnist_resnet_takes_one_channel_28x28():
    model = build_model("resnet18_fmnist", 10).eval()
    assert model.conv1.in_channels == 1
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_digits_cnn_layers_and_shapes():
    model = build_model("digits_cnn", 10).eval()
    names = layer_names("digits_cnn")
    assert len(names) >= 4 and names[-1] == "fc"
    modules = dict(model.named_modules())
    assert all(name in modules for name in names)
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


@pytest.mark.parametrize("arch", ["resnet18_cifar", "resnet18_fmnist", "digits_cnn"])
def test_layer_names_exist(arch):
    modules = dict(build_model(arch, 10).named_modules())
    assert all(name in modules for name in layer_names(arch))


def test_seeded_model_is_reproducible_and_leaves_global_rng():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = seeded_model("digits_cnn", 10, 7)
    after = torch.rand(1)
    b = seeded_model("digits_cnn", 10, 7)
    assert torch.equal(before, after)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_wrong_architecture_names_the_differing_keys():
    digits_state = build_model("digits_cnn", 10).state_dict()
    with pytest.raises(StateDictMismatchError) as info:
        model_from_state_dict("resnet18_cifar", 10, digits_state)
    message = str(info.value)
    assert "120 missing keys" in message and "bn1.running_mean" in message
    assert "8 unexpected keys" in message and "block1.0.weight" in message


def test_wrong_class_count_names_the_shapes():
    state = build_model("digits_cnn", 5).state_dict()
    with pytest.raises(StateDictMismatchError, match=r"fc.weight \(5, 128\) vs expected \(10, 128\)"):
        model_from_state_dict("digits_cnn", 10, state)


def test_unwrap_common_checkpoint_wrappers():
    state = build_model("digits_cnn", 10).state_dict()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    assert list(unwrap_state_dict(wrapped)) == list(state)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        unwrap_state_dict([1, 2, 3])
    with pytest.raises(ValueError, match="names to tensors"):
        unwrap_state_dict({"a": 1})


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg", 10)
