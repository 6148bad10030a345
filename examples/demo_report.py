"""Build the demo report: the published comparator's CIFAR-10 experiments beside digits and
Fashion-MNIST runs, as one static site (the output is not committed; build it when you need it).

    python examples/demo_report.py -o demo-report [--comparator PATH] [--home DIR] [--no-fashion-mnist]

Each step is skipped when the store (``--home``, default ``$MUCOMP_HOME`` or ``./runs``) already
holds its experiments, so a second call only rebuilds the site:

1. ``--comparator PATH``: a checkout of gnueaj/Machine-Unlearning-Comparator (the ``deployment``
   branch), its ``frontend/src/constants/data`` folder or one class folder of it. ``mucomp import``
   stores the published CIFAR-10 ResNet-18 experiments (Original, Retrained, FT, GA and RL per
   class), without weights and without a GPU.
2. Digits, forget class 3: the references (trained locally, about 25 s on 2 cores) and GA, FT, RL
   and SCRUB with 2 epochs and unlearning seeds 0 and 1.
3. Fashion-MNIST with the CPU model (``fmnist_cnn``), forget class 0, when its four files are on disk
   (Debian's ``dataset-fashion-mnist`` or ``$MUCOMP_DATA_DIR``; nothing is downloaded unless
   ``--download``): the references (about 4 minutes each on 2 cores), then GA and FT.
4. ``mucomp report --all -o DIR``: open ``DIR/index.html``, or publish ``DIR`` as a static
   Hugging Face Space (README, "Publish a report").

A step that fails (no comparator files, no Fashion-MNIST data) says why and the others go on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DIGITS = ("--dataset", "digits", "--forget", "class:3")
FASHION = ("--dataset", "fashion_mnist", "--forget", "class:0")
FASHION_MODEL = ("--arch", "fmnist_cnn")


def mucomp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    print("$ mucomp " + " ".join(args), flush=True)
    return subprocess.run([sys.executable, "-m", "mucomp.cli", *args], env=env, text=True, capture_output=True)


def has_runs(env: dict[str, str], *scenario: str) -> bool:
    """Whether the store holds unlearned (or imported) experiments of the scenario."""
    done = mucomp(env, "list", *scenario, "--json")
    rows = json.loads(done.stdout or "[]") if done.returncode == 0 else []
    return any(row.get("kind") not in ("original", "retrained") for row in rows)


def step(env: dict[str, str], what: str, *commands: tuple[str, ...]) -> bool:
    """Run ``commands`` in order; on the first failure say why and stop this step."""
    for args in commands:
        done = mucomp(env, *args)
        if done.returncode != 0:
            reason = (done.stderr or done.stdout).strip().splitlines()
            print(f"  {what}: skipped ({reason[-1] if reason else f'exit code {done.returncode}'})", flush=True)
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="the report's folder")
    parser.add_argument("--comparator", default=None, help="the published comparator's files (see above)")
    parser.add_argument("--home", default=None, help="the store to fill and report (default: $MUCOMP_HOME or ./runs)")
    parser.add_argument("--no-fashion-mnist", action="store_true", help="leave Fashion-MNIST out")
    parser.add_argument("--download", action="store_true", help="allow downloading a missing data set")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.home:
        env["MUCOMP_HOME"] = str(Path(args.home).resolve())
    if not args.download:
        env.setdefault("MUCOMP_OFFLINE", "1")
    if args.comparator:
        step(env, "the comparator's experiments", ("import", args.comparator))
    if not has_runs(env, *DIGITS):
        step(env, "digits", ("references", *DIGITS),
             *(("run", *DIGITS, "--method", m, "--epochs", "2", "--seeds", "0-1", "--quiet") for m in ("ga", "ft", "rl", "scrub")))
    if not args.no_fashion_mnist and not has_runs(env, *FASHION):
        step(env, "Fashion-MNIST", ("references", *FASHION, *FASHION_MODEL),
             *(("run", *FASHION, *FASHION_MODEL, "--method", m, "--epochs", "2", "--quiet") for m in ("ga", "ft")))
    done = mucomp(env, "report", "--all", "-o", args.output)
    print(done.stdout or done.stderr, end="")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
