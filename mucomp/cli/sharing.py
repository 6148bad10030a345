"""Sharing commands: ``mucomp reproduce`` (rerun a bundle), ``push`` / ``pull`` (a Hugging Face
dataset repo) and ``zoo`` (published unlearned models)."""

from __future__ import annotations

import argparse
import sys

from mucomp.cli.common import (
    UsageError,
    add_scenario_arguments,
    apply_torch_threads,
    check_output_file,
    emit,
    epoch_progress,
    file_problem,
    scenario_from_args,
    store_call,
)
from mucomp.cli.store import chosen_ids
from mucomp.display_text import for_terminal


def cmd_reproduce(args) -> int:
    """Rerun every experiment of a bundle here and print a side-by-side diff of every metric;
    exit 1 when any experiment was not reproduced."""
    from mucomp.sharing.reproduce import reproduce
    from mucomp.store import ExperimentStore

    problem = file_problem(args.bundle)
    if problem:
        raise UsageError(f"bundle: {problem}; give a zip made by `mucomp export --bundle`")
    if args.tolerance is not None and not (args.tolerance >= 0):
        raise UsageError(f"--tolerance: must be 0 or more, got {args.tolerance}")
    apply_torch_threads()
    verbose = sys.stderr.isatty() and not args.json
    report = reproduce(args.bundle, ExperimentStore(), tolerance=args.tolerance, keep=args.keep,
                       progress=(lambda message: print(for_terminal(message), file=sys.stderr, flush=True)) if verbose else None)
    emit(report.as_dict(), args.json, report.text)
    return 0 if report.ok else 1


def cmd_push(args) -> int:
    """Push experiments (or a group) to a Hugging Face dataset repo with a generated dataset card."""
    from mucomp.sharing.hub import HubError, check_repo_id, hub_endpoint, push
    from mucomp.store import ExperimentStore

    try:
        check_repo_id(args.repo)
    except HubError as err:
        raise UsageError(str(err)) from err
    store = ExperimentStore()
    ids = chosen_ids(store, args)
    result = store_call(push, args.repo, store, ids, weights=args.weights, endpoint=hub_endpoint(),
                         private=True if args.private else None)
    for warning in result.warnings:
        print(f"mucomp: warning: {for_terminal(warning)}", file=sys.stderr)
    payload = {"repo": result.repo_id, "url": result.url, "commit": result.commit, "ids": result.ids,
               "files": result.files}
    emit(payload, args.json, lambda: (
        f"pushed {len(result.ids)} experiment(s) to {result.url} ({len(result.files)} files, "
        f"{'with' if args.weights else 'without'} weights; commit {result.commit or '-'})"))
    return 0


def cmd_pull(args) -> int:
    """Download the experiments of a dataset repo and import them (the checks of `mucomp import`),
    or write them as a bundle with -o."""
    from mucomp.sharing.hub import HubError, check_output, check_repo_id, hub_endpoint, pull
    from mucomp.store import ExperimentExistsError, ExperimentStore

    try:
        check_repo_id(args.repo)
        if args.output is not None:  # before anything is downloaded
            check_output(args.output)
            check_output_file(args.output)
    except HubError as err:
        raise UsageError(str(err)) from err
    try:
        result = pull(args.repo, ExperimentStore(), output=args.output, revision=args.revision,
                      on_conflict="skip" if args.skip_existing else "error", allow_references=args.allow_references,
                      endpoint=hub_endpoint())
    except ExperimentExistsError as err:
        raise RuntimeError(
            f"the store already has {', '.join(err.ids)}; nothing was imported. Delete them first "
            f"(`mucomp delete ID`) or run `mucomp pull {args.repo} --skip-existing` to import only the new ones"
        ) from err
    for path in result.ignored:
        print(f"mucomp: ignored {for_terminal(path)} (not part of a mucomp experiment folder)", file=sys.stderr)
    payload = {"repo": result.repo_id, "commit": result.commit, "ids": result.ids, "imported": result.imported,
               "written": result.written}
    if result.written:
        emit(payload, args.json, lambda: f"wrote {len(result.ids)} experiment(s) of {args.repo} to {result.written}; "
                                          f"rerun them with `mucomp reproduce {result.written}`")
    else:
        skipped = [i for i in result.ids if i not in result.imported]
        emit(payload, args.json, lambda: (
            f"imported {len(result.imported)} experiment(s) from {args.repo}: {', '.join(result.imported) or '-'}"
            + (f" (already stored, left as they are: {', '.join(skipped)})" if skipped else "")))
    return 0


def cmd_zoo(args) -> int:
    """List the published unlearned models mucomp knows, or pull one into the store."""
    from mucomp.sharing import zoo

    if args.zoo_command == "list":
        entries = [entry.as_dict() for entry in zoo.catalogue()]

        def text() -> str:
            lines = ["published unlearned models (one file per forget class; card accuracies TUA / TRA):"]
            for e in entries:
                lines.append(f"\n{e['repo']}  [{e['dataset']}, {e['method']}]  {e['filename']}")
                lines.append(f"  recipe: {e['recipe']}")
                lines.append("  " + "  ".join(f"{k}: {v['forget_test_accuracy']:.3f}/{v['retain_test_accuracy']:.3f}"
                                              for k, v in e["published"].items()))
            return "\n".join(lines)

        emit(entries, args.json, text)
        return 0
    from mucomp.store import ExperimentStore

    scenario = scenario_from_args(args)
    apply_torch_threads()
    try:
        entry = zoo.find(args.repo)
    except zoo.ZooError as err:
        raise UsageError(f"REPO: {err}") from err
    if scenario.dataset != entry.dataset:
        raise UsageError(f"--dataset: {entry.repo} holds {entry.dataset} models; pass --dataset {entry.dataset}")
    experiment = zoo.pull(entry.repo, scenario, ExperimentStore(), progress=epoch_progress(sys.stderr.isatty()))
    check = experiment.result.get("published_check")
    if check is not None and not check["matches"]:
        print(f"mucomp: warning: {for_terminal(check['message'])}", file=sys.stderr)
    summary = {"id": experiment.id, "source": experiment.config.get("source"),
               **{k: experiment.metrics.get(k) for k in ("UA", "TUA", "TRA", "PS", "PS_exact")},
               "published_check": check}
    emit(summary, args.json, lambda: (
        f"stored {experiment.id} ({experiment.config.get('source')}): "
        + "  ".join(f"{k} {summary[k]:.4f}" for k in ("UA", "TUA", "TRA", "PS") if summary[k] is not None)
        + ("" if check is None else ("  [matches the card]" if check["matches"] else "  [DIFFERS FROM THE CARD]"))))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    reproducing = sub.add_parser("reproduce", help="rerun every experiment of a bundle here and diff every metric")
    reproducing.add_argument("bundle", help="a zip made by `mucomp export --bundle` (or `mucomp pull -o`)")
    reproducing.add_argument("--tolerance", type=float, default=None,
                             help="largest |difference| accepted (default: 0 on the bundle's CPU and versions, "
                                  "else 0.01); every difference is printed either way")
    reproducing.add_argument("--keep", action="store_true",
                             help="store the reruns (default: a scratch store, removed afterwards)")
    reproducing.add_argument("--json", action="store_true", help="print the whole report as JSON")
    reproducing.set_defaults(func=cmd_reproduce)

    pushing = sub.add_parser("push", help="push experiments to a Hugging Face dataset repo, with a dataset card")
    pushing.add_argument("repo", help="OWNER/NAME of the dataset repo (created when missing)")
    pushing.add_argument("ids", nargs="*", help="experiment ids (or --group)")
    pushing.add_argument("--group", default=None, help="every experiment of this replicate group")
    pushing.add_argument("--weights", action="store_true", help="upload the weights too (needed to pull and import)")
    pushing.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its own)")
    pushing.add_argument("--json", action="store_true")
    pushing.set_defaults(func=cmd_push)

    pulling = sub.add_parser("pull", help="import the experiments of a dataset repo made by push (or write a bundle)")
    pulling.add_argument("repo", help="OWNER/NAME of the dataset repo")
    pulling.add_argument("-o", "--output", default=None,
                         help="write the experiments as a bundle file for `mucomp reproduce` instead of importing")
    pulling.add_argument("--revision", default=None, help="a branch, tag or commit (default: main)")
    pulling.add_argument("--skip-existing", action="store_true", help="leave experiments that exist as they are")
    pulling.add_argument("--allow-references", action="store_true",
                         help="also import reference models whose recorded weights hash and id match (as import)")
    pulling.add_argument("--json", action="store_true")
    pulling.set_defaults(func=cmd_pull)

    zoo_parser = sub.add_parser("zoo", help="published unlearned models: list them, or pull one into the store")
    zoo_sub = zoo_parser.add_subparsers(dest="zoo_command", required=True)
    zoo_list = zoo_sub.add_parser("list", help="the repositories mucomp knows, with the cards' accuracies")
    zoo_list.add_argument("--json", action="store_true")
    zoo_pull = zoo_sub.add_parser("pull", help="download one file, check and evaluate it, store it as Published")
    zoo_pull.add_argument("repo", help="a repository of `mucomp zoo list`, e.g. Yurim0507/Selective_Synapse_Dampening")
    add_scenario_arguments(zoo_pull)
    zoo_pull.add_argument("--json", action="store_true")
    zoo_parser.set_defaults(func=cmd_zoo)
