"""A method's hyper-parameters: :class:`Param` (type, range, default, help) and the three every
method has (:data:`COMMON_PARAMS`); a declaration drives a control in the app and the validation
of every value from the CLI, a form or a stored config. Torch-free."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

PARAM_TYPES = ("float", "int", "choice", "bool")
_PARAM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


@dataclass(frozen=True)
class Param:
    """One hyper-parameter of a method; it drives a control in the app and the validation.

    ``type`` is ``"float"``, ``"int"``, ``"choice"`` or ``"bool"``. ``min`` / ``max`` bound
    numbers (inclusive; ``exclusive_min`` makes the lower bound strict, e.g. a learning rate
    > 0). ``choices`` lists the values of a ``"choice"``. ``default`` is used for a data set the
    method's ``defaults`` do not cover. ``log`` hints that a slider should be logarithmic.
    """

    name: str
    type: str = "float"
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple = ()
    help: str = ""
    exclusive_min: bool = False
    log: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _PARAM_RE.match(self.name):
            raise ValueError(f"parameter name {self.name!r} must be a Python identifier of at most 40 characters")
        if self.type not in PARAM_TYPES:
            raise ValueError(f"parameter {self.name!r}: type must be one of {PARAM_TYPES}, got {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name!r} is a choice: give its choices")
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.default is not None:
            object.__setattr__(self, "default", self.validate(self.default))

    def allowed(self) -> str:
        """The allowed values in words, for error messages and help texts."""
        if self.type == "bool":
            return "true or false"
        if self.type == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        kind = "an integer" if self.type == "int" else "a number"
        if self.min is None and self.max is None:
            return kind
        low = "(" if self.exclusive_min else "["
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        return f"{kind} in {low}{lo}, {hi}]"

    def validate(self, value: Any) -> Any:
        """``value`` converted to this parameter's type; ValueError naming the parameter and the
        allowed values when it does not fit. Strings are parsed (the CLI and forms pass them)."""
        try:
            converted = self._convert(value)
        except (TypeError, ValueError):
            converted = None
        if converted is None or not self._in_range(converted):
            raise ValueError(f"{self.name} must be {self.allowed()}, got {value!r}")
        return converted

    def _convert(self, value: Any) -> Any:
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.strip().lower() in ("true", "1", "yes")
            return None
        if self.type == "choice":
            for choice in self.choices:
                if value == choice or (isinstance(value, str) and value.strip() == str(choice)):
                    return choice
            return None
        if isinstance(value, bool):
            return None
        if self.type == "int":
            number = float(value.strip()) if isinstance(value, str) else value
            if isinstance(number, float):
                if not number.is_integer():
                    return None
                number = int(number)
            return int(number) if isinstance(number, int) or hasattr(number, "__index__") else None
        number = float(value.strip() if isinstance(value, str) else value)
        return number if math.isfinite(number) else None

    def _in_range(self, value: Any) -> bool:
        if self.type in ("bool", "choice"):
            return True
        if self.min is not None and (value <= self.min if self.exclusive_min else value < self.min):
            return False
        return self.max is None or value <= self.max

    def as_dict(self) -> dict:
        """A JSON-ready description (what the app builds a control from)."""
        return {
            "name": self.name, "type": self.type, "default": self.default, "min": self.min,
            "max": self.max, "exclusive_min": self.exclusive_min, "choices": list(self.choices),
            "log": self.log, "help": self.help, "allowed": self.allowed(),
        }


#: The hyper-parameters every method has; the app's grid varies them.
COMMON_PARAMS: tuple[Param, ...] = (
    Param("epochs", "int", min=1, max=1000, help="passes of the method's loop over its data"),
    Param("lr", "float", min=0.0, max=1e6, exclusive_min=True, log=True, help="learning rate"),
    Param("batch_size", "int", min=1, max=8192, help="images per optimisation step"),
)
COMMON_NAMES = tuple(p.name for p in COMMON_PARAMS)

#: Shared options a method declares (adds to its ``params``) where a recipe it cites needs them;
#: :class:`~mucomp.methods.context.UnlearnContext` applies them, so the method's code still says
#: only its losses. ``augment``: RandomCrop (4 px padding) + horizontal flip on every batch the
#: method draws (``ctx.batches``), drawn from the unlearning seed; never on an evaluation pass.
AUGMENT = Param("augment", "bool", default=False,
                help="random crop (4 px padding) and horizontal flip on the method's training batches, as the "
                     "cited recipe's data loader does; never on evaluation")
#: ``lr_schedule`` / ``lr_floor``: the per-epoch learning rate, constant or cosine annealing from
#: ``lr`` to ``lr_floor`` (an absolute rate, torch's ``eta_min``), stepped after every epoch.
LR_SCHEDULE = Param("lr_schedule", "choice", default="constant", choices=("constant", "cosine"),
                    help="per-epoch learning rate: constant, or cosine annealing from lr to lr_floor")
LR_FLOOR = Param("lr_floor", "float", default=0.0, min=0.0, max=1e6,
                 help="where the cosine schedule ends after the last epoch (an absolute rate, torch's eta_min; "
                      "above lr the rate rises to it)")
