"""``mucomp ensemble``: the many-model evaluation of one method configuration (the NeurIPS-2023
challenge's forgetting quality F and final score, EasyDUB's KLoM) on ensembles of N unlearned and
N Retrained models, made through the job API (this process, local worker processes or a Ray
cluster), stored and printed."""

from __future__ import annotations

import argparse
import statistics
import sys

from mucomp import settings
from mucomp.cli.common import SeedOption, UsageError, add_scenario_arguments, apply_torch_threads, emit

#: The default N per side (the issue's benchmark; 512 in the challenge, a cluster job).
DEFAULT_MODELS = 32
#: The most models per side a record holds (:data:`mucomp.store.ensembles.MAX_MODELS`).
MAX_MODELS = 4096


def cmd_ensemble(args) -> int:
    """Print the ETA, make and score the ensembles (stored under ``$MUCOMP_HOME/ensembles``), print
    the record: F, the final score, KLoM P95 per split, N and the ε resolution."""
    from mucomp.cli.runs import _config_from_args

    if not 2 <= args.n <= MAX_MODELS:
        raise UsageError(f"--n: an ensemble needs 2 to {MAX_MODELS} models per side, got {args.n}")
    if args.workers < 0:
        raise UsageError(f"--workers: must be 0 (this process) or more, got {args.workers}")
    if args.executor == "ray" and args.workers:
        raise UsageError("--workers: local worker processes; with --executor ray the cluster's CPUs make the models")
    if args.train_seed is not None:
        args.seed = args.train_seed
    config, _, _, _ = _config_from_args(args)  # the method and its hyper-parameters, as `mucomp run` reads them
    from mucomp.execution.ensembles import ensemble_eta, eta_text, run_ensemble_jobs
    from mucomp.experiment.ensembles import EnsembleError

    try:
        eta = ensemble_eta(config, args.n, workers=max(1, args.workers))
    except EnsembleError as err:
        raise UsageError(f"--method / --n: {err}") from err
    print(f"mucomp ensemble: {eta_text(eta)}", file=sys.stderr, flush=True)
    if not args.workers and args.executor == "local":
        apply_torch_threads()
    progress = _progress(sys.stderr.isatty() and not args.quiet, args.n)
    try:
        final = run_ensemble_jobs(config, args.n, workers=args.workers,
                                  torch_threads=settings.requested_torch_threads(), follow=progress,
                                  executor=args.executor, ray_address=args.ray_address)
    finally:
        if progress is not None:
            print(file=sys.stderr)
    record, retrained = _stored(final["result"]["key"], final["result"]["retrained_key"])
    emit(record.to_json_dict(), args.json, lambda: ensemble_text(record, retrained))
    return 0


def _stored(key: str, retrained_key: str):
    """The stored records of the job's ensembles (the Retrained one may be a larger one)."""
    from mucomp.store.ensembles import load_ensemble_results

    records, problems = load_ensemble_results()
    by_key = {r.key: r for r in records}
    if key not in by_key:
        why = "; ".join(problems) or "it was removed meanwhile"
        raise RuntimeError(f"the ensemble record {key} is not readable: {why}")
    return by_key[key], by_key.get(retrained_key)


def _progress(enabled: bool, n: int):
    """A progress line on stderr for :func:`mucomp.execution.ensembles.run_ensemble_jobs`."""
    if not enabled:
        return None

    def follow(jobs: list[dict]) -> None:
        done = sum(j["state"] == "completed" for j in jobs)
        running = [j for j in jobs if j["state"] == "running"]
        if not running:
            return
        job = running[-1]
        figures = job["figures"]
        what = {"retrained": "Retrained", "unlearned": "unlearned"}.get(figures.get("kind"), "")
        detail = f" {what} seed {figures['seed']}" if "seed" in figures and job["stage"] != "scoring" else ""
        if "member" in figures and job["stage"] == "members":
            detail = f" model {figures['member']}/{figures['members']}" + detail
        line = (f"[job {done + 1}/{len(jobs)}] N={n} {job['stage'] or 'starting'} "
                f"{job['fraction'] * 100:5.1f}%{detail}")
        print(f"\r{line:<78}", end="", file=sys.stderr, flush=True)

    return follow


def ensemble_text(record, retrained=None) -> str:
    """The record of an unlearned ensemble in a few lines (with the Retrained ensemble's self-score
    when ``retrained`` is given)."""
    config = record.config
    accuracies, p95, resolution = record.accuracies, record.klom_p95, record.resolution

    def fmt(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        f"{record.method} on {config.get('dataset')} (forget {config.get('forget')}), Original of training seed "
        f"{record.train_seed}: N = {record.n_models} unlearned vs {record.n_retrained} Retrained models",
        f"  forgetting quality F  {fmt(record.forget_quality)}  (ε resolved up to {resolution.max_epsilon:g} in "
        f"{resolution.buckets} buckets of 0.5)",
        f"  final score           {fmt(record.score)}",
        f"  KLoM P95              forget {fmt(p95.forget)}  retain {fmt(p95.retain)}  test {fmt(p95.test)}",
        f"  accuracy (mean)       retain {accuracies.unlearned_retain:.4f} (Retrained {accuracies.retrained_retain:.4f})"
        f"  test {accuracies.unlearned_test:.4f} (Retrained {accuracies.retrained_test:.4f})",
    ]
    if retrained is not None and retrained.self_score is not None:
        lines.append(f"  Retrained self-score  {retrained.self_score:.4f}  (F of two disjoint halves of "
                     f"{retrained.n_models // 2}: the noise floor)")
    made = record.member_seconds
    median = f"; {statistics.median(made):.1f} s per unlearned model (median)" if made else ""
    lines.append(f"  wall {record.seconds:.1f} s{median}; key {record.key}")
    return "\n".join(lines)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ensemble = sub.add_parser("ensemble", help="score a method configuration on ensembles of N unlearned and N "
                              "Retrained models (the challenge's F and score, KLoM)")
    add_scenario_arguments(ensemble)
    ensemble.add_argument("--train-seed", dest="train_seed", action=SeedOption, default=None,
                          help="training seed of the Original the models are unlearned from (same as --seed)")
    ensemble.add_argument("--method", required=True, help="unlearning method (see `mucomp methods`)")
    ensemble.add_argument("--epochs", default=None, help="epochs (default: the method's default for the data set)")
    ensemble.add_argument("--lr", default=None, help="learning rate")
    ensemble.add_argument("--batch-size", dest="batch_size", default=None, help="batch size")
    ensemble.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                          help="a method parameter, e.g. --param clip_grad_norm=1 (repeatable)")
    ensemble.add_argument("--n", type=int, default=DEFAULT_MODELS, metavar="N",
                          help=f"models per side: unlearning seeds 0..N-1 of the method, N Retrained models "
                               f"(default {DEFAULT_MODELS}; cached: a larger N later makes only the missing ones)")
    ensemble.add_argument("--workers", type=int, default=0, metavar="W",
                          help="local worker processes (models made side by side); 0: this process (default)")
    ensemble.add_argument("--executor", choices=["local", "ray"], default="local",
                          help="where the models are made: this machine (default) or a Ray cluster, whose nodes make "
                               "them side by side and send them back to this home (pip install 'mucomp[ray]')")
    ensemble.add_argument("--ray-address", dest="ray_address", default=None,
                          help="with --executor ray: the cluster to join, e.g. auto or ray://HOST:10001 "
                               "(default: a local Ray)")
    ensemble.add_argument("--json", action="store_true", help="print the stored record as JSON")
    ensemble.add_argument("--quiet", action="store_true", help="no progress line")
    # What `mucomp run`'s reading of the method needs (an ensemble is one configuration from the Original).
    ensemble.set_defaults(func=cmd_ensemble, base="original", grid=[], seeds=None, train_seeds=None)
