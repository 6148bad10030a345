"""Which input normalisation reproduces the published ViT-B/16 CIFAR-10 accuracies?

The model card of ``Yurim0507/vit-base-16-cifar10-unlearning`` stops before its preprocessing, so
``vit_b16_cifar`` has to choose the statistics its weights are fed with
(:data:`mucomp.models.VIT_B16_INPUT_NORMALISATION`; ImageNet's). This script measures the
candidates on the real files: for each published file asked for, the test accuracy the card
reports (all 10,000 test images for the Original, the 9,000 of the retained classes for
``forget{k}``) beside the one measured with each normalisation, CIFAR images resized 32 -> 224
bilinearly as mucomp does. The candidate within 1 point of every card is the one to keep.

Needs the CIFAR-10 data (``mucomp download cifar10``) and the Hub files (network, the Hugging
Face cache, or ``MUCOMP_REFERENCE_DIR``); a GPU is advised (about 10 s per file and candidate on
one GPU, over an hour per file on 2 CPU cores).

    python benchmarks/vit_normalisation.py [--files original,forget3] [--device cuda] [--batch 128]
"""

from __future__ import annotations

import argparse
import sys

CANDIDATES = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's ImageNet weights
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),  # the same authors' ResNet cards
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # Hugging Face's ViT image processor
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="original,forget3", help="original and/or forget0..forget9")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()

    import numpy as np
    import torch

    from mucomp import settings
    from mucomp.data import CIFAR10_CLASSES, Scenario
    from mucomp.evaluation import evaluate
    from mucomp.models import CIFAR10_MEAN, CIFAR10_STD, _image_vit, model_from_state_dict
    from mucomp.reference_check import published_figures
    from mucomp.references import HUB_REPOS, download_checkpoint, hub_filename

    device = torch.device(args.device) if args.device else settings.default_device()
    test = Scenario("cifar10", 0).data.test
    print(f"| file | card | {' | '.join(CANDIDATES)} |")
    print(f"| --- | ---: | {' | '.join('---:' for _ in CANDIDATES)} |")
    for name in (n.strip() for n in args.files.split(",") if n.strip()):
        kind, forget = ("original", 0) if name == "original" else ("retrained", int(name.removeprefix("forget")))
        spec = Scenario("cifar10", forget).spec
        filename = hub_filename(spec, kind, forget, "vit_b16_cifar")
        path = download_checkpoint(HUB_REPOS["vit_b16_cifar"], filename)
        state = model_from_state_dict("vit_b16_cifar", 10, torch.load(path, map_location="cpu", weights_only=True)).state_dict()
        keep = np.arange(len(test)) if kind == "original" else np.flatnonzero(test.labels_np != forget)
        card = published_figures("cifar10", kind, forget, filename).get("card test accuracy", float("nan"))
        measured = []
        for mean, std in CANDIDATES.values():
            model = _image_vit(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768,
                               mlp_dim=3072, num_classes=10, head_init="replaced",
                               input_stats=(CIFAR10_MEAN, CIFAR10_STD), model_stats=(mean, std))
            model.load_state_dict(state, strict=True)
            result = evaluate(model.to(device), test, keep, batch_size=args.batch, device=device)
            measured.append(float((result.predictions == result.labels).mean()))
        label = f"{filename} ({'all' if kind == 'original' else 'without ' + CIFAR10_CLASSES[forget]})"
        print(f"| {label} | {card:.4f} | {' | '.join(f'{m:.4f} ({(m - card) * 100:+.1f})' for m in measured)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
