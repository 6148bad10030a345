"""A complete custom unlearning method for mucomp: "NegGrad+ until forgotten".

NegGrad+ (a baseline in the SCRUB paper) takes one step per retain batch on

    (1 - forget_weight) * CE(retain batch)  -  forget_weight * CE(forget batch)

so the model keeps fitting the retain set while it is pushed away from the forget set. Plain
gradient ascent has no floor: once a forget image is misclassified its loss keeps growing and
drags the whole model along. This variant ascends only on the forget images the model still
classifies correctly, which stops the push where forgetting is reached.

Use it under its registered name, ``neggrad_until`` (``--method`` takes the name given to
``register``, not the file's):

    MUCOMP_PLUGINS=examples/my_method.py mucomp methods
    MUCOMP_PLUGINS=examples/my_method.py mucomp run --forget-class 3 --method neggrad_until
    MUCOMP_PLUGINS=examples/my_method.py streamlit run Home.py

It uses only the public API of ``mucomp.methods``: ``register``, ``Param`` and the context's
helpers (``epochs``, ``retain_batches``, ``forget_batches``, ``step``, ``set_clip_grad_norm``,
``hyper``, ``model``). The loop mechanics (optimiser, cancellation, divergence, per-epoch
forget accuracy, progress, timing) are mucomp's.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from mucomp.methods import Param, UnlearnContext, register


def endless_forget_batches(ctx: UnlearnContext) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Forget-set batches without end, reshuffled on every pass (from the experiment seed)."""
    while True:
        yield from ctx.forget_batches()


def remembered_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed over the images still classified as their label, divided by the
    batch size (``[b, C]`` logits, ``[b]`` labels -> scalar; 0 when none is remembered)."""
    remembered = (logits.argmax(dim=1) == labels).float()
    return (F.cross_entropy(logits, labels, reduction="none") * remembered).sum() / labels.numel()


@register(
    "neggrad_until",
    label="NegGrad+ until forgotten (example plugin)",
    defaults={
        "digits": {"epochs": 3, "lr": 0.01, "batch_size": 32, "forget_weight": 0.5, "clip_grad_norm": 1.0},
        "*": {"epochs": 5, "lr": 0.01, "batch_size": 128, "forget_weight": 0.05, "clip_grad_norm": 5.0},
    },
    params=[
        Param("forget_weight", "float", min=0.0, max=1.0, help="weight of the forget-set ascent against the retain-set fit"),
        Param("clip_grad_norm", "float", min=0.0, max=1000.0, help="clip the gradient norm (0: no clipping)"),
    ],
)
def neggrad_until_forgotten(ctx: UnlearnContext) -> None:
    """Descend the retain-set cross-entropy, ascend that of still-remembered forget images."""
    weight = ctx.hyper["forget_weight"]
    ctx.set_clip_grad_norm(ctx.hyper["clip_grad_norm"])
    forget = endless_forget_batches(ctx)
    for _epoch in ctx.epochs():
        for images, labels in ctx.retain_batches():
            forget_images, forget_labels = next(forget)
            retain_loss = F.cross_entropy(ctx.model(images), labels)
            ctx.step((1 - weight) * retain_loss - weight * remembered_loss(ctx.model(forget_images), forget_labels))
