"""``mucomp audit``: an experiment's stored audits, and the on-demand ones (U-LiRA, relearning)
computed through the job API first."""

from __future__ import annotations

import argparse
import sys

from mucomp import settings
from mucomp.audits.ulira import CENTERS, GLOBAL_VARIANCE_BELOW, VARIANCES
from mucomp.cli.common import UsageError, apply_torch_threads, emit, load_experiment


def cmd_audit(args) -> int:
    """Print an experiment's audits; ``--ulira`` / ``--relearn`` first compute those (through the
    job API: this process, or ``--workers N`` local worker processes) and store them with it."""
    from mucomp.execution.audits import run_audit_jobs
    from mucomp.experiment.audits import AuditError
    from mucomp.forget_sets import stored_forget_text
    from mucomp.results.attack import audit_text, stored_audits
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    load_experiment(store, args.id)  # says what `mucomp show` says of an unknown or unreadable id
    wanted = [name for name, flag in (("ulira", args.ulira), ("relearn", args.relearn)) if flag]
    for option, value, low in (("--shadows", args.shadows, 1), ("--held-out", args.held_out, 1),
                               ("--steps", args.steps, 1), ("--workers", args.workers, 0)):
        if value < low:
            raise UsageError(f"{option}: must be at least {low}, got {value}")
    if wanted:
        if not args.workers:
            apply_torch_threads()
        progress = _audit_progress(sys.stderr.isatty() and not args.json)
        try:
            run_audit_jobs(args.id, wanted, workers=args.workers, torch_threads=settings.requested_torch_threads(),
                           shadows=args.shadows, held_out=args.held_out, center=args.center,
                           variance=args.variance, steps=args.steps, follow=progress)
        except AuditError as err:
            raise UsageError(f"{'--ulira' if 'ulira' in wanted else '--relearn'}: {err}") from err
        finally:
            if progress is not None:
                print(file=sys.stderr)
    result = store.load(args.id).result
    audits = stored_audits(result)
    if all(block is None for block in audits.values()):
        raise RuntimeError(f"{args.id} was stored before mucomp computed its audits; run the experiment again")
    emit({"id": args.id, **{k: v for k, v in audits.items() if v is not None}}, args.json,
          lambda: audit_text(args.id, audits, stored_forget_text(result.get("config") or {})))
    return 0


def _audit_progress(enabled: bool):
    """A progress line on stderr for :func:`mucomp.execution.audits.run_audit_jobs`."""
    if not enabled:
        return None

    def follow(jobs: list[dict]) -> None:
        running = [j for j in jobs if j["state"] == "running"]
        done = sum(j["state"] == "completed" for j in jobs)
        if running:
            job = running[-1]
            figures = job["figures"]
            detail = f" pair {figures['pair']}/{figures['pairs']}" if "pair" in figures and job["stage"] == "shadows" else ""
            line = f"[job {done + 1}/{len(jobs)}] {job['stage'] or 'starting'} {job['fraction'] * 100:5.1f}%{detail}"
            print(f"\r{line:<78}", end="", file=sys.stderr, flush=True)

    return follow


def add_parsers(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="show an experiment's audits; --ulira / --relearn compute those first")
    audit.add_argument("id")
    audit.add_argument("--ulira", action="store_true", help="run U-LiRA (per-example likelihood-ratio attack; "
                       "digits: K + M shadow pairs, cached for every experiment of the same config)")
    audit.add_argument("--relearn", action="store_true", help="run the relearning attack (model and Retrained)")
    audit.add_argument("--shadows", type=int, default=8, metavar="K", help="U-LiRA: shadow pairs fitted (default 8)")
    audit.add_argument("--held-out", type=int, default=4, metavar="M", help="U-LiRA: held-out pairs (default 4)")
    audit.add_argument("--center", choices=CENTERS, default="median",
                       help="U-LiRA: centre of the per-image Gaussians (default median, as LiRA)")
    audit.add_argument("--variance", choices=VARIANCES, default=None,
                       help="U-LiRA: one global spread (LiRA's fixed variance) or each image's own (default: global "
                            f"below {GLOBAL_VARIANCE_BELOW} shadows)")
    audit.add_argument("--steps", type=int, default=50, metavar="S", help="relearning: optimiser steps (default 50)")
    audit.add_argument("--workers", type=int, default=0, metavar="N",
                       help="local worker processes (shadow pairs side by side); 0: this process (default)")
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit)
