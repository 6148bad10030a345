"""Speed and drift of the opt-in bf16 evaluation (``MUCOMP_PRECISION=bf16``) against fp32.

Two workloads, each evaluated end to end once per precision (references and model alike, each
precision with its own store and a fresh scenario cache, as a process started with that
precision would run it), plus ``--repeats`` timed forward passes per precision:

1. the CIFAR-shaped workload (``shared/bench``: 5,000 + 1,000 random CIFAR-10 images, random
   CIFAR ResNet-18 references and candidate; see ``benchmarks/cifar_shaped.py``): the candidate's
   forward pass over both splits (6,000 images), and how far its UA, TRA, PS and CKA (every layer,
   both references, the four subsets) move;
2. digits: every built-in method run once at its digits defaults (in fp32: unlearning never uses
   autocast), then the unlearned model evaluated in each precision: forward time over both splits
   (1,797 images) and the largest change of UA, TRA, PS and CKA over the methods.

Printed: one Markdown table, per workload the median forward seconds in fp32 and bf16, the
speed-up, and the largest absolute change of each figure (``|bf16 - fp32|``; CKA over every
layer, reference and subset; NaN entries, e.g. a layer without variance, are skipped).

    python benchmarks/precision_bf16.py [--shared ../shared] [--workdir DIR] [--repeats 3]
                                        [--threads 2] [--arch digits_cnn|vit_digits] [--skip-cifar]

bf16 needs a CPU with native bfloat16 kernels (AVX512-BF16 or AMX) or a GPU; elsewhere the
"bf16" pass is fp32 and the script says so.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUCOMP_OFFLINE", "1")
os.environ.setdefault("MUCOMP_DEVICE", "cpu")

PRECISIONS = ("fp32", "bf16")


def cka_values(figures: dict) -> dict[tuple[str, str, str], float]:
    """``{(reference, subset, layer): CKA}`` of one model's figures (NaN kept)."""
    out = {}
    for reference, by_subset in figures["cka"].items():
        if reference == "layers":
            continue
        for subset, by_layer in by_subset.items():
            for layer, value in by_layer.items():
                out[(reference, subset, layer)] = math.nan if value is None else float(value)
    return out


def drift(a: dict, b: dict) -> dict[str, float]:
    """Largest |b - a| of UA, TRA, PS and CKA between two models' figures."""
    out = {key: abs(float(b["metrics"][key]) - float(a["metrics"][key])) for key in ("UA", "TRA", "PS")}
    ca, cb = cka_values(a), cka_values(b)
    gaps = [abs(cb[k] - ca[k]) for k in ca if k in cb and math.isfinite(ca[k]) and math.isfinite(cb[k])]
    out["CKA"] = max(gaps) if gaps else math.nan
    return out


def forward_seconds(model, scenario, repeats: int) -> float:
    """Median seconds of one forward pass over both splits (activations kept, as the runner does)."""
    from mucomp.evaluation import evaluate_scenario

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate_scenario(model, scenario)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def evaluate_in(precision: str, scenario, models: dict, store_root: Path, repeats: int) -> tuple[dict, dict]:
    """Every figure of each model in ``models`` (name -> model) and the median forward seconds,
    with the whole scenario (references included) evaluated in ``precision``."""
    from mucomp.runner import clear_scenario_cache, evaluate_model, prepare_scenario
    from mucomp.store import ExperimentStore

    os.environ["MUCOMP_PRECISION"] = precision
    clear_scenario_cache()
    state = prepare_scenario(scenario, ExperimentStore(store_root / precision), device="cpu")
    figures = {name: evaluate_model(model, state, model_id=f"{name}-{precision}") for name, model in models.items()}
    seconds = {name: forward_seconds(model, scenario, repeats) for name, model in models.items()}
    return figures, seconds


def cifar_row(args, repeats: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cifar_shaped import prepare_workdir

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mucomp-bf16-cifar-"))
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = prepare_workdir(args.shared, workdir)
    import torch
    from cifar_workload import torchvision_accepts

    from mucomp.data import Scenario, load_dataset
    from mucomp.models import model_from_state_dict

    scenario = Scenario("cifar10", manifest["forget_class"], 0)
    with torchvision_accepts(manifest):
        load_dataset("cifar10")
    candidate = model_from_state_dict(
        "resnet18_cifar", 10, torch.load(workdir / "references" / "candidate.pt", weights_only=True)
    ).eval()
    results = {p: evaluate_in(p, scenario, {"candidate": candidate}, workdir / "stores", repeats) for p in PRECISIONS}
    return {
        "workload": f"CIFAR-shaped, ResNet-18 candidate ({manifest['n_train']:,} + {manifest['n_test']:,} images)",
        "fp32_s": results["fp32"][1]["candidate"], "bf16_s": results["bf16"][1]["candidate"],
        **drift(results["fp32"][0]["candidate"], results["bf16"][0]["candidate"]),
    }


def digits_row(args, repeats: int) -> tuple[dict, list[dict]]:
    from mucomp.data import Scenario
    from mucomp.methods import BUILTIN_METHODS, run_unlearning
    from mucomp.references import load_reference

    scenario = Scenario("digits", 3, 0, arch=args.arch)
    home = Path(tempfile.mkdtemp(prefix="mucomp-bf16-digits-"))
    os.environ["MUCOMP_HOME"] = str(home)
    original = load_reference(scenario, "original", device="cpu").model
    models = {}
    for name in BUILTIN_METHODS:
        model = copy.deepcopy(original)
        result = run_unlearning(name, model, scenario, device="cpu")
        if result.ok:
            models[name] = model.eval()
        else:
            print(f"{name}: {result.status} ({result.message}); left out", file=sys.stderr)
    results = {p: evaluate_in(p, scenario, models, home / "stores", repeats) for p in PRECISIONS}
    per_method = []
    for name in models:
        row = drift(results["fp32"][0][name], results["bf16"][0][name])
        per_method.append({"method": name, "fp32_s": results["fp32"][1][name], "bf16_s": results["bf16"][1][name], **row})
    worst = {key: max(r[key] for r in per_method if not math.isnan(r[key])) for key in ("UA", "TRA", "PS", "CKA")}
    summary = {
        "workload": f"digits ({scenario.arch}), {len(models)} built-in methods, 1,797 images each",
        "fp32_s": statistics.median(r["fp32_s"] for r in per_method),
        "bf16_s": statistics.median(r["bf16_s"] for r in per_method),
        **worst,
    }
    return summary, per_method


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", default="digits_cnn", help="the digits architecture: digits_cnn or vit_digits")
    parser.add_argument("--skip-cifar", action="store_true", help="digits only")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from mucomp.embedding import warm_up
    from mucomp.precision import cpu_bf16_supported, effective_precision

    warm_up(background=False)  # UMAP's one-time compilation is no precision's cost
    rows, methods = [], []
    if not args.skip_cifar:
        rows.append(cifar_row(args, args.repeats))
    digits, methods = digits_row(args, args.repeats)
    rows.append(digits)

    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs; CPU bf16 kernels: "
          f"{'yes' if cpu_bf16_supported() else 'no'} (the bf16 pass ran in {effective_precision('cpu', 'bf16')}); "
          f"forward = one pass over train + test, median of {args.repeats}\n")
    print("| workload | fp32 forward s | bf16 forward s | speed-up | max abs. change UA | TRA | PS | CKA |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['workload']} | {r['fp32_s']:.2f} | {r['bf16_s']:.2f} | {r['fp32_s'] / r['bf16_s']:.2f}x | "
              f"{r['UA']:.4f} | {r['TRA']:.4f} | {r['PS']:.4f} | {r['CKA']:.4f} |")
    print(f"\nper digits method ({args.arch}):\n")
    print("| method | fp32 forward s | bf16 forward s | UA | TRA | PS | CKA |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in methods:
        print(f"| {r['method']} | {r['fp32_s']:.3f} | {r['bf16_s']:.3f} | {r['UA']:.4f} | {r['TRA']:.4f} | "
              f"{r['PS']:.4f} | {r['CKA']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
