"""Forget sets: which training images a scenario asks a model to forget (torch-free).

A forget set is written as text, the same in the CLI (``--forget``), the app and the store:

- ``class:K``: every training image of class K (an index or a class name; the default kind);
- ``classes:K1,K2,...``: every training image of several classes;
- ``random:P%`` or ``random:N``: P percent (rounded) or N training images drawn uniformly without
  replacement with the scenario's *data seed*: the random-forgetting setting of SalUn (Fan et al.,
  ICLR 2024) and "Model Sparsity Can Simplify Machine Unlearning" (Jia et al., NeurIPS 2023);
- ``random:N:salun``: N training images drawn as those two papers' code draws them (their tables'
  published protocol, e.g. ``random:4500:salun`` on CIFAR-10): a per-class 10 % validation hold-out
  first, then N of the images left (:func:`salun_random_indices`, seeds fixed by the protocol);
- ``indices:FILE``: the training indices listed in a text file, one per line (``#`` comments and
  blank lines ignored). The set is identified by a hash of its sorted indices; the indices travel
  with the scenario and are stored with every experiment.

Numbers are written with the ASCII digits 0-9 only. A share keeps :data:`PERCENT_DECIMALS`
decimals (what a stored text keeps): ``random:0.1855975%`` *is* ``random:0.185598%``, and the
images are drawn from the rounded share, so the canonical text (:attr:`ForgetSet.text`, the
scenario key, the reference cache file) always names the images drawn.

:func:`parse_forget` validates the text (class ranges, percentages, file contents) and returns a
:class:`ForgetSet`, the one canonical form every caller uses; :meth:`ForgetSet.indices_in` draws /
checks the training indices once the split is known. :func:`check_sizes` refuses a forget or
retain set smaller than :data:`MIN_SET_IMAGES`, before any training. Class sets measure UA / RA /
TUA / TRA over classes; random and index sets over images (see docs/definitions.md, "Forget sets
and seeds").
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mucomp.specs import DatasetSpec

KINDS = ("class", "classes", "random", "indices")
#: Named random-forgetting protocols (``random:N:NAME``). ``salun``: the CIFAR-10 loaders of
#: OPTML-Group/Unlearn-Saliency (``Classification/dataset.py:576-593``, ``:599-606``, ``:674-705``)
#: and OPTML-Group/Unlearn-Sparse (``dataset.py``, the same code), run at their ``--seed`` default 2
#: (``arg_parser.py``) with ``--class_to_replace -1`` (SalUn's default: every class).
PROTOCOLS = ("salun",)
#: The seed of the ``salun`` protocol: both repositories' ``--seed`` default; the hold-out draws
#: with it, the forget set with it minus 1 (``replace_class(..., seed=seed - 1)``).
SALUN_SEED = 2
#: The share of each class the ``salun`` protocol holds out for validation before drawing.
SALUN_HOLDOUT_SHARE = 0.1
#: Largest index file read (bytes): a 60,000-image split written one index per line is ~350 kB.
MAX_INDEX_FILE_BYTES = 8 * 1024 * 1024
#: Decimals a random share keeps: ``FORGET_PATTERN`` in :mod:`mucomp.schema` stores at most 6. The
#: share is rounded to them *before* drawing, so a stored text draws the images it names.
PERCENT_DECIMALS = 6
#: The fewest images a forget set, and the retain set it leaves, may hold: every experiment compares
#: layer representations of forget and retain images with linear CKA's unbiased HSIC estimator,
#: which needs 4 images (the ``n(n-3)`` of :mod:`mucomp.similarity`); the attacks and MIA-Efficacy
#: need fewer (1). The one definition; :mod:`mucomp.similarity` reads it.
MIN_SET_IMAGES = 4
_ASCII_WHOLE = re.compile(r"[0-9]+")
_ASCII_SHARE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)%")
_BOM = "\ufeff"


@dataclass(frozen=True)
class ForgetSet:
    """A validated forget set. Exactly one of the kind's fields is set:

    ``classes`` (sorted class indices) for ``class`` / ``classes``; ``percent`` (0 < P < 100) or
    ``count`` (N >= 1) for ``random``; ``indices`` (sorted, unique training indices) for ``indices``.
    ``protocol`` (one of :data:`PROTOCOLS`, with a ``count`` only) names a published way to draw a
    random set; None draws uniformly with the data seed.
    """

    kind: str
    classes: tuple[int, ...] = ()
    percent: float | None = None
    count: int | None = None
    indices: tuple[int, ...] = ()
    protocol: str | None = None

    def __post_init__(self) -> None:
        if self.percent is not None:  # the one canonical share, whichever way the set was made
            object.__setattr__(self, "percent", canonical_percent(self.percent))
        if self.protocol is not None and (self.protocol not in PROTOCOLS or self.count is None):
            raise ValueError(_usage(f"a random protocol ({', '.join(PROTOCOLS)}) takes a count of images, "
                                    f"e.g. random:4500:salun; got {self.protocol!r}"))

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
            if self.protocol is not None:
                return f"random:{self.count}:{self.protocol}"
            return f"random:{_number(self.percent)}%" if self.percent is not None else f"random:{self.count}"
        return f"indices:{self.digest}"

    @property
    def key(self) -> str:
        """A short path-safe id for scenario keys: ``c3``, ``c3+5``, ``r10p``, ``r100``, ``i<hash>``."""
        if self.by_class:
            return "c" + "+".join(str(k) for k in self.classes)
        if self.kind == "random":
            if self.protocol is not None:
                return f"r{self.count}{self.protocol}"
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
            if self.protocol == "salun":
                return (f"{amount} of the training images, drawn as SalUn's random forgetting (after a per-class "
                        f"{SALUN_HOLDOUT_SHARE:.0%} hold-out)")
            return f"{amount} of the training images, drawn at random"
        return f"{len(self.indices)} listed training images (set {self.digest})"

    def indices_in(self, train_labels: np.ndarray, data_seed: int) -> np.ndarray:
        """The sorted training indices of the set, int64 ``[n_forget]``.

        ``train_labels``: the training split's labels ``[N]``. Random sets are drawn with
        ``data_seed`` (a protocol's set with the protocol's own seeds: :func:`salun_random_indices`);
        index sets are checked against ``N``. Raises ValueError with what to do when
        the set does not fit the split (an index out of range, fewer than :data:`MIN_SET_IMAGES`
        images to forget or to retain: :func:`check_sizes`).
        """
        n = int(train_labels.shape[0])
        if self.by_class:
            chosen = np.flatnonzero(np.isin(train_labels, self.classes))
        elif self.kind == "random":
            count = self.images_of(n)
            check_sizes(self, count, n)
            if self.protocol == "salun":
                chosen = salun_random_indices(train_labels, count)
            else:
                rng = np.random.default_rng([int(data_seed), zlib.crc32(b"forget-random")])
                chosen = np.sort(rng.choice(n, size=count, replace=False))
        else:
            chosen = np.asarray(self.indices, dtype=np.int64)
            if chosen.size >= n:
                raise ValueError("the forget-set file lists every training image; nothing would be retained")
        check_sizes(self, int(chosen.size), n)
        return chosen.astype(np.int64)

    def images_of(self, n: int) -> int | None:
        """How many of ``n`` training images the set forgets, known without the labels: random and
        index sets; None for class sets (their size is the classes' share of the split)."""
        if self.kind == "random":
            return self.count if self.count is not None else int(round(self.percent / 100.0 * n))
        return len(self.indices) if self.kind == "indices" else None


def salun_random_indices(train_labels: np.ndarray, count: int, seed: int = SALUN_SEED) -> np.ndarray:
    """The sorted training indices SalUn's and Unlearn-Sparse's code forgets for random forgetting
    of ``count`` images (``--class_to_replace -1 --num_indexes_to_replace count --seed seed``).

    First a validation hold-out: for each class k = 0..max label, ``int(0.1 * n_k)`` of its
    images drawn without replacement by one ``np.random.RandomState(seed)``, class after class.
    The images left keep their order (ascending; the authors' ``list(set(range(N)) - set(held))``
    iterates in that order), and ``count`` positions among them are drawn without replacement by
    ``np.random.RandomState(seed - 1)``. On CIFAR-10 (5,000 per class) ``random:4500:salun`` draws
    4,500 of the 45,000 images left. ValueError when ``count`` exceeds them.
    """
    labels = np.asarray(train_labels).astype(np.int64)
    rng = np.random.RandomState(seed)
    held = []
    for k in range(int(labels.max()) + 1 if labels.size else 0):
        members = np.where(labels == k)[0]
        held.append(rng.choice(members, int(SALUN_HOLDOUT_SHARE * len(members)), replace=False))
    pool = np.setdiff1d(np.arange(labels.size), np.hstack(held) if held else np.zeros(0, np.int64))
    if count > pool.size:
        raise ValueError(f"random:{count}:salun asks for {count} images, but the salun protocol draws from the "
                         f"{pool.size} left after its {SALUN_HOLDOUT_SHARE:.0%} hold-out per class; ask for fewer")
    positions = np.random.RandomState(seed - 1).choice(np.arange(pool.size), size=count, replace=False)
    return np.sort(pool[positions]).astype(np.int64)


def check_sizes(forget: ForgetSet, count: int, n: int) -> None:
    """Refuse a forget set of ``count`` of ``n`` training images that leaves fewer than
    :data:`MIN_SET_IMAGES` images to forget or to retain, or an index set that lists an index
    past the split (ValueError saying the minimum or the range, and what to do). Called before
    anything is trained: by a scenario's definition with its data set's size (so the CLI refuses
    it as a bad argument, exit 2) and when the set is drawn."""
    if forget.kind == "indices" and forget.indices and forget.indices[-1] >= n:
        raise ValueError(f"the forget-set file lists index {forget.indices[-1]}, but the training split has {n} "
                         f"images (0-{n - 1}); fix the file")
    low, high = MIN_SET_IMAGES, n - MIN_SET_IMAGES
    if low <= count <= high:
        return
    what = f"forgets {count} of the {n} training images" if count <= n else f"asks for {count} of the {n} training images"
    side = "forget" if count < low else "retain"
    more = side == "forget"
    advice = {"random": f"random:{low} or random:{min_random_percent(n):g}%" if more else "a smaller share or count",
              "indices": "list more indices" if more else "list fewer indices"
              }.get(forget.kind, "forget other classes" if more else "forget fewer classes")
    raise ValueError(
        f"{forget.text} {what}; the evaluation needs at least {MIN_SET_IMAGES} images to {side} "
        f"(layer-wise CKA's unbiased estimator), so choose between {low} and {max(high, low)} images: {advice}"
    )


def min_random_percent(spec_or_n: DatasetSpec | int, decimals: int = 2) -> float:
    """The smallest share (a multiple of ``10**-decimals`` percent) whose ``random:P%`` set of the
    training split forgets at least :data:`MIN_SET_IMAGES` images (``spec``: its
    :attr:`~mucomp.specs.DatasetSpec.train_images`). Home's lower bound for a random share."""
    n = spec_or_n if isinstance(spec_or_n, int) else spec_or_n.train_images
    if n <= 0:
        return 10.0 ** -decimals
    step = 10 ** int(decimals)
    units = max(1, math.floor((MIN_SET_IMAGES - 0.5) / n * 100 * step))
    while int(round(canonical_percent(units / step) / 100.0 * n)) < MIN_SET_IMAGES:
        units += 1
    return units / step


def canonical_percent(value: float | str) -> float:
    """A share in percent rounded to :data:`PERCENT_DECIMALS` decimals, the value every random set
    is drawn from; ValueError unless it lies strictly between 0 and 100 once rounded."""
    percent = round(float(value), PERCENT_DECIMALS)
    if not (math.isfinite(percent) and 0.0 < percent < 100.0):
        raise ValueError(f"a share of training images must lie strictly between 0 and 100 %, got {value!r}")
    return percent


def random_share_text(percent: float) -> str:
    """The canonical text of a random share, e.g. ``random:10%`` or ``random:0.185598%``."""
    return ForgetSet("random", percent=percent).text


def parse_forget(value: str | ForgetSet, spec: DatasetSpec) -> ForgetSet:
    """A :class:`ForgetSet` from its text (see the module docstring); ValueError saying what to
    write when the text is not one of the forms."""
    if isinstance(value, ForgetSet):
        return value
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(_usage(f"unknown forget set {value!r}"))
    kind, _, body = value.removeprefix(_BOM).partition(":")
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
    kind = str(text).removeprefix(_BOM).partition(":")[0].strip().lower()
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


@dataclass(frozen=True)
class ForgetWords:
    """Running text about a forget set, by its kind: ``noun`` ("the forget class", "the forget
    classes", "the forget images"); ``goal``: what an unlearned model's forget accuracy should do;
    ``kept``: what class-wise accuracy should show."""

    noun: str
    goal: str
    kept: str


def forget_words(forget: ForgetSet) -> ForgetWords:
    """The words a page uses for ``forget``. Whole classes are forgotten when their accuracy falls;
    images (random or listed) when the model behaves like the Retrained one, which never saw them
    and still classifies most of them correctly (the SalUn convention: the gap to Retrain)."""
    if forget.by_class:
        noun = "the forget class" if forget.kind == "class" else "the forget classes"
        return ForgetWords(noun, "the forget accuracy fall",
                           f"whether only {noun} {'was' if forget.kind == 'class' else 'were'} lost")
    return ForgetWords("the forget images", "the forget accuracy approach the Retrained model's",
                       "whether every class kept its accuracy (the forget images come from every class)")


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
    ValueError when the path is missing, a folder or not a regular file (a device, a pipe), cannot
    be read, or holds more than :data:`MAX_INDEX_FILE_BYTES` (never more is read)."""
    hint = "give the path of a text file, one index per line"
    if not str(path).strip():  # Path("") is the current folder: say what was typed instead
        raise ValueError("indices: names no file (the path is empty); indices:FILE needs the path of a text file, "
                         "one index per line")
    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        raise ValueError(f"forget-set file {str(path)!r} does not exist; {hint}") from None
    except OSError as err:
        raise ValueError(f"forget-set file {str(path)!r} cannot be read ({err.strerror or err}); {hint}") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"forget-set file {str(path)!r} is a folder, not a file; {hint}")
    if not stat.S_ISREG(mode):
        raise ValueError(f"forget-set file {str(path)!r} is not a regular file (a device, a pipe or a socket); {hint}")
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_INDEX_FILE_BYTES + 1)  # a file that grows meanwhile is still capped
    except OSError as err:
        raise ValueError(f"forget-set file {str(path)!r} cannot be read ({err.strerror or err}); {hint}") from None
    return parse_index_text(data, str(file))


def parse_index_text(data: bytes | str, name: str = "the index file") -> tuple[int, ...]:
    """Sorted unique training indices from text, one per line (``#`` comments and blank lines
    ignored, a leading UTF-8 byte-order mark dropped; untrusted: an upload or a file). ValueError
    naming the line when a line is not a non-negative whole number written with the digits 0-9 or
    repeats one, or when the text is empty, too large or not UTF-8."""
    if len(data) > MAX_INDEX_FILE_BYTES:
        raise ValueError(f"{name} is larger than {MAX_INDEX_FILE_BYTES // 2**20} MB; one index per line is far smaller")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not UTF-8 text; write one index per line") from None
    text = text.removeprefix(_BOM)
    seen: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        value = line.split("#", 1)[0].strip().rstrip(",")
        if not value:
            continue
        if not _ASCII_WHOLE.fullmatch(value) or len(value) > 12:
            raise ValueError(f"{name}, line {number}: {value[:40]!r} is not a training index (a non-negative "
                             "whole number written with the digits 0-9)")
        index = int(value)
        if index in seen:
            raise ValueError(f"{name}, line {number}: index {index} is listed twice")
        seen.add(index)
    if not seen:
        raise ValueError(f"{name} lists no index; write one training index per line")
    return tuple(sorted(seen))


def _parse_random(body: str) -> ForgetSet:
    """``random:P%`` (a share, rounded to :data:`PERCENT_DECIMALS` decimals), ``random:N`` or
    ``random:N:PROTOCOL`` (:data:`PROTOCOLS`)."""
    if ":" in body:
        amount, _, protocol = body.partition(":")
        protocol = protocol.strip().lower()
        if protocol not in PROTOCOLS:
            raise ValueError(_usage(f"random:{body} names no known protocol ({', '.join(PROTOCOLS)}), e.g. random:4500:salun"))
        amount = amount.strip()
        if not (_ASCII_WHOLE.fullmatch(amount) and len(amount) <= 9 and int(amount) >= 1):
            raise ValueError(_usage(f"random:{body}: the {protocol} protocol takes a count of images written with "
                                    "the digits 0-9, e.g. random:4500:salun"))
        return ForgetSet("random", count=int(amount), protocol=protocol)
    problem = f"random:{body} is neither a share like random:10% (0-100) nor a count like random:100"
    if body.endswith("%") and _ASCII_SHARE.fullmatch(body):
        try:
            return ForgetSet("random", percent=float(body[:-1]))
        except ValueError:
            raise ValueError(_usage(f"{problem}: the share must lie strictly between 0 and 100 once rounded to "
                                    f"{PERCENT_DECIMALS} decimals")) from None
    if _ASCII_WHOLE.fullmatch(body) and len(body) <= 12 and int(body) >= 1:
        return ForgetSet("random", count=int(body))
    if _ASCII_WHOLE.fullmatch(body):  # a count of no image, or of more than any data set holds
        problem += ": a count must be at least 1" if int(body) < 1 else ": that count is larger than any data set"
    elif body.rstrip("%").replace(".", "", 1).isdigit():  # digits, but not all of them 0-9
        problem += f": {body!r} is not a number written with the digits 0-9"
    raise ValueError(_usage(problem))


def _number(value: float | None) -> str:
    """``10.0 -> '10'``, ``2.5 -> '2.5'``, ``0.1855975 -> '0.185598'``: a share as its canonical
    text (at most :data:`PERCENT_DECIMALS` decimals, no exponent)."""
    return f"{canonical_percent(value):.{PERCENT_DECIMALS}f}".rstrip("0").rstrip(".")


def _usage(problem: str) -> str:
    return (f"{problem}; write class:K, classes:K1,K2, random:P% (e.g. random:10%), random:N, "
            "random:N:salun (SalUn's published protocol) or indices:FILE (one training index per line)")
