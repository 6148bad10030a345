"""Time layer-wise CKA on CIFAR-10 shapes: ResNet-18 activations, random weights, CPU.

    python benchmarks/cka_cifar_shapes.py [--repeats 3] [--threads 2] [--blas-threads N] [--gram-blas-threads 1|none]
                                          [--forget-cap 250] [--retain-cap 250]

The workload has the shape of ``/work/shared/bench/cifar_workload.py``: 5,000 train images
(500 per class: 500 forget + 4,500 retain for forget class 3) and 1,000 test images (100 per
class), random uint8 pixels, and three randomly initialised CIFAR ResNet-18s (Original seed 100,
Retrained 101, candidate 102, via ``mucomp.models.seeded_model``). The CKA subsets are drawn the
way ``Scenario.cka_indices`` draws them (seeded, class-balanced, capped: CIFAR-10 caps are 250
forget and 250 retain images per split, so 250 / 250 train and 100 / 250 test here).

Per model, the forward pass over the kept images (``evaluate`` on the union of the split's CKA
subsets, every named layer kept) is timed apart from the CKA work, then the Gram matrices of all
10 layers on its subsets are computed (``precompute_grams``) and its activations dropped, so only
one model's activations are in memory at a time (about 1.24 MB per image in float32). Reported:

- Gram matrices of one model (all layers x its 4 subsets), median of ``--repeats``;
- the report from Grams (2 references x 4 subsets x 10 layers), median;
- CKA for one new experiment = its Grams + the report (the references' Grams are computed once
  per scenario and cached), and for the first experiment of a scenario = 3 models' Grams + report;
- memory of the activations against the Grams.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def timed(fn, repeats: int, prepare=None) -> list[float]:
    out = []
    for _ in range(repeats):
        if prepare is not None:
            prepare()
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blas-threads", type=int, default=None, help="process-wide numpy BLAS threads (default: --threads)")
    parser.add_argument("--gram-blas-threads", default="1",
                        help="mucomp.similarity.BLAS_THREADS: cap during its products (default 1; 'none': no cap)")
    parser.add_argument("--forget-cap", type=int, default=None, help="default: DATASETS['cifar10'].cka_forget_cap")
    parser.add_argument("--retain-cap", type=int, default=None, help="default: DATASETS['cifar10'].cka_retain_cap")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    blas_threads = args.blas_threads or args.threads
    threadpool_limits(blas_threads, user_api="blas")
    import mucomp.embedding
    import mucomp.similarity

    cap = None if args.gram_blas_threads.lower() == "none" else int(args.gram_blas_threads)
    mucomp.similarity.BLAS_THREADS = mucomp.embedding.BLAS_THREADS = cap

    from mucomp.data import DATASETS, Split, balanced_subset, seeded_rng
    from mucomp.evaluation import evaluate
    from mucomp.models import layer_names, seeded_model
    from mucomp.similarity import cka_report, layerwise_cka, linear_cka, precompute_grams

    spec = DATASETS["cifar10"]
    forget_cap = args.forget_cap or spec.cka_forget_cap
    retain_cap = args.retain_cap or spec.cka_retain_cap
    forget_class, seed = 3, 0
    rng = np.random.default_rng(0)
    splits = {}
    for name, per_class in (("train", 500), ("test", 100)):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        images = rng.integers(0, 256, size=(labels.size, 3, 32, 32), dtype=np.uint8)
        splits[name] = Split(name, torch.from_numpy(images), torch.from_numpy(labels), spec.mean, spec.std)
    retain_classes = [k for k in range(10) if k != forget_class]
    subsets = {}
    for name, split in splits.items():
        draw = seeded_rng(seed, f"cka-{name}")
        subsets[f"{name}_forget"] = balanced_subset(split.labels_np, [forget_class], forget_cap, draw)
        subsets[f"{name}_retain"] = balanced_subset(split.labels_np, retain_classes, retain_cap, draw)
    kept = {name: np.union1d(subsets[f"{name}_forget"], subsets[f"{name}_retain"]) for name in splits}
    layers = layer_names("resnet18_cifar")

    evals, forward_s, gram_s = {}, {}, {}
    act_bytes = gram_bytes = 0
    check = None
    for role, model_seed in (("original", 100), ("retrained", 101), ("candidate", 102)):
        model = seeded_model("resnet18_cifar", 10, model_seed)
        evals[role] = {}
        start = time.perf_counter()
        for name, split in splits.items():
            evals[role][name] = evaluate(model, split, kept[name], layers, kept[name],
                                         batch_size=args.batch_size, device="cpu")
        forward_s[role] = time.perf_counter() - start
        act_bytes = sum(a.nbytes for ev in evals[role].values() for a in ev.activations.values())

        def clear(role=role):
            for ev in evals[role].values():
                ev.grams.clear()

        def grams(role=role):
            for ev in evals[role].values():
                precompute_grams(ev, subsets)

        gram_s[role] = timed(grams, args.repeats, prepare=clear)
        if role == "candidate":  # cross-check one layer against the plain function on raw activations
            ev_o = evals["original"]["train"]
            ev_c = evals["candidate"]["train"]
            idx = subsets["train_forget"]
            check = (
                layerwise_cka(ev_o, ev_c, idx, layers=["layer4.1"])["layer4.1"],
                linear_cka(ev_c.layer_activations("layer4.1", idx), ev_c.layer_activations("layer4.1", idx)),
            )
        gram_bytes = sum(g.nbytes for ev in evals[role].values() for g in ev.grams.values())
        for ev in evals[role].values():
            precompute_grams(ev, subsets, drop_activations=True)
        del model

    refs = {"original": evals["original"], "retrained": evals["retrained"]}
    report_s = timed(lambda: cka_report(refs, evals["candidate"], subsets), args.repeats)
    report = cka_report(refs, evals["candidate"], subsets)

    sizes = {k: int(v.size) for k, v in subsets.items()}
    med = statistics.median
    one_experiment = med(gram_s["candidate"]) + med(report_s)
    first_experiment = sum(med(v) for v in gram_s.values()) + med(report_s)
    print(
        f"CIFAR-10 shapes, ResNet-18 random weights, {args.threads} torch threads, {blas_threads} BLAS threads (capped at {cap} in CKA/UMAP), "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; CKA subsets {sizes}; "
        f"kept images per model {sum(v.size for v in kept.values())}; {len(layers)} layers"
    )
    print()
    print("| stage | median s | runs |")
    print("| --- | ---: | --- |")
    for role in evals:
        print(f"| forward pass, {role} (kept images only, activations of {len(layers)} layers) | {forward_s[role]:.2f} | 1 run |")
    for role in evals:
        print(f"| Gram matrices, {role} (10 layers x 4 subsets, float64) | {fmt(gram_s[role])} |")
    print(f"| CKA report from Grams (2 refs x 4 subsets x 10 layers) | {fmt(report_s)} |")
    print(f"| **CKA for one experiment** (its Grams + report; reference Grams cached) | {one_experiment:.2f} | |")
    print(f"| CKA for the first experiment of a scenario (3 models' Grams + report) | {first_experiment:.2f} | |")
    print()
    print(f"Memory per model: activations {act_bytes / 2**20:.0f} MiB (float32) -> Grams {gram_bytes / 2**20:.1f} MiB (float64)")
    print(f"Check, layer4.1 train_forget: CKA(original, candidate) = {check[0]:.4f}; CKA(candidate, candidate) = {check[1]:.6f}")
    print()
    print("| subset | " + " | ".join(layers) + " |")
    print("| --- |" + " ---: |" * len(layers))
    for reference, by_subset in report.items():
        for subset, values in by_subset.items():
            print(f"| {reference} / {subset} | " + " | ".join(f"{values[layer]:.3f}" for layer in layers) + " |")


if __name__ == "__main__":
    main()
