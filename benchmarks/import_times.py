"""How long importing mucomp's modules takes in a fresh process, now and at an earlier commit.

For each module, ``python -X importtime -c "import MODULE"`` runs ``--repeats`` times in a fresh
interpreter; the figure is the module's cumulative import time (microseconds, from the
``-X importtime`` report), median over the runs, and whether torch was loaded on the way. With
``--before REF`` the same is measured on a checkout of that commit (a temporary ``git worktree``),
with the same interpreter and installed packages.

    python benchmarks/import_times.py --before cbbd03e
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("mucomp.store", "mucomp.results", "mucomp.execution.jobs", "mucomp.cli")
LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def import_report(tree: Path, module: str) -> tuple[float, bool]:
    """(cumulative seconds of ``import module``, whether torch was imported) in a fresh process."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=tree,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"import {module} failed in {tree}: {done.stderr[-500:]}")
    cumulative, torch = None, False
    for match in LINE.finditer(done.stderr):
        name = match.group(4)
        torch = torch or name == "torch"
        if name == module and len(match.group(3)) <= 1:  # the top-level entry, not a nested re-import
            cumulative = int(match.group(2)) / 1e6
    if cumulative is None:
        raise RuntimeError(f"no import-time line for {module}")
    return cumulative, torch


def measure(tree: Path, modules: tuple[str, ...], repeats: int) -> dict[str, dict]:
    where = subprocess.run([sys.executable, "-c", "import mucomp; print(mucomp.__file__)"], cwd=tree,
                           env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    if not where.stdout.strip().startswith(str(tree)):  # an installed mucomp would win over the checkout
        raise RuntimeError(f"mucomp imports from {where.stdout.strip() or where.stderr[-300:]}, not {tree}")
    out = {}
    for module in modules:
        runs = [import_report(tree, module) for _ in range(repeats)]
        out[module] = {"seconds": statistics.median(r[0] for r in runs), "loads_torch": any(r[1] for r in runs)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a commit to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modules", default=",".join(MODULES))
    parser.add_argument("--before-modules", help="the same modules' names at --before, in order (default: --modules)")
    args = parser.parse_args()
    modules = tuple(m for m in args.modules.split(",") if m)
    columns = {"now": measure(ROOT, modules, args.repeats)}
    old_names = tuple(m for m in (args.before_modules or args.modules).split(",") if m)
    if len(old_names) != len(modules):
        parser.error("--before-modules must name as many modules as --modules")
    if args.before:
        with tempfile.TemporaryDirectory() as folder:
            tree = Path(folder) / "before"
            subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.before], cwd=ROOT,
                           check=True, capture_output=True)
            try:
                measured = measure(tree, old_names, args.repeats)
                columns[args.before] = {new: measured[old] for new, old in zip(modules, old_names, strict=True)}
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    names = list(columns)
    if args.before:
        print("modules at " + args.before + ": " + ", ".join(old_names))
    print("| module | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for module in modules:
        cells = [f"{columns[n][module]['seconds']:.2f} s{' (torch)' if columns[n][module]['loads_torch'] else ''}"
                 for n in names]
        print(f"| `{module}` | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
