"""Time layer-wise CKA and UMAP for one digits experiment (forget class 3, seed 0).

    python benchmarks/similarity_digits.py [--repeats 5] [--threads 2] [--blas-threads N]
                                           [--gram-blas-threads 1|none] [--home DIR]

CKA: the full Contrast-page report, both references (Original, Retrained) x the four subsets
(train/test x forget/retain) x every layer of the digits CNN, for one experiment model (the
Retrained reference with small weight noise, a stand-in for an unlearned model; the timing does not
depend on the weights). Three cases:

- cold: no Gram matrix cached anywhere (the first experiment of a scenario);
- refs cached: the references' Gram matrices already cached (every later experiment);
- all cached: a redraw of the same chart.

UMAP: after ``warm_up()``, one ``embed()`` of the experiment's penultimate features on the digits
embedding subset (all 1,347 train images), then the whole twin table (``embedding_points``: two
fits, Procrustes, probabilities) without the layout cache.

Targets (issue 5): CKA <= 2 s; a warm UMAP of the digits subset <= 3 s. The references are trained
(or read from the cache) under ``--home`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import tempfile
import time


def median_time(fn, repeats: int, prepare=None) -> list[float]:
    times = []
    for _ in range(repeats):
        if prepare is not None:
            prepare()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def row(name: str, times: list[float]) -> str:
    return f"| {name} | {statistics.median(times):.3f} | {', '.join(f'{t:.3f}' for t in times)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blas-threads", type=int, default=None, help="process-wide numpy BLAS threads (default: --threads)")
    parser.add_argument("--gram-blas-threads", default="1",
                        help="mucomp.similarity/embedding.BLAS_THREADS: cap during their products (default 1; 'none': no cap)")
    parser.add_argument("--home", default=None, help="MUCOMP_HOME for the reference cache (default: temporary)")
    args = parser.parse_args()
    home = args.home or tempfile.mkdtemp(prefix="mucomp-bench-home-")
    os.environ["MUCOMP_HOME"] = home
    os.environ.setdefault("MUCOMP_DEVICE", "cpu")

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    blas_threads = args.blas_threads or args.threads
    threadpool_limits(blas_threads, user_api="blas")
    import mucomp.embedding
    import mucomp.similarity

    cap = None if args.gram_blas_threads.lower() == "none" else int(args.gram_blas_threads)
    mucomp.similarity.BLAS_THREADS = mucomp.embedding.BLAS_THREADS = cap

    from mucomp import embedding
    from mucomp.data import Scenario
    from mucomp.evaluation import evaluate_scenario
    from mucomp.references import load_references
    from mucomp.similarity import cka_report

    scenario = Scenario("digits", 3, 0)
    start = time.perf_counter()
    warm = embedding.warm_up(background=True)  # compiles UMAP while the references train
    original, retrained = load_references(scenario, device="cpu")
    setup_s = time.perf_counter() - start
    model = copy.deepcopy(retrained.model)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
    evals = {
        "original": evaluate_scenario(original.model, scenario, device="cpu"),
        "retrained": evaluate_scenario(retrained.model, scenario, device="cpu"),
    }
    model_evals = evaluate_scenario(model, scenario, device="cpu")
    subsets = scenario.cka_indices

    def fresh(ev_by_split):
        return {split: dataclasses.replace(ev, grams={}) for split, ev in ev_by_split.items()}

    state = {}

    def cold():
        state["refs"] = {kind: fresh(e) for kind, e in evals.items()}
        state["model"] = fresh(model_evals)

    def refs_cached():
        state["model"] = fresh(model_evals)

    def run_report():
        state["report"] = cka_report(state["refs"], state["model"], subsets)

    wait_start = time.perf_counter()
    embedding.warm_up(background=False)  # no numba compile competing with the timings below
    warm_wait = time.perf_counter() - wait_start
    cold()
    run_report()  # first call: imports, allocator warm-up
    cka_cold = median_time(run_report, args.repeats, prepare=cold)
    cka_refs = median_time(run_report, args.repeats, prepare=refs_cached)
    cka_all = median_time(run_report, args.repeats)

    idx = scenario.embedding_indices
    features = model_evals["train"].features[model_evals["train"].positions(idx)]
    umap_warm = median_time(lambda: embedding.embed(features, scenario.train_seed), args.repeats)
    twin = median_time(
        lambda: embedding.embedding_points(
            evals["original"]["train"], model_evals["train"], idx, scenario.forget_class, scenario.train_seed
        ),
        max(1, args.repeats // 2),
    )

    n = {k: int(v.size) for k, v in subsets.items()}
    layers = list(next(iter(state["report"]["original"].values())))
    print(
        f"digits, forget class 3, {args.threads} torch threads, {blas_threads} BLAS threads (capped at {cap} in CKA/UMAP), {os.cpu_count()} CPUs, "
        f"load average "
        f"{os.getloadavg()[0]:.1f}; CKA subsets {n}; layers {layers}; UMAP on {idx.size} x "
        f"{features.shape[1]} features; references ready in {setup_s:.1f} s, then waited {warm_wait:.1f} s for "
        f"the UMAP warm-up thread ({'started here' if warm is not None else 'already warm'})"
    )
    print()
    print("| figure | median s | runs |")
    print("| --- | ---: | --- |")
    print(row("CKA report, cold (2 refs x 4 subsets x 5 layers, all Grams computed)", cka_cold))
    print(row("CKA report, reference Grams cached", cka_refs))
    print(row("CKA report, all cached (redraw)", cka_all))
    print(row(f"UMAP embed, warm ({idx.size} points)", umap_warm))
    print(row("twin table (2 UMAP fits + Procrustes + probabilities), warm, no cache", twin))
    print()
    print("CKA, Original vs this model (unbiased):")
    print("| subset | " + " | ".join(layers) + " |")
    print("| --- |" + " ---: |" * len(layers))
    for subset, values in state["report"]["original"].items():
        print(f"| {subset} | " + " | ".join(f"{values[layer]:.4f}" for layer in layers) + " |")


if __name__ == "__main__":
    main()
