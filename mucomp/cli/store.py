"""The store's commands: ``mucomp list``, ``show``, ``summary``, ``export``, ``import`` and
``delete`` (torch-free: reading results never imports torch)."""

from __future__ import annotations

import argparse
import json
import sys

from mucomp.catalogue import LIST_METRICS
from mucomp.cli.common import (
    UsageError,
    add_forget_arguments,
    canonical_forget,
    check_output_file,
    emit,
    file_problem,
    load_experiment,
    results_text,
    store_call,
    summary_row,
)
from mucomp.display_text import for_terminal
from mucomp.specs import DATASETS

#: The metrics of ``mucomp summary``'s text (its JSON has every summarised metric).
SUMMARY_TEXT_METRICS = tuple(m for m in LIST_METRICS if m != "PS_exact")


def known_text(values: set[str], shown: int = 5) -> str:
    """A few values for a message: ``ga, ft`` or ``a, b, c, d, e and 3 more``."""
    ordered = sorted(values)
    more = f" and {len(ordered) - shown} more" if len(ordered) > shown else ""
    return ", ".join(ordered[:shown]) + more


def check_filter(option: str, value: str | None, rows: list[dict], of: str, narrowed_by: list[str]) -> None:
    """UsageError (exit 2) when a free-text filter (``--group``, ``--method``) names a value that
    none of the listed ``rows`` has (``of(row)``: its value), naming a few that they have: a typo
    is not mistaken for an empty result. ``narrowed_by``: the other filters the rows were listed
    with, so the message says where the value was looked for. The rule of both ``mucomp list``
    and ``mucomp summary``."""
    if value is None:
        return
    known = {str(row_value(row, of)) for row in rows if row_value(row, of)}
    if value in known:
        return
    where = f" of the {' / '.join(narrowed_by)} given" if narrowed_by else ""
    missing = (f"no stored experiment{where} belongs to group {value!r}" if of == "group"
               else f"no stored experiment{where} was made with method {value!r}")
    stored = f"stored: {known_text(known) or 'none'}"
    hint = ("`mucomp list --json` shows each experiment's group" if of == "group"
            else "`mucomp summary` lists every group with its method")
    raise UsageError(f"{option}: {missing} ({stored}); {hint}")


def row_value(row: dict, of: str) -> object:
    """A listing row's ``group`` (top level) or ``method`` (in its config)."""
    return row.get("group") if of == "group" else (row.get("config") or {}).get(of)


def scope_filters(args, filters: dict) -> list[str]:
    """The scenario options a listing was narrowed by (``filters``: the store filters they gave;
    for :func:`check_filter`'s message)."""
    given = ["--dataset"] if "dataset" in filters else []
    if "forget" in filters:
        given.append("--forget" if args.forget is not None else "--forget-class")
    return given


def cmd_list(args) -> int:
    """List stored experiments (optionally of one scenario) from the store's index; unreadable ones
    are listed apart with the reason (they never stop the listing)."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    filters = {}
    if args.dataset:
        filters["dataset"] = args.dataset
    if args.forget_class is not None or args.forget is not None:
        filters["forget"] = canonical_forget(args)
    entries = store.entries(**filters)
    if args.group is not None:
        check_filter("--group", args.group, entries, "group", scope_filters(args, filters))
        entries = [e for e in entries if e.get("group") == args.group]
    unreadable = store.problems
    for name, problem in unreadable.items():
        name, problem = for_terminal(name), for_terminal(problem)
        print(f"mucomp: experiment {name} is unreadable ({problem}); delete it with `mucomp delete {name}`",
              file=sys.stderr)

    def text() -> str:
        table = results_text(entries)
        if not unreadable:
            return table
        lines = [f"  {for_terminal(name)}  {for_terminal(problem)}" for name, problem in unreadable.items()]
        return "\n".join([table, "", f"unreadable ({len(unreadable)}; delete with `mucomp delete ID`):", *lines])

    emit([summary_row(r) for r in entries], args.json, text)
    return 0


def summary_scenario(group: dict) -> tuple[str, str]:
    """The scenario columns of a ``mucomp summary`` row: the data set (with the architecture where
    it is not the data set's own) and the forget set (with a data seed other than 0)."""
    config = group.get("config") or {}
    dataset, arch, data_seed = group.get("dataset") or "-", config.get("arch"), config.get("data_seed")
    spec = DATASETS.get(dataset)
    named = dataset if arch is None or spec is None or arch == spec.arch else f"{dataset} ({arch})"
    forget = group.get("forget") or "-"
    return named, forget + (f" (data seed {data_seed})" if data_seed else "")


def check_summary_filters(args, entries: list[dict], filters: dict) -> None:
    """Refuse a ``--group`` / ``--method`` of ``mucomp summary`` that none of the replicate groups
    among ``entries`` (listed with the scenario ``filters``) has (:func:`check_filter`)."""
    members = [e for e in entries if e.get("kind") == "unlearned" and e.get("group")]
    narrowed_by = scope_filters(args, filters)
    check_filter("--group", args.group, members, "group", narrowed_by)
    if args.group is not None:
        members = [e for e in members if e["group"] == args.group]
        narrowed_by.append("--group")
    check_filter("--method", args.method, members, "method", narrowed_by)


def cmd_summary(args) -> int:
    """Mean, 95 % Student-t interval and n of every metric per replicate group (from the index)."""
    from mucomp.groups import group_summaries
    from mucomp.store import ExperimentStore

    filters = {"dataset": args.dataset} if args.dataset else {}
    if args.forget is not None or args.forget_class is not None:
        filters["forget"] = canonical_forget(args)
    entries = ExperimentStore().entries(**filters)
    check_summary_filters(args, entries, filters)  # an unknown --group / --method: exit 2, never an empty table
    summaries = group_summaries(entries, group=args.group, method=args.method)

    def cell(entry: dict | None) -> str:
        if not entry or entry["mean"] is None:
            return "-"
        if entry["half_width"] is None:
            return f"{entry['mean']:.4g} (n {entry['n']})"
        return f"{entry['mean']:.4g} ± {entry['half_width']:.2g} (n {entry['n']})"

    def left_out(group: dict) -> list[str]:
        lines = [f"{for_terminal(group['group'])}: {i} repeats the seeds of {first}, counted once"
                 for i, first in group["repeats"].items()]
        return lines + [f"{for_terminal(group['group'])}: {i} left out: {reason}" for i, reason in group["apart"].items()]

    def text() -> str:
        if not summaries:
            return "no replicate groups (run with --seeds 0-4 to make one)"
        header = ["data set", "forget", "group", "method", "n", *SUMMARY_TEXT_METRICS]
        rows = sorted(([*map(for_terminal, summary_scenario(g)), for_terminal(g["group"]), for_terminal(g["method"]),
                        str(g["n"]), *(cell(g["metrics"].get(m)) for m in SUMMARY_TEXT_METRICS)] for g in summaries),
                      key=lambda row: row[:2])  # one scenario's groups together, oldest first
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
        notes = [line for g in summaries for line in left_out(g)]
        return "\n".join(lines + ["", "mean ± half-width of the 95 % Student-t interval over the group's distinct seed "
                                    "pairs; (n k): the replicates that have the metric", *notes])

    payload = summaries[0] if args.group else summaries
    emit(payload, args.json, text)
    return 0


def cmd_show(args) -> int:
    """Print one stored experiment: its listing fields (from the index), or with ``--json`` the
    whole stored result."""
    from mucomp.store import ExperimentStore, UnreadableExperimentError

    store = ExperimentStore()
    if args.json:
        emit(load_experiment(store, args.id).result, True, str)
        return 0
    try:
        entry = store_call(store.entry, args.id)
    except UnreadableExperimentError as err:
        raise RuntimeError(str(err)) from err
    print(json.dumps(summary_row(entry), indent=1))
    return 0


def chosen_ids(store, args) -> list[str]:
    """The experiments a command names: its ids, or every member of ``--group`` (not both)."""
    from mucomp.sharing import group_members
    from mucomp.store import StoreError

    if args.group and args.ids:
        raise UsageError("give experiment ids or --group, not both")
    if args.group:
        try:
            return group_members(store, args.group)
        except StoreError as err:
            raise UsageError(f"--group: {err}") from err
    if not args.ids:
        raise UsageError("give the ids of the experiments (`mucomp list`) or --group G")
    return args.ids


def cmd_export(args) -> int:
    """Write chosen experiments to a zip file; with ``--bundle`` a reproducibility bundle (the
    experiments they start from included) that ``mucomp reproduce`` reruns."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    ids = chosen_ids(store, args)
    if args.no_weights and not args.bundle:
        raise UsageError("--no-weights: only a --bundle can leave the weights out (an import needs them)")
    check_output_file(args.output)  # a device, FIFO or link there would be replaced by the zip
    if args.bundle:
        from mucomp.sharing import write_bundle

        bundled = store_call(write_bundle, store, ids, args.output, weights=not args.no_weights)
        extra = len(bundled) - len(set(ids))
        print(f"bundled {len(bundled)} experiment(s) to {args.output}"
              + (f" ({extra} of them the bases the others start from)" if extra > 0 else "")
              + ("" if args.no_weights else ", with their weights"))
        return 0
    from mucomp.sharing.bundle import atomic_path

    with atomic_path(args.output) as partial:  # an export cut short leaves no truncated zip at the output
        ids = store_call(store.export, ids, partial)
    print(f"exported {len(ids)} experiment(s) to {args.output}")
    return 0


def cmd_import(args) -> int:
    """Import the experiments of an exported zip file, or the published comparator's experiment
    files (a file, a folder of ``{c}/{id}.json`` or a checkout: :mod:`mucomp.cli.comparator`)."""
    from mucomp.sharing.comparator import is_comparator_path
    from mucomp.store import ExperimentExistsError, ExperimentStore

    if is_comparator_path(args.archive):
        from mucomp.cli.comparator import import_comparator_files

        return import_comparator_files(args)
    problem = file_problem(args.archive, missing="no file or folder")
    if problem:
        raise UsageError(f"archive: {problem}; give the path of a zip made by `mucomp export`, or the published "
                         "comparator's experiment files (a JSON file, a folder or a checkout)")
    from mucomp.sharing.bundle import import_archive  # says what a full disk left stored

    try:
        imported = import_archive(ExperimentStore(), args.archive, on_conflict="skip" if args.skip_existing else "error",
                                  allow_references=args.allow_references)
    except ExperimentExistsError as err:
        done = f"only {', '.join(err.imported)} had been imported" if err.imported else "nothing was imported"
        raise RuntimeError(
            f"the store already has {', '.join(err.ids)}; {done}. Delete them first "
            "(`mucomp delete ID`) or run `mucomp import --skip-existing` to import only the new ones"
        ) from err
    print(f"imported {len(imported)} experiment(s): {', '.join(imported) or '-'}")
    return 0


def cmd_delete(args) -> int:
    """Delete stored experiments (references can't be deleted; unreadable experiments can)."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    for experiment_id in args.ids:
        store_call(store.delete, experiment_id)
        print(f"deleted {experiment_id}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    listing = sub.add_parser("list", help="list stored experiments")
    listing.add_argument("--dataset", default=None, choices=sorted(DATASETS))
    add_forget_arguments(listing)
    listing.add_argument("--group", default=None, help="only this replicate group")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)

    summary = sub.add_parser("summary", help="mean, 95%% interval and n of every metric per replicate group")
    summary.add_argument("--group", default=None, help="one group (its id, from `mucomp list --json` or run --json)")
    summary.add_argument("--method", default=None, help="only this method's groups")
    summary.add_argument("--dataset", default=None, choices=sorted(DATASETS))
    add_forget_arguments(summary)
    summary.add_argument("--json", action="store_true")
    summary.set_defaults(func=cmd_summary)

    show = sub.add_parser("show", help="show one stored experiment")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="the whole stored result as JSON")
    show.set_defaults(func=cmd_show)

    export = sub.add_parser("export", help="export experiments to a zip file (--bundle: a reproducibility bundle)")
    export.add_argument("ids", nargs="*", help="experiment ids (or --group)")
    export.add_argument("-o", "--output", required=True, help="zip file to write")
    export.add_argument("--bundle", action="store_true",
                        help="a reproducibility bundle: configs with every seed, data and forget-set hashes, the "
                             "references' identities, code, environment, metrics (and the bases the experiments "
                             "start from); `mucomp reproduce FILE` reruns it")
    export.add_argument("--group", default=None, help="every experiment of this replicate group")
    export.add_argument("--no-weights", dest="no_weights", action="store_true",
                        help="with --bundle: leave the weights out (their hash stays in the manifest)")
    export.set_defaults(func=cmd_export)

    importing = sub.add_parser("import", help="import experiments from a zip file made by export, or the published "
                                              "comparator's experiment files (FILE.json, a folder of {class}/{id}.json "
                                              "or a checkout of gnueaj/Machine-Unlearning-Comparator)")
    importing.add_argument("archive", help="a zip made by `mucomp export`, or comparator experiment file(s)")
    importing.add_argument("--skip-existing", action="store_true", help="leave experiments that exist as they are")
    importing.add_argument("--allow-references", action="store_true",
                           help="also import reference models (Original / Retrained), only those whose recorded "
                                "weights hash and id match their weights, never replacing one already stored")
    importing.set_defaults(func=cmd_import)

    delete = sub.add_parser("delete", help="delete stored experiments")
    delete.add_argument("ids", nargs="+")
    delete.set_defaults(func=cmd_delete)
