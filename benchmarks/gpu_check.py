"""GPU checks: the CIFAR-shaped evaluation, every built-in method on ResNet-18, a ViT-B/16 batch.

Runs on a CUDA GPU only (it refuses, with exit code 2, anywhere else; CI never needs it). On the
CIFAR-shaped workload of ``shared/bench`` (5,000 + 1,000 random CIFAR-10 images in torchvision's
format, random CIFAR ResNet-18 references and candidate, forget class 3; see
``benchmarks/cifar_shaped.py``), through mucomp's real code paths (torchvision's loader, the Hub
loader offline with ``MUCOMP_REFERENCE_DIR``), it measures:

1. the one-time reference work (``prepare_scenario``) and the candidate's full evaluation
   (``evaluate_model``: one forward pass per split, every figure, UMAP warm), in fp32 and with
   bf16 autocast (:mod:`mucomp.precision`);
2. one unlearning run of every built-in method on ResNet-18 from the workload's Original,
   1 epoch each (the method's CIFAR-10 defaults otherwise), with its RT and status;
3. ViT-B/16 (``vit_b16_cifar``: CIFAR batches resized to 224 on the GPU): the forward of one
   batch in eval mode (fp32 and bf16 autocast) and one AdamW training step on it.

Each row gives the wall seconds (CUDA synchronised) and the peak GPU memory allocated by torch in
that step (``torch.cuda.max_memory_allocated`` after a reset). One Markdown table is printed;
``--json FILE`` also writes the rows. ``--cpu-smoke`` runs the same steps on the CPU (no memory
figures; ``--methods`` and ``--vit-batch`` small), to check the script itself where no GPU is.

    python benchmarks/gpu_check.py [--shared ../shared] [--workdir DIR] [--methods ft,ga]
                                   [--vit-batch 64] [--json rows.json] [--cpu-smoke]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUCOMP_OFFLINE", "1")


def refuse_without_cuda() -> None:
    """Exit with a clear message (code 2) when there is no CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU is available here (torch.cuda.is_available() is False); this script "
              "measures GPU times and memory only. Run it on a machine with an NVIDIA GPU and a CUDA build of "
              "torch; CI and the CPU benchmarks need none.", file=sys.stderr)
        sys.exit(2)


class Measured:
    """Times a block on the GPU and reads torch's peak allocation during it; the row it appends is
    :attr:`row` (its ``note`` may be filled in afterwards)."""

    cuda = True

    def __init__(self, rows: list[dict], check: str) -> None:
        self.rows, self.check = rows, check
        self.row: dict = {}

    def __enter__(self) -> Measured:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self.start
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.cuda else float("nan")
        status = "failed" if exc_info[0] is not None else "ok"
        self.row = {"check": self.check, "seconds": seconds, "peak_mib": peak, "status": status, "note": ""}
        self.rows.append(self.row)
        print(f"  {self.check}: {seconds:.2f} s, {peak:.0f} MiB {status}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--methods", default="", help="comma-separated built-ins (default: every one)")
    parser.add_argument("--vit-batch", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--cpu-smoke", action="store_true", help="run the steps on the CPU to check the script")
    args = parser.parse_args()
    if not args.cpu_smoke:
        refuse_without_cuda()
    Measured.cuda = not args.cpu_smoke
    os.environ["MUCOMP_DEVICE"] = "cpu" if args.cpu_smoke else "cuda"

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from cifar_shaped import prepare_workdir

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mucomp-gpu-check-"))
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = prepare_workdir(args.shared, workdir)

    import torch
    import torch.nn.functional as F
    from cifar_workload import torchvision_accepts

    from mucomp.data import Scenario, load_dataset
    from mucomp.embedding import warm_up
    from mucomp.methods import BUILTIN_METHODS, run_unlearning
    from mucomp.models import model_from_state_dict, seeded_model
    from mucomp.precision import autocast
    from mucomp.runner import clear_scenario_cache, evaluate_model, prepare_scenario
    from mucomp.store import ExperimentStore
    from mucomp.training import make_optimizer

    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    rows: list[dict] = []
    scenario = Scenario("cifar10", manifest["forget_class"], 0)
    with torchvision_accepts(manifest):
        load_dataset("cifar10")
    warm_up(background=False)
    candidate = model_from_state_dict(
        "resnet18_cifar", 10, torch.load(workdir / "references" / "candidate.pt", weights_only=True)
    ).to(device).eval()

    # 1. The CIFAR-shaped evaluation, bf16 autocast then fp32 (each with its own references pass;
    #    the fp32 state stays for the unlearning runs).
    for precision in (("fp32",) if args.cpu_smoke else ("bf16", "fp32")):
        os.environ["MUCOMP_PRECISION"] = precision
        clear_scenario_cache()
        store = ExperimentStore(workdir / "stores" / precision)
        with Measured(rows, f"references: load + evaluate both ({precision})"):
            state = prepare_scenario(scenario, store, device=device)
        if not args.cpu_smoke:
            evaluate_model(candidate, state, model_id=f"warm-{precision}")  # kernels chosen, caches warm
        with Measured(rows, f"candidate evaluation, every figure ({precision})") as measured:
            figures = evaluate_model(candidate, state, model_id=f"candidate-{precision}")
        measured.row["note"] = f"forward pass {figures['timings']['evaluation']:.2f} s"

    # 2. One ResNet-18 unlearning run per built-in method, 1 epoch.
    names = [n for n in args.methods.split(",") if n] or list(BUILTIN_METHODS)
    for name in names:
        model = copy.deepcopy(state.original.model).to(device)
        with Measured(rows, f"ResNet-18 {name}, 1 epoch") as measured:
            result = run_unlearning(name, model, scenario, {"epochs": 1}, device=device)
        measured.row["note"] = f"RT {result.rt_seconds:.2f} s" + (f": {result.message}" if not result.ok else "")
        if not result.ok:
            measured.row["status"] = result.status
        del model

    # 3. ViT-B/16 on one batch of CIFAR images (resized to 224 inside the model, on the GPU).
    vit = seeded_model("vit_b16_cifar", 10, 0).to(device).eval()
    images, labels = scenario.data.train.batch(range(args.vit_batch))
    images, labels = images.to(device), labels.to(device)
    for precision in ("fp32", "bf16"):
        with torch.inference_mode(), autocast(device, precision):
            vit(images)  # warm-up: kernel selection
        with Measured(rows, f"ViT-B/16 forward, batch {args.vit_batch} ({precision})") as measured, \
                torch.inference_mode(), autocast(device, precision) as ran_in:
            logits = vit(images)
        measured.row["note"] = f"ran in {ran_in}, logits {tuple(logits.shape)}"
    vit.train()
    optimizer = make_optimizer("adamw", vit.parameters(), 1e-5)
    F.cross_entropy(vit(images), labels).backward()  # warm-up step
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    with Measured(rows, f"ViT-B/16 AdamW training step, batch {args.vit_batch} (fp32)"):
        loss = F.cross_entropy(vit(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    name = "CPU (smoke run)" if args.cpu_smoke else torch.cuda.get_device_name(device)
    print(f"\n{name}; torch {torch.__version__}; CIFAR-shaped workload "
          f"{manifest['n_train']:,} + {manifest['n_test']:,} images\n")
    print("| check | seconds | peak GPU memory MiB | status | note |")
    print("| --- | ---: | ---: | --- | --- |")
    for row in rows:
        print(f"| {row['check']} | {row['seconds']:.2f} | {row['peak_mib']:.0f} | {row['status']} | {row['note']} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
