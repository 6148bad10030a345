"""``mucomp import`` of the published comparator's experiment files (torch-free).

``mucomp import FILE.json | FOLDER | CHECKOUT [--skip-existing]``: :func:`mucomp.sharing.comparator.import_comparator`
checks every file, then stores each as a "Published (comparator)" experiment of the CIFAR-10
ResNet-18 scenario of its forget class (training seed 0). ``mucomp import`` sends a path here when it
is a folder or a file that is not a zip archive (:func:`mucomp.sharing.comparator.is_comparator_path`).
"""

from __future__ import annotations

import argparse

from mucomp.cli.common import UsageError
from mucomp.display_text import for_terminal


def import_comparator_files(args: argparse.Namespace) -> int:
    """Import the comparator files at ``args.archive``; prints what was stored, skipped and noted."""
    from mucomp.sharing.comparator import ComparatorImportError, import_comparator
    from mucomp.store import ExperimentExistsError, ExperimentStore

    if getattr(args, "allow_references", False):
        raise UsageError("--allow-references: comparator files are imported as 'Published (comparator)' experiments, "
                         "never as references; leave the option out")
    try:
        done = import_comparator(ExperimentStore(), args.archive, on_conflict="skip" if args.skip_existing else "error")
    except FileNotFoundError as err:
        raise UsageError(f"archive: {err}") from err
    except ComparatorImportError as err:
        lines = "\n".join(f"  {for_terminal(problem)}" for problem in err.problems)
        raise RuntimeError(f"{len(err.problems)} comparator file(s) can't be imported; nothing was imported:\n{lines}") from err
    except ExperimentExistsError as err:
        done_text = f"only {', '.join(err.imported)} had been imported" if err.imported else "nothing was imported"
        raise RuntimeError(
            f"the store already has {', '.join(err.ids)}; {done_text}. Delete them first (`mucomp delete ID`) or run "
            "`mucomp import --skip-existing` to import only the new ones") from err
    scenarios = ", ".join(sorted(done.scenarios)) or "-"
    print(f"imported {len(done.imported)} comparator experiment(s) of cifar10 ({scenarios}; training seed 0), "
          f"kind 'Published (comparator)', without weights: {', '.join(done.imported) or '-'}")
    if done.skipped:
        print(f"skipped {len(done.skipped)} already stored: {', '.join(done.skipped)}")
    for note in done.notes:
        print(f"note: {for_terminal(note)}")
    return 0
