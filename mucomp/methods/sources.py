"""Citations of the published defaults the built-in methods share (their ``default_sources``).

Each constant names the repository, the file and the values it holds; ``mucomp methods --json``
lists them beside every default. A method's own citations stay in its file. No canonical
repository publishes a Fashion-MNIST recipe for these methods: every ``fashion_mnist`` citation
is the CIFAR-10 one, reused (:func:`reused_for_fashion_mnist` says so).
"""

from __future__ import annotations

from collections.abc import Mapping


def reused_for_fashion_mnist(sources: str | Mapping[str, str]) -> str | dict[str, str]:
    """The CIFAR-10 citation(s) ``sources``, marked as reused for Fashion-MNIST."""
    if isinstance(sources, Mapping):
        return {name: reused_for_fashion_mnist(text) for name, text in sources.items()}
    return f"CIFAR-10 values reused (no published Fashion-MNIST recipe): {sources}"


#: Citations of the published defaults the built-in methods share (``default_sources``).
COMPARATOR_CLASSWISE = (
    "published comparator, class-wise defaults: gnueaj/Machine-Unlearning-Comparator "
    "frontend/src/utils/config/unlearning.ts"
)
COMPARATOR_MAX_GRAD_NORM = (
    "published comparator backend: gnueaj/Machine-Unlearning-Comparator backend/app/config/settings.py "
    "(MAX_GRAD_NORM = 100)"
)
#: Random forgetting on CIFAR-10 (``"cifar10:random"``): 4,500 random training images (10 %) on
#: ResNet-18. Epochs and lr only; the batch size stays the class-wise default.
SPARSE_RANDOM = (
    "Unlearn-Sparse authors' README.MD commands (FT: 10 epochs, lr 0.01; GA: 5 epochs, lr 1e-4; "
    "OPTML-Group/Unlearn-Sparse), which at that repository's defaults (class_to_replace 0) forget "
    "class 0: mucomp applies their values to random forgetting"
)
SALUN_RANDOM = (
    "SalUn authors, random forgetting of 10 % of CIFAR-10: OPTML-Group/Unlearn-Saliency "
    "Classification/README.md (RL with the saliency mask: 10 epochs, lr 0.013, mask/with_0.5.pt) and "
    "arg_parser.py (batch 256)"
)
#: fmnist_cnn: mucomp's own (no published recipe for this architecture): one protocol on ONE
#: class, benchmarks/tune_fmnist_cnn.py.
FMNIST_CNN_TUNED = (
    "mucomp's own, tuned on fmnist_cnn, forget class 0 (checked on class 6, shirts), seeds 0: the smallest Avg. Gap to the Retrained "
    "model among the settings of a small grid with UA <= 0.15, TRA within 0.05 of the Original's and "
    "unlearning time <= 60 s on 2 CPU cores; when none meets it, the setting that misses it by the least "
    "(benchmarks/tune_fmnist_cnn.py)"
)
#: fmnist_cnn where the method's CIFAR-10 recipe already met that bar on class 0 (checked with
#: benchmarks/tune_fmnist_cnn.py) and kept its time budget: the published values, reused.
FMNIST_CNN_CHECKED = (
    "CIFAR-10 values reused, checked on fmnist_cnn forget class 0 (benchmarks/tune_fmnist_cnn.py: UA <= 0.15, "
    "TRA within 0.05 of the Original's)"
)
#: ViT-B/16 on CIFAR-10: no published unlearning defaults exist for these files. mucomp's start:
#: the optimiser and learning-rate scale of the files' own recipe, lower for unlearning, batch 64
#: (what fits a 16 GB GPU at 224 x 224), fewer epochs than the ResNet recipes (an epoch is ~20x
#: the compute). Not tuned on the published files (no GPU was available when they were set).
VIT_B16_RECIPE = (
    "mucomp's start for ViT-B/16, not yet tuned on the published files: AdamW (weight decay 0.01) at "
    "learning rates below the files' fine-tuning lr 5e-5 (Yurim0507/vit-base-16-cifar10-unlearning model card: "
    "AdamW, lr 5e-5, weight decay 0.01, batch 16)"
)
#: The SSD authors' ViT-B/16 runs (if-loops/selective-synaptic-dampening ``forget_full_class_main.py``
#: and ``forget_full_class_strategies.py``): SSD's selection weighting 10 x 0.5 = 5 for a ViT,
#: Bad Teacher's batch lowered to 128, Adam at lr 1e-4 for Bad Teacher and UNSIR.
SSD_AUTHORS_VIT = (
    "SSD authors' ViT runs: if-loops/selective-synaptic-dampening forget_full_class_main.py "
    "(selection_weighting 10 x 0.5 for ViT) and forget_full_class_strategies.py (Bad Teacher batch 128; Adam lr 1e-4)"
)
#: vit_digits: mucomp's own, tuned like the digits CNN's (benchmarks/classwise_digits.py --arch vit_digits).
VIT_DIGITS_TUNED = "mucomp's own, tuned on vit_digits (benchmarks/classwise_digits.py --arch vit_digits)"
#: digits_cnn: mucomp's own, tuned on digits class 3 over unlearning seeds 0-4
#: (benchmarks/classwise_digits.py, benchmarks/methods_seeds_digits.py).
DIGITS_TUNED = "mucomp's own, tuned on digits_cnn, forget class 3, unlearning seeds 0-4 (benchmarks/classwise_digits.py)"
#: Unlearning-time augmentation (the shared ``augment`` option) where a cited recipe's data loader
#: augments: the Unlearn-Sparse and SalUn CIFAR-10 loaders build forget and retain sets from a
#: training set transformed with RandomCrop(32, padding=4) + RandomHorizontalFlip unless --no-aug.
SPARSE_AUGMENT = (
    "Unlearn-Sparse authors: OPTML-Group/Unlearn-Sparse dataset.py:542-555 (cifar10_dataloaders: RandomCrop(32, "
    "padding=4) + RandomHorizontalFlip unless no_aug), arg_parser.py:77-82 (--no-aug default False), main_forget.py:53-100 "
    "(forget and retain sets from that training set); main branch run.py:11 (FT_prune without --no-aug)"
)
SALUN_AUGMENT = (
    "SalUn authors: OPTML-Group/Unlearn-Saliency Classification/dataset.py:542-555 (RandomCrop(32, padding=4) + "
    "RandomHorizontalFlip unless no_aug), arg_parser.py:79-84 (--no-aug default False), main_random.py:50-110 (forget "
    "and retain sets from that training set)"
)
#: The comparator's class-wise runs never augment (``get_data_loaders(augmentation=False)``).
COMPARATOR_NO_AUGMENT = (
    "published comparator: gnueaj/Machine-Unlearning-Comparator backend/app/services/unlearn_FT.py:27 and "
    "unlearn_GA.py:29 (AUGMENTATION = False), unlearn_SalUn.py:47 (augmentation=False)"
)
#: FT's schedule in the comparator: per-epoch cosine annealing with an absolute floor of 0.01.
COMPARATOR_FT_SCHEDULE = (
    "published comparator: gnueaj/Machine-Unlearning-Comparator backend/app/services/unlearn_FT.py:26 (ETA_MIN = 0.01), "
    ":111-116 (CosineAnnealingLR, T_max = epochs, eta_min = ETA_MIN), threads/unlearn_FT_thread.py:250 (stepped per epoch)"
)
#: Fashion-MNIST: the CIFAR-10 hyper-parameter values are reused, the CIFAR-10 loader's augmentation is not.
FMNIST_NO_AUGMENT = (
    "mucomp's choice: no unlearning-time augmentation on Fashion-MNIST (the augmenting recipes' RandomCrop(32, "
    "padding=4) + flip is their CIFAR-10 loader's; no published Fashion-MNIST unlearning recipe exists)"
)
#: The Unlearn-Sparse runs keep their rate over 10 epochs: MultiStepLR at milestones 91 and 136.
SPARSE_CONSTANT_LR = (
    "Unlearn-Sparse authors: OPTML-Group/Unlearn-Sparse unlearn/impl.py:98-99 (MultiStepLR at decreasing_lr, gamma 0.1), "
    "arg_parser.py:76 (decreasing_lr 91,136): constant over the run's epochs"
)
