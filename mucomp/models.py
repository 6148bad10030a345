"""Architectures: a small CNN and a small ViT for digits, ResNet-18 variants for CIFAR-10 and
Fashion-MNIST, and ViT-B/16 for CIFAR-10.

Every model ends in a final linear layer whose input is the penultimate feature vector (the
embedding view reads it; :func:`penultimate_layer` finds it): ``fc`` for the CNNs and ResNets,
``heads.head`` for the vision transformers, whose input is the class-token representation after
the encoder's final LayerNorm. :func:`layer_names` lists the modules whose outputs the layer-wise
similarity view compares, in forward order.

The vision transformers are torchvision's :class:`~torchvision.models.VisionTransformer`
(Dosovitskiy et al., ICLR 2021), so their state-dict keys are torchvision's key for key:
``vit_b16_cifar`` is ``torchvision.models.vit_b_16(weights=None)`` with ``heads.head =
Linear(768, 10)``, the layout of the published ``Yurim0507/vit-base-16-cifar10-unlearning`` files
(they load into that model with ``strict=True``; e.g. hjk-sys/ViT-CNN-Classifiers-Across-AdaIN,
``ViTModel.py``). What a ViT needs on top of mucomp's batches (dataset-normalised images at the
data set's size) happens inside its ``forward``, on the device, without parameters or persistent
buffers: a per-channel affine map from the data set's normalisation to the one the weights were
trained with, then a bilinear resize to the model's image size (CIFAR 32 -> 224).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from mucomp.environment import import_torchvision
from mucomp.weights import Layout, StateDictMismatchError, check_weights, first_line, layout_of, unwrap_state_dict

ARCHITECTURES = ("digits_cnn", "fmnist_cnn", "resnet18_cifar", "resnet18_fmnist", "vit_digits", "vit_b16_cifar")

#: Per-channel normalisation of ImageNet (torchvision's ``ImageClassification`` preset of the
#: ``ViT_B_16_Weights.IMAGENET1K_V1`` weights), for images scaled to [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: CIFAR-10's normalisation as mucomp's data pipeline applies it (:data:`mucomp.specs.DATASETS`).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
#: The normalisation ``vit_b16_cifar`` feeds its weights. The model card of the published files
#: stops before its preprocessing; ImageNet's is chosen because the files are fine-tunes of
#: torchvision's ImageNet-pretrained ViT-B/16 (their layout), whose weights were trained with it,
#: and the one public user of these files evaluates them with it. The Hub check
#: (:mod:`mucomp.reference_check`) reports a file that then misses its card by more than a point;
#: ``benchmarks/vit_normalisation.py`` measures both candidates on the real files.
VIT_B16_INPUT_NORMALISATION = (IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class ArchInfo:
    """What mucomp knows about an architecture before building it.

    ``family``: ``"cnn"`` or ``"vit"``; ``input_shape``: ``(C, H, W)`` of the batches it is fed
    (the data set's images); ``classifier``: the name of the final linear layer.
    """

    name: str
    family: str
    input_shape: tuple[int, int, int]
    classifier: str
    description: str


ARCH_INFO: dict[str, ArchInfo] = {
    "digits_cnn": ArchInfo("digits_cnn", "cnn", (1, 8, 8), "fc", "small CNN (3 conv blocks, 0.2 M parameters)"),
    "fmnist_cnn": ArchInfo("fmnist_cnn", "cnn", (1, 28, 28), "fc",
                           "CPU-sized CNN for 1x28x28 (2 conv blocks, 0.42 M parameters, 8.5 MFLOP per image)"),
    "resnet18_cifar": ArchInfo("resnet18_cifar", "cnn", (3, 32, 32), "fc", "ResNet-18 with a 3x3 stem (11 M parameters)"),
    "resnet18_fmnist": ArchInfo("resnet18_fmnist", "cnn", (1, 28, 28), "fc", "ResNet-18 for 1x28x28 (11 M parameters)"),
    "vit_digits": ArchInfo("vit_digits", "vit", (1, 8, 8), "heads.head",
                           "small ViT (patch 2, 4 layers, width 64, 0.14 M parameters)"),
    "vit_b16_cifar": ArchInfo("vit_b16_cifar", "vit", (3, 32, 32), "heads.head",
                              "ViT-B/16, images resized to 224 (86 M parameters)"),
}


def arch_info(arch: str) -> ArchInfo:
    """The :class:`ArchInfo` of ``arch``; ValueError lists the known architectures."""
    try:
        return ARCH_INFO[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None


def is_transformer(arch: str) -> bool:
    """Whether ``arch`` is a vision transformer (its own optimiser and method defaults apply)."""
    return arch_info(arch).family == "vit"


class DigitsCNN(nn.Module):
    """A small CNN for 1x8x8 images.

    ``block1`` -> 32x8x8, ``block2`` -> 64x4x4, ``block3`` -> 128x2x2, ``fc1`` -> 128 (the
    penultimate features, after ReLU), ``fc`` -> ``num_classes`` logits. About 0.2 M parameters.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(128 * 2 * 2, 128), nn.ReLU())
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc1(self.block3(self.block2(self.block1(x)))))


class FashionCNN(nn.Module):
    """A CNN for 1x28x28 images sized for a CPU (``fmnist_cnn``).

    ``block1``: conv 3x3 (1 -> 32) then 2x2 max-pool and ReLU -> 32x14x14; ``block2``: conv 3x3
    (32 -> 64), max-pool, ReLU -> 64x7x7; ``fc1`` -> 128 (the penultimate features, after ReLU);
    ``fc`` -> ``num_classes`` logits. 421,642 parameters; a forward pass costs 8.48 MFLOP per
    image (2 x multiply-adds of the convolutions and linear layers). Pooling before the ReLU gives
    the same output as after it (max and ReLU commute) on a quarter of the elements.

    Why this size: on 2 CPU cores an epoch over the 60,000 training images takes about 16 s and 6
    epochs reach a test accuracy of 0.92, so both reference models train in a few minutes; a
    16 / 32-channel net is cheaper but uses the cores at under half their dense throughput
    (its convolutions are too thin), and stays below 0.92.
    """

    #: Trained and run in channels-last memory order (weights and batches): oneDNN's convolutions
    #: run about 2x faster so on a CPU (measured: 44 against 94 ms per step of 128 images on 2
    #: cores); the weights differ from an NCHW-trained model's, so it is part of the recipe.
    channels_last_input = True
    #: Images per evaluation batch: 256 keeps a batch's activations in a 32 MB L3 cache (measured:
    #: half the time of 1,024 per batch over the 70,000 images on 2 cores).
    eval_batch_size = 256

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.MaxPool2d(2), nn.ReLU())
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU())
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fc1(self.block2(self.block1(x))))


def _define_image_vit() -> type:
    """Define :class:`ImageViT` on first use: torchvision's import (about a second) is paid only
    by the processes that build a vision transformer."""
    VisionTransformer = import_torchvision("models.vision_transformer").VisionTransformer

    class ImageViT(VisionTransformer):
        """torchvision's VisionTransformer fed mucomp's batches: ``[N, C, h, w]`` images normalised
        with the data set's statistics; returns logits ``[N, num_classes]``.

        Before the patch embedding, ``forward`` maps the input on the device (no parameters, no
        persistent buffers, so the state dict is torchvision's key for key):

        1. renormalise per channel, ``x * (std_in / std_model) + (mean_in - mean_model) / std_model``,
           when the weights expect other statistics than the data set's (exact: both are affine);
        2. resize bilinearly (``align_corners=False``, the half-pixel convention of PIL's and
           torchvision's ``Resize``) to ``image_size`` x ``image_size`` when the input is smaller.

        ``in_channels`` other than 3 replaces ``conv_proj`` by a ``Conv2d(in_channels, hidden_dim,
        patch, stride=patch)`` initialised as torchvision initialises the patchify stem. The
        penultimate features are the class token after the encoder's final LayerNorm, the input of
        ``heads.head`` (``[N, hidden_dim]``).
        """

        def __init__(
            self,
            *,
            image_size: int,
            patch_size: int,
            num_layers: int,
            num_heads: int,
            hidden_dim: int,
            mlp_dim: int,
            num_classes: int,
            in_channels: int = 3,
            head_init: str = "torchvision",
            input_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
            model_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
        ) -> None:
            if head_init == "replaced":
                # vit_b_16(weights=None) builds a 1000-class head, then heads.head is replaced: the same
                # random draws in the same order as that recipe, so seeded weights match it exactly.
                super().__init__(image_size=image_size, patch_size=patch_size, num_layers=num_layers,
                                 num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim, num_classes=1000)
                self.heads.head = nn.Linear(hidden_dim, num_classes)
                self.num_classes = num_classes
            else:  # torchvision's own num_classes head (zero-initialised)
                super().__init__(image_size=image_size, patch_size=patch_size, num_layers=num_layers,
                                 num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim, num_classes=num_classes)
            if in_channels != 3:
                self.conv_proj = nn.Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
                fan_in = in_channels * patch_size * patch_size
                nn.init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))
                nn.init.zeros_(self.conv_proj.bias)
            self.renormalise = input_stats is not None and model_stats is not None and input_stats != model_stats
            if self.renormalise:
                (mean_in, std_in), (mean_m, std_m) = input_stats, model_stats
                scale = torch.tensor(std_in) / torch.tensor(std_m)
                shift = (torch.tensor(mean_in) - torch.tensor(mean_m)) / torch.tensor(std_m)
                self.register_buffer("input_scale", scale.view(1, -1, 1, 1), persistent=False)
                self.register_buffer("input_shift", shift.view(1, -1, 1, 1), persistent=False)

        def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
            """``[N, C, h, w]`` dataset-normalised -> ``[N, C, image_size, image_size]`` as the weights
            expect it (see the class docstring)."""
            if self.renormalise:
                x = x * self.input_scale.to(x.dtype) + self.input_shift.to(x.dtype)
            if x.shape[-2] != self.image_size or x.shape[-1] != self.image_size:
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
            return x

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(self.prepare_input(x))

    ImageViT.__module__, ImageViT.__qualname__ = __name__, "ImageViT"
    return ImageViT


def __getattr__(name: str) -> object:
    """``mucomp.models.ImageViT``, defined lazily (pickle and type hints find it by name)."""
    if name == "ImageViT":
        cls = _define_image_vit()
        globals()["ImageViT"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _image_vit(**kwargs) -> nn.Module:
    cls = globals().get("ImageViT") or __getattr__("ImageViT")
    return cls(**kwargs)


def vit_b16_cifar(num_classes: int = 10) -> nn.Module:
    """torchvision ``vit_b_16(weights=None)`` with ``heads.head = Linear(768, num_classes)``, fed
    CIFAR-10 batches ``[N, 3, 32, 32]`` (CIFAR-normalised; renormalised to
    :data:`VIT_B16_INPUT_NORMALISATION` and resized to 224 inside ``forward``). 86 M parameters."""
    return _image_vit(
        image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072,
        num_classes=num_classes, head_init="replaced",
        input_stats=(CIFAR10_MEAN, CIFAR10_STD), model_stats=VIT_B16_INPUT_NORMALISATION,
    )


def vit_digits(num_classes: int = 10) -> nn.Module:
    """A small ViT for the 1x8x8 digits: patch 2 (16 patches + the class token), 4 encoder layers
    of width 64 with 4 heads and an MLP of 128; about 0.14 M parameters. Fed digits batches as
    they are (no resize, the data set's own normalisation)."""
    return _image_vit(
        image_size=8, patch_size=2, num_layers=4, num_heads=4, hidden_dim=64, mlp_dim=128,
        num_classes=num_classes, in_channels=1,
    )


def _resnet18_small_input(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision ResNet-18 with a 3x3 stride-1 stem and no max-pool, for 32x32 / 28x28 inputs."""
    resnet18 = import_torchvision("models").resnet18

    model = resnet18(weights=None)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Linear(512, num_classes)
    # Images per evaluation batch: on 2 CPU cores 64 images ran 11.1 ms each against 13.5 ms in
    # batches of 512 (the activations of a small batch stay in cache; 1,024 images, channels-last).
    model.eval_batch_size = 64
    return model


_RESNET_LAYERS = [
    "conv1", "layer1.0", "layer1.1", "layer2.0", "layer2.1",
    "layer3.0", "layer3.1", "layer4.0", "layer4.1", "fc",
]


def _vit_layers(num_layers: int) -> list[str]:
    """The patch embedding, every encoder block's output (tokens, class token included) and the
    logits: what layer-wise CKA compares for a vision transformer."""
    return ["conv_proj", *(f"encoder.layers.encoder_layer_{i}" for i in range(num_layers)), "heads.head"]


_LAYERS = {
    "digits_cnn": ["block1", "block2", "block3", "fc1", "fc"],
    "fmnist_cnn": ["block1", "block2", "fc1", "fc"],
    "resnet18_cifar": _RESNET_LAYERS,
    "resnet18_fmnist": _RESNET_LAYERS,
    "vit_digits": _vit_layers(4),
    # Per kept image: conv_proj 768x14x14 and each encoder block 197x768 floats (about 0.6 MB
    # each in float32, 7.9 MB over the 13): see mucomp.similarity for what CKA keeps of them.
    "vit_b16_cifar": _vit_layers(12),
}


def build_model(arch: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model of architecture ``arch`` (one of :data:`ARCHITECTURES`).

    ``resnet18_cifar`` and ``vit_b16_cifar`` take ``[N, 3, 32, 32]``, ``resnet18_fmnist``
    ``[N, 1, 28, 28]``, ``digits_cnn`` and ``vit_digits`` ``[N, 1, 8, 8]`` (see
    :attr:`ArchInfo.input_shape`); all return logits ``[N, num_classes]``. Initialisation uses
    torch's global RNG: seed it (or use :func:`seeded_model`) for reproducible weights.
    """
    if arch == "digits_cnn":
        return DigitsCNN(num_classes)
    if arch == "fmnist_cnn":
        return FashionCNN(num_classes)
    if arch == "resnet18_cifar":
        return _resnet18_small_input(3, num_classes)
    if arch == "resnet18_fmnist":
        return _resnet18_small_input(1, num_classes)
    if arch == "vit_digits":
        return vit_digits(num_classes)
    if arch == "vit_b16_cifar":
        return vit_b16_cifar(num_classes)
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def channels_last(model: nn.Module) -> bool:
    """Whether ``model`` runs in channels-last memory order (its class says so: ``fmnist_cnn``);
    :func:`to_memory_format` puts it there."""
    return bool(getattr(model, "channels_last_input", False))


def to_memory_format(model: nn.Module) -> nn.Module:
    """``model`` (in place) in the memory order it trains and runs in: channels-last weights for
    an architecture that asks for it (its convolutions are then about 2x faster on a CPU; the
    values are unchanged), as it is otherwise."""
    if channels_last(model):
        model.to(memory_format=torch.channels_last)
    return model


def seeded_model(arch: str, num_classes: int, seed: int) -> nn.Module:
    """:func:`build_model` with weights drawn from ``seed``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch, num_classes)


def layer_names(arch: str) -> list[str]:
    """The named modules whose outputs layer-wise CKA compares, in forward order.

    Vision transformers: ``conv_proj`` (the patch embedding), ``encoder.layers.encoder_layer_0``
    ... ``_{L-1}`` (each block's output, every token) and ``heads.head`` (the logits)."""
    try:
        return list(_LAYERS[arch])
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}") from None


def penultimate_layer(model: nn.Module) -> nn.Linear:
    """The final linear layer; its input is the penultimate feature vector ``[N, d]``.

    ``fc`` for the CNNs and ResNets; ``heads.head`` for the vision transformers, whose input is
    the class-token representation after the encoder's final LayerNorm (``d`` = the width).
    """
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    head = getattr(getattr(model, "heads", None), "head", None)
    if isinstance(head, nn.Linear):
        return head
    raise ValueError("mucomp models end in an nn.Linear named 'fc' (or 'heads.head' for a ViT); this model has neither")


#: torchvision ImageNet weights an architecture starts from when it is trained (the published
#: ViT-B/16 files are fine-tunes of them: "Base Model: ViT-Base/16 (pretrained on ImageNet)").
PRETRAINED: dict[str, str] = {"vit_b16_cifar": "ViT_B_16_Weights.IMAGENET1K_V1"}


class PretrainedUnavailableError(RuntimeError):
    """Pretrained starting weights are not in torch's hub cache and may not be downloaded."""


def starting_model(arch: str, num_classes: int, seed: int) -> nn.Module:
    """The model a training run of ``arch`` starts from: :func:`seeded_model`, and for an
    architecture in :data:`PRETRAINED` every weight but the classifier's replaced by torchvision's
    ImageNet weights (fetched once into torch's hub cache, ``$TORCH_HOME/hub/checkpoints``).

    With ``MUCOMP_OFFLINE=1`` a weights file missing from that cache raises
    :class:`PretrainedUnavailableError` (saying where to put it) instead of downloading.
    """
    if arch not in PRETRAINED:
        return seeded_model(arch, num_classes, seed)
    tv_models = import_torchvision("models")

    enum_name, member = PRETRAINED[arch].split(".")
    weights = getattr(getattr(tv_models, enum_name), member)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    offline = os.environ.get("MUCOMP_OFFLINE", "") in ("1", "true", "yes")
    if offline and not os.path.exists(cached):
        raise PretrainedUnavailableError(
            f"training {arch} starts from torchvision's {PRETRAINED[arch]} weights, which are not in "
            f"{cached} and downloads are off (MUCOMP_OFFLINE=1). Download {weights.url} there once."
        )
    try:
        state = weights.get_state_dict(progress=False)
    except Exception as err:  # urllib, ssl, a truncated file
        raise PretrainedUnavailableError(
            f"torchvision's {PRETRAINED[arch]} weights could not be loaded ({type(err).__name__}: "
            f"{first_line(err)}); download {weights.url} to {cached}"
        ) from err
    model = seeded_model(arch, num_classes, seed)
    classifier = arch_info(arch).classifier
    backbone = {k: v for k, v in state.items() if not k.startswith(classifier + ".")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    if unexpected or any(not k.startswith(classifier + ".") for k in missing):
        raise StateDictMismatchError(arch, [k for k in missing if not k.startswith(classifier + ".")], list(unexpected), [])
    return model


def check_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], arch: str) -> None:
    """Raise :class:`~mucomp.weights.StateDictMismatchError` unless ``state_dict`` has exactly the
    model's keys and shapes (:func:`mucomp.weights.check_weights`)."""
    check = check_weights(state_dict, layout_of(model.state_dict()))
    if not check.fits:
        raise check.mismatch(arch)


@lru_cache(maxsize=16)
def expected_weights(arch: str, num_classes: int) -> Layout:
    """The state-dict layout ``{key: (shape, dtype)}`` of ``arch`` with ``num_classes`` classes
    (built once per process)."""
    return layout_of(build_model(arch, num_classes).state_dict())


def model_from_state_dict(arch: str, num_classes: int, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Build ``arch`` and load ``state_dict`` with ``strict=True`` after a readable key check."""
    model = build_model(arch, num_classes)
    state_dict = unwrap_state_dict(state_dict)
    check_state_dict(model, state_dict, arch)
    model.load_state_dict(state_dict, strict=True)
    return model
