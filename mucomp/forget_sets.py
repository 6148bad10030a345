"""Forget sets: which training images a scenario asks a model to forget (torch-free).

A forget set is written as text, the same in the CLI (``--forget``), the app and the store:

- ``class:K``: every training image of class K (an index or a class name; the default kind);
- ``classes:K1,K2,...``: every training image of several classes;
- ``random:P%`` or ``random:N``: P percent (rounded) or N training images drawn uniformly without
  replacement with the scenario's *data seed*: the random-forgetting setting of SalUn (Fan et al.,
  ICLR 2024) and "Model Sparsity Can Simplify Machine Unlearning" (Jia et al., NeurIPS 2023);
- ``indices:FILE``: the training indices listed in a text file, one per line (``#`` comments and
  blank lines ignored). The set is identified by a hash of its sorted indices; the indices travel
  with the scenario and are stored with every experiment.

:func:`parse_forget` validates the text (class ranges, percentages, file contents) and returns a
:class:`ForgetSet`; :meth:`ForgetSet.indices_in` draws / checks the training indices once the split
is known. Class sets measure UA / RA / TUA / TRA over classes; random and index sets over images
(see docs/definitions.md, "Forget sets and seeds").
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mucomp.specs import DatasetSpec

KINDS = ("class", "classes", "random", "indices")
#: Largest index file read (bytes): a 60,000-image split written one index per line is ~350 kB.
MAX_INDEX_FILE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ForgetSet:
    """A validated forget set. Exactly one of the kind's fields is set:

    ``classes`` (sorted class indices) for ``class`` / ``classes``; ``percent`` (0 < P < 100) or
    ``count`` (N >= 1) for ``random``; ``indices`` (sorted, unique training indices) for ``indices``.
    """

    kind: str
    classes: tuple[int, ...] = ()
    percent: float | None = None
    count: int | None = None
    indices: tuple[int, ...] = ()

    @property
    def by_class(self) -> bool:
        """Whether the set is whole classes (metrics over classes) rather than images."""
        return self.kind in ("class", "classes")

    @property
    def text(self) -> str:
        """The canonical text, e.g. ``class:3``, ``classes:3,5``, ``random:10%``, ``indices:<hash>``."""
        if self.kind == "class":
            return f"class:{self.classes[0]}"
        if self.kind == "classes":
            return "classes:" + ",".join(str(k) for k in self.classes)
        if self.kind == "random":
            return f"random:{_number(self.percent)}%" if self.percent is not None else f"random:{self.count}"
        return f"indices:{self.digest}"

    @property
    def key(self) -> str:
        """A short path-safe id for scenario keys: ``c3``, ``c3+5``, ``r10p``, ``r100``, ``i<hash>``."""
        if self.by_class:
            return "c" + "+".join(str(k) for k in self.classes)
        if self.kind == "random":
            return f"r{_number(self.percent).replace('.', '_')}p" if self.percent is not None else f"r{self.count}"
        return f"i{self.digest}"

    @property
    def digest(self) -> str:
        """12 hex digits of the sha256 of the sorted indices (``indices`` sets only)."""
        text = ",".join(str(i) for i in self.indices)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self, spec: DatasetSpec) -> str:
        """Words for a page or a message, e.g. ``class 3 (cat)`` or ``10% of the training images``."""
        if self.by_class:
            names = ", ".join(f"{k} ({spec.class_names[k]})" if spec.class_names[k] != str(k) else str(k)
                              for k in self.classes)
            return f"class {names}" if self.kind == "class" else f"classes {names}"
        if self.kind == "random":
            amount = f"{_number(self.percent)}%" if self.percent is not None else f"{self.count}"
            return f"{amount} of the training images, drawn at random"
        return f"{len(self.indices)} listed training images (set {self.digest})"

    def indices_in(self, train_labels: np.ndarray, data_seed: int) -> np.ndarray:
        """The sorted training indices of the set, int64 ``[n_forget]``.

        ``train_labels``: the training split's labels ``[N]``. Random sets are drawn with
        ``data_seed``; index sets are checked against ``N``. Raises ValueError with what to do when
        the set does not fit the split (too many images, an index out of range, nothing retained).
        """
        n = int(train_labels.shape[0])
        if self.by_class:
            chosen = np.flatnonzero(np.isin(train_labels, self.classes))
        elif self.kind == "random":
            count = self.count if self.count is not None else int(round(self.percent / 100.0 * n))
            if not 1 <= count < n:
                raise ValueError(
                    f"{self.text} asks for {count} of the {n} training images; choose between 1 and {n - 1}"
                )
            rng = np.random.default_rng([int(data_seed), zlib.crc32(b"forget-random")])
            chosen = np.sort(rng.choice(n, size=count, replace=False))
        else:
            chosen = np.asarray(self.indices, dtype=np.int64)
            if chosen.size and int(chosen[-1]) >= n:
                raise ValueError(
                    f"the forget-set file lists index {int(chosen[-1])}, but the training split has "
                    f"{n} images (0-{n - 1}); fix the file"
                )
            if chosen.size >= n:
                raise ValueError("the forget-set file lists every training image; nothing would be retained")
        return chosen.astype(np.int64)


def parse_forget(value: str | ForgetSet, spec: DatasetSpec) -> ForgetSet:
    """A :class:`ForgetSet` from its text (see the module docstring); ValueError saying what to
    write when the text is not one of the forms."""
    if isinstance(value, ForgetSet):
        return value
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(_usage(f"unknown forget set {value!r}"))
    kind, _, body = value.partition(":")
    kind, body = kind.strip().lower(), body.strip()
    if kind == "class":
        return ForgetSet("class", (spec.class_index(body),))
    if kind == "classes":
        parts = [p for p in body.split(",") if p.strip()]
        if not parts:
            raise ValueError(_usage("classes: needs at least one class"))
        classes = tuple(sorted({spec.class_index(p) for p in parts}))
        if len(classes) >= spec.num_classes:
            raise ValueError(f"{value!r} forgets every class of {spec.name}; leave at least one class to retain")
        return ForgetSet("class", classes) if len(classes) == 1 else ForgetSet("classes", classes)
    if kind == "random":
        return _parse_random(body)
    if kind == "indices":
        return ForgetSet("indices", indices=read_index_file(body))
    raise ValueError(_usage(f"unknown forget-set kind {kind!r}"))


def kind_of(text: str | None) -> str:
    """The kind of a forget-set text (``class``, ``classes``, ``random``, ``indices``) without
    validating the rest; ``class`` for no text (a one-class scenario by default). ValueError for
    an unknown kind."""
    if not text:
        return "class"
    kind = str(text).partition(":")[0].strip().lower()
    if kind not in KINDS:
        raise ValueError(_usage(f"unknown forget-set kind {kind!r}"))
    return kind


def of_classes(classes: int | list[int] | tuple[int, ...]) -> ForgetSet:
    """The forget set of one class (``class:K``) or several (``classes:K1,K2``), unvalidated
    against a data set (:func:`parse_forget` of its :attr:`ForgetSet.text` checks the range)."""
    chosen = tuple(sorted({int(k) for k in ([classes] if isinstance(classes, int) else classes)}))
    if not chosen:
        raise ValueError("give at least one class to forget")
    return ForgetSet("class" if len(chosen) == 1 else "classes", chosen)


def stored_forget_text(config: dict) -> str:
    """The forget-set text of a stored config: its ``forget`` (current schema) or, for hand-made
    and older configs, ``class:K`` of its single ``forget_class``."""
    forget = config.get("forget")
    if forget:
        return str(forget)
    return of_classes(int(config.get("forget_class") or 0)).text


def index_set(indices: list[int] | tuple[int, ...] | np.ndarray) -> ForgetSet:
    """An ``indices`` forget set from stored indices (validated: non-negative unique integers)."""
    values = np.asarray(indices)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError("forget indices must be a non-empty list of integers")
    if values.min() < 0 or np.unique(values).size != values.size:
        raise ValueError("forget indices must be unique and non-negative")
    return ForgetSet("indices", indices=tuple(int(i) for i in np.sort(values)))


def read_index_file(path: str | os.PathLike) -> tuple[int, ...]:
    """Sorted unique training indices from a text file, one per line (:func:`parse_index_text`).
    ValueError when the file is missing or larger than :data:`MAX_INDEX_FILE_BYTES`."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"forget-set file {str(path)!r} does not exist; give the path of a text file, one index per line")
    if file.stat().st_size > MAX_INDEX_FILE_BYTES:
        raise ValueError(f"forget-set file {file} is larger than {MAX_INDEX_FILE_BYTES // 2**20} MB; one index per line is far smaller")
    return parse_index_text(file.read_bytes(), str(file))


def parse_index_text(data: bytes | str, name: str = "the index file") -> tuple[int, ...]:
    """Sorted unique training indices from text, one per line (``#`` comments and blank lines
    ignored; untrusted: an upload or a file). ValueError naming the line when a line is not a
    non-negative integer or repeats one, or when the text is empty, too large or not UTF-8."""
    if len(data) > MAX_INDEX_FILE_BYTES:
        raise ValueError(f"{name} is larger than {MAX_INDEX_FILE_BYTES // 2**20} MB; one index per line is far smaller")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text; write one index per line") from None
    seen: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip().rstrip(",")
        if not value:
            continue
        if not value.isdigit() or len(value) > 12:
            raise ValueError(f"{name}, line {number}: {value[:40]!r} is not a training index (a non-negative integer)")
        index = int(value)
        if index in seen:
            raise ValueError(f"{name}, line {number}: index {index} is listed twice")
        seen.add(index)
    if not seen:
        raise ValueError(f"{name} lists no index; write one training index per line")
    return tuple(sorted(seen))


def _parse_random(body: str) -> ForgetSet:
    try:
        if body.endswith("%"):
            percent = float(body[:-1])
            if not 0.0 < percent < 100.0:
                raise ValueError
            return ForgetSet("random", percent=percent)
        count = int(body)
        if count < 1:
            raise ValueError
        return ForgetSet("random", count=count)
    except ValueError:
        raise ValueError(_usage(f"random:{body} is neither a share like random:10% (0-100) nor a count like random:100")) from None


def _number(value: float | None) -> str:
    """``10.0 -> '10'``, ``2.5 -> '2.5'``: the shortest text of a percentage."""
    return f"{value:g}"


def _usage(problem: str) -> str:
    return (f"{problem}; write class:K, classes:K1,K2, random:P% (e.g. random:10%), random:N "
            "or indices:FILE (one training index per line)")
