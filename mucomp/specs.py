"""The data set registry, torch-free: what is known about each data set before it is loaded.

Kept apart from :mod:`mucomp.data` (which imports torch) so that quick commands such as
``mucomp list`` and the stored-result schema can name data sets and count classes without paying
for torch's import (about a second). :mod:`mucomp.data` re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral


@dataclass(frozen=True)
class DatasetSpec:
    """What is known about a data set before it is loaded.

    ``mean`` and ``std`` are per channel, for images scaled to [0, 1]. The ``*_cap`` fields size
    the fixed subsets a :class:`Scenario` draws (numbers of images).
    """

    name: str
    label: str
    arch: str
    class_names: tuple[str, ...]
    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    needs_download: bool
    hub_repo: str | None = None
    embedding_per_class: int = 200
    cka_forget_cap: int = 250
    cka_retain_cap: int = 250
    mia_cap: int = 5000
    description: str = ""
    #: Architectures a scenario of this data set may use; the first is the default ``arch``.
    alt_archs: tuple[str, ...] = ()
    #: Images in the training split (0: unknown), so that a forget set's size is checked before
    #: anything loads (:func:`mucomp.forget_sets.check_sizes`); the loaded split is checked again.
    train_images: int = 0

    @property
    def archs(self) -> tuple[str, ...]:
        """Every architecture a scenario may choose: the default ``arch`` first."""
        return (self.arch, *self.alt_archs)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_index(self, value: int | str) -> int:
        """Resolve a class given as an index (``3``, ``"3"``) or a name (``"cat"``) to its index."""
        if isinstance(value, str):
            stripped = value.strip()
            lowered = [name.lower() for name in self.class_names]
            if stripped.lower() in lowered:
                return lowered.index(stripped.lower())
            if stripped.lstrip("-").isdigit():
                if not stripped.isascii():  # int() would read other scripts' digits (and fail on '²')
                    raise ValueError(
                        f"class {value!r} is not a whole number written with the digits 0-9; use an index "
                        f"0-{self.num_classes - 1} or one of {', '.join(self.class_names)}"
                    )
                value = int(stripped)
            else:
                raise ValueError(
                    f"unknown class {value!r} for {self.name}; use an index 0-{self.num_classes - 1} "
                    f"or one of {', '.join(self.class_names)}"
                )
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise ValueError(f"a class must be an int or a class name, got {value!r}")
        if not 0 <= int(value) < self.num_classes:
            raise ValueError(
                f"class {value} is out of range for {self.name}: use 0-{self.num_classes - 1}"
            )
        return int(value)


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(
        name="digits",
        label="Digits (8x8, bundled)",
        arch="digits_cnn",
        class_names=tuple(str(k) for k in range(10)),
        channels=1,
        size=8,
        # Measured over all 1,797 images scaled to [0, 1].
        mean=(0.3053,),
        std=(0.3760,),
        needs_download=False,
        description="scikit-learn's 1,797 hand-written 8x8 digits; runs offline on a CPU in seconds",
        alt_archs=("vit_digits",),
        train_images=1347,  # 1,797 less the 25 % test share (mucomp.data.loading.DIGITS_TEST_SHARE)
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        label="Fashion-MNIST (28x28)",
        arch="resnet18_fmnist",
        class_names=FASHION_CLASSES,
        channels=1,
        size=28,
        mean=(0.2860,),
        std=(0.3530,),
        needs_download=True,
        hub_repo="Yurim0507/resnet18-fashionmnist-unlearning",
        description="70,000 28x28 grey clothing images: ResNet-18 from published checkpoints (a network and a GPU "
                    "advised), or a CPU-sized CNN trained here in minutes",
        alt_archs=("fmnist_cnn",),
        train_images=60_000,
    ),
    "cifar10": DatasetSpec(
        name="cifar10",
        label="CIFAR-10 (32x32)",
        arch="resnet18_cifar",
        class_names=CIFAR10_CLASSES,
        channels=3,
        size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        needs_download=True,
        hub_repo="jaeunglee/resnet18-cifar10-unlearning",
        description="60,000 32x32 colour images; ResNet-18 with published checkpoints; a GPU is advised",
        alt_archs=("vit_b16_cifar",),
        train_images=50_000,
    ),
}


#: How Home offers each architecture: what it is and what it needs (a network, a GPU, minutes).
ARCH_LABELS: dict[str, str] = {
    "digits_cnn": "digits_cnn: small CNN trained here in seconds",
    "vit_digits": "vit_digits: small vision transformer trained here in under a minute",
    "resnet18_fmnist": "resnet18_fmnist: ResNet-18 from published checkpoints (a network; a GPU advised)",
    "fmnist_cnn": "fmnist_cnn: CPU-sized CNN trained here in minutes (no network, no GPU)",
    "resnet18_cifar": "resnet18_cifar: ResNet-18 from published checkpoints (a network; a GPU advised)",
    "vit_b16_cifar": "vit_b16_cifar: ViT-B/16 from published checkpoints (a network and a GPU)",
}


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` registered as ``name``; a clear error lists the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
