"""SCRUB (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning"): the model is a
student of its frozen original (the teacher). Each epoch first takes max-steps (during the
first ``msteps`` epochs): one pass over the forget set that pushes the student's softened
predictions away from the teacher's (maximise KL); then min-steps: one pass over the retain set
minimising ``gamma * CE + alpha * KL`` to stay close to the teacher.

Names and CIFAR-10 defaults follow the authors' code (meghdadk/SCRUB, large-scale notebook):
``kd_T`` 4 (temperature of the KL, scaled by kd_T^2 as in distillation), ``alpha`` 0.001 (KL
weight), ``gamma`` 0.99 (cross-entropy weight), ``msteps`` 2, 3 epochs at lr 5e-4 with SGD
(momentum 0.9, weight decay 5e-4), forget batches of 512 and retain batches of 256. The
paper code's third weight, ``beta``, multiplies an optional non-KL distillation term (hint,
CRD, ...), zero in the published ``kd`` setting; it has no counterpart here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import Param
from mucomp.methods.registry import register
from mucomp.methods.sources import FMNIST_CNN_TUNED, VIT_B16_RECIPE, VIT_DIGITS_TUNED, reused_for_fashion_mnist

AUTHORS = ("SCRUB authors: meghdadk/SCRUB large_scale_unlearning.ipynb (CIFAR-10: sgda_epochs 3, lr 5e-4, msteps 2, kd_T 4, "
           "alpha 0.001, gamma 0.99, batch 256, forget batch 512)")
PUBLISHED = {
    "epochs": 3, "lr": 5e-4, "batch_size": 256, "forget_batch_size": 512,
    "msteps": 2, "kd_T": 4.0, "alpha": 0.001, "gamma": 0.99,
}


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of the softmaxes at ``temperature``, times temperature^2, averaged
    over the batch (``[b, C]`` logits -> scalar)."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


@register(
    "scrub",
    defaults={
        "digits": {"epochs": 3, "lr": 0.006, "batch_size": 32, "forget_batch_size": 32,
                   "msteps": 2, "kd_T": 4.0, "alpha": 0.001, "gamma": 0.99},
        "cifar10": PUBLISHED,
        "fashion_mnist": PUBLISHED,
        "fmnist_cnn": {**PUBLISHED, "epochs": 2},
        "vit_digits": {"epochs": 3, "lr": 3e-4, "batch_size": 32, "forget_batch_size": 32, "msteps": 2, "kd_T": 4.0, "alpha": 0.001, "gamma": 0.99},
        "vit_b16_cifar": {"epochs": 3, "lr": 1e-5, "batch_size": 64, "forget_batch_size": 64, "msteps": 2, "kd_T": 4.0, "alpha": 0.001, "gamma": 0.99},
    },
    default_sources={"cifar10": AUTHORS, "fashion_mnist": reused_for_fashion_mnist(AUTHORS),
                     "fmnist_cnn": {"epochs": FMNIST_CNN_TUNED, "msteps": FMNIST_CNN_TUNED, "*": reused_for_fashion_mnist(AUTHORS)},
                     "vit_b16_cifar": VIT_B16_RECIPE, "vit_digits": VIT_DIGITS_TUNED},
    params=[
        Param("msteps", "int", min=0, max=1000, help="the first msteps epochs include a max-step pass over the forget set"),
        Param("kd_T", "float", min=0.0, max=100.0, exclusive_min=True, help="temperature of the teacher-student KL"),
        Param("alpha", "float", min=0.0, max=100.0, help="weight of the KL to the teacher in the min-steps"),
        Param("gamma", "float", min=0.0, max=100.0, help="weight of the cross-entropy in the min-steps"),
        Param("forget_batch_size", "int", min=1, max=8192, help="batch size of the max-steps on the forget set"),
    ],
)
def scrub(ctx: UnlearnContext) -> None:
    """Max-steps away from the teacher on the forget set, min-steps towards it on the retain set."""
    teacher, student = ctx.teacher(), ctx.model
    h = ctx.hyper
    for epoch in ctx.epochs():
        if epoch <= h["msteps"]:
            for images, _labels in ctx.forget_batches(h["forget_batch_size"]):
                with torch.no_grad():
                    target = teacher(images)
                ctx.step(-distill_kl(student(images), target, h["kd_T"]))
        for images, labels in ctx.retain_batches():
            with torch.no_grad():
                target = teacher(images)
            logits = student(images)
            ctx.step(h["gamma"] * F.cross_entropy(logits, labels) + h["alpha"] * distill_kl(logits, target, h["kd_T"]))
