"""The store's error types (one module, so every part of the store raises the same ones)."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store operation was refused or failed; the message says why and what to do."""


class ExperimentNotFoundError(StoreError, KeyError):
    """No experiment with that id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidIdError(StoreError, ValueError):
    """A malformed experiment id (the caller's argument error, never the store's failure)."""


class UnreadableExperimentError(StoreError):
    """A stored experiment's ``result.json`` does not validate (``reason`` says where); the
    experiment can still be listed as unreadable and deleted."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class ExperimentExistsError(StoreError):
    """Writing would replace stored experiments (``ids``); they were left as they are.

    ``imported`` lists what an import had written before it met them (empty when the conflict was
    found before anything was written).
    """

    def __init__(self, message: str, ids: list[str], imported: list[str] | None = None):
        super().__init__(message)
        self.ids = ids
        self.imported = list(imported or [])

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
