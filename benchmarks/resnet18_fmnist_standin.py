"""The published ResNet-18 path on the real Fashion-MNIST, on a CPU, with stand-in checkpoints
(issue 28).

``resnet18_fmnist`` normally reads its references from the Hub
(``Yurim0507/resnet18-fashionmnist-unlearning``). This benchmark trains two ResNet-18s briefly
here (``--train-images`` images, one epoch: far from the published 0.93+ test accuracy on
purpose), writes them under the Hub file names into a folder and serves that folder through
``MUCOMP_REFERENCE_DIR`` offline, so the experiment runs through mucomp's real code paths: the
Hub loader (file names, ``torch.load(weights_only=True)``, strict state-dict loading), the real
70,000 images and their normalisation, one evaluation pass per model and split, and GA.

Measured in one child process (its peak resident memory read from the kernel):

1. reading and validating the four official files;
2. ``prepare_scenario``: both references loaded from the Hub layout, one pass each over the
   60,000 + 10,000 images, their figures computed and stored, the reference check against the
   model card (a stand-in must be flagged as differing);
3. one GA experiment at its Fashion-MNIST defaults except ``--ga-epochs`` (default 1; the
   default's 7 epochs cost 7x the RT of one, the evaluation is the same), with the stage
   timings the result stores.

    python benchmarks/resnet18_fmnist_standin.py [--work DIR] [--train-images 2048] [--ga-epochs 1]

Writes ``benchmarks/results/resnet18_fmnist_standin.json`` (``--json``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORGET_CLASS = 0


def train_standins(reference_dir: Path, train_images: int, seed: int = 0) -> dict:
    """Train the Original (all classes) and the Retrained (class 0 left out) stand-ins for one
    epoch on ``train_images`` images each and save them under the Hub file names."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mucomp.data import load_dataset
    from mucomp.models import build_model
    from mucomp.references import hub_filename

    torch.manual_seed(seed)
    data = load_dataset("fashion_mnist")
    train = data.train
    mean = torch.tensor(train.mean).view(1, -1, 1, 1)
    std = torch.tensor(train.std).view(1, -1, 1, 1)
    rng = np.random.default_rng(seed)
    seconds = {}
    for kind in ("original", "retrained"):
        pool = np.arange(len(train)) if kind == "original" else np.flatnonzero(train.labels_np != FORGET_CLASS)
        chosen = rng.choice(pool, size=train_images, replace=False)
        model = build_model("resnet18_fmnist", 10).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        start = time.perf_counter()
        for batch in np.array_split(chosen, max(1, train_images // 128)):
            images = (torch.from_numpy(train.images_np[batch]).float() / 255 - mean) / std
            loss = F.cross_entropy(model(images), torch.from_numpy(train.labels_np[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds[kind] = time.perf_counter() - start
        name = hub_filename(data.spec, kind, FORGET_CLASS)
        torch.save(model.state_dict(), reference_dir / name)
    return {"train_images": train_images, "train_seconds": seconds}


def child(ga_epochs: int) -> dict:
    """Inside the child: data, references, one GA experiment; the figures as a dict."""
    from mucomp.config import ExperimentConfig
    from mucomp.data import Scenario, clear_dataset_cache, load_dataset
    from mucomp.experiment.state import prepare_scenario
    from mucomp.runner import run_experiment
    from mucomp.store import ExperimentStore

    clear_dataset_cache()
    start = time.perf_counter()
    load_dataset("fashion_mnist")
    rows = {"data_s": time.perf_counter() - start}
    store = ExperimentStore()
    scenario = Scenario("fashion_mnist", FORGET_CLASS, 0)
    start = time.perf_counter()
    state = prepare_scenario(scenario, store)
    rows["references_s"] = time.perf_counter() - start
    rows["reference_checks"] = {
        kind: store.load(ref.experiment_id).result.get("reference_check")
        for kind, ref in (("original", state.original), ("retrained", state.retrained))
    }
    rows["reference_metrics"] = {
        kind: {k: store.load(ref.experiment_id).result["metrics"].get(k) for k in ("UA", "RA", "TUA", "TRA")}
        for kind, ref in (("original", state.original), ("retrained", state.retrained))
    }
    config = ExperimentConfig.from_dict({"dataset": "fashion_mnist", "forget": f"class:{FORGET_CLASS}",
                                         "method": "ga", "epochs": ga_epochs})
    start = time.perf_counter()
    experiment = run_experiment(config, store)
    rows["experiment_wall_s"] = time.perf_counter() - start
    result = experiment.result
    rows["timings"] = result["timings"]
    rows["metrics"] = {k: result["metrics"].get(k) for k in ("UA", "RA", "TUA", "TRA", "RT")}
    rows["result_mb"] = (store.root / result["id"] / "result.json").stat().st_size / 1e6
    return rows


def run_child(home: Path, reference_dir: Path, ga_epochs: int) -> dict:
    env = {**os.environ, "MUCOMP_HOME": str(home), "MUCOMP_REFERENCE_DIR": str(reference_dir),
           "MUCOMP_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "MUCOMP_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "MUCOMP_TORCH_THREADS": os.environ.get("MUCOMP_TORCH_THREADS", "2")}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", str(ga_epochs)], env=env, capture_output=True,
                         text=True, check=False)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"the child failed:\n{out.stderr[-4000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    return {"child_wall_s": wall, "child_peak_gb": peak_gb, **figures}


def print_table(rows: dict) -> None:
    timings = rows["timings"]
    evaluation = sum(v for k, v in timings.items() if k not in ("unlearning", "warmup", "preparation", "epoch_checks"))
    print(f"ResNet-18 stand-ins trained on {rows['train_images']} images x 1 epoch "
          f"({rows['train_seconds']['original']:.0f} s + {rows['train_seconds']['retrained']:.0f} s)\n")
    print("| stage | seconds |")
    print("| --- | ---: |")
    print(f"| read + validate the four files | {rows['data_s']:.1f} |")
    print(f"| references: load from the Hub layout, one pass each over 70,000 images, store | {rows['references_s']:.1f} |")
    print(f"| GA ({rows['ga_epochs']} epoch, RT) | {timings['unlearning']:.1f} |")
    print(f"| candidate evaluation (one pass over 70,000 images + every figure) | {evaluation:.1f} |")
    for key, value in sorted(timings.items()):
        print(f"|   {key} | {value:.1f} |")
    print(f"| child process wall | {rows['child_wall_s']:.1f} |")
    print(f"\npeak resident memory of the run: {rows['child_peak_gb']:.2f} GB; result {rows['result_mb']:.2f} MB")
    for kind, check in rows["reference_checks"].items():
        print(f"reference check, {kind}: matches={check and check.get('matches')}: {check and check.get('message')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--train-images", type=int, default=2048)
    parser.add_argument("--ga-epochs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "resnet18_fmnist_standin.json")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        import torch

        torch.set_num_threads(int(os.environ.get("MUCOMP_TORCH_THREADS", "2")))
        print(json.dumps(child(args.child)))
        return
    import torch

    torch.set_num_threads(2)
    work = args.work or Path(tempfile.mkdtemp(prefix="mucomp-resnet-fmnist-"))
    reference_dir, home = work / "hub", work / "home"
    reference_dir.mkdir(parents=True, exist_ok=True)
    home.mkdir(exist_ok=True)
    rows = train_standins(reference_dir, args.train_images)
    rows.update(run_child(home, reference_dir, args.ga_epochs), ga_epochs=args.ga_epochs,
                machine=f"{os.cpu_count()} CPUs, torch {torch.__version__}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print_table(rows)


if __name__ == "__main__":
    main()
