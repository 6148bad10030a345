"""mucomp: the Machine Unlearning Comparator core (no UI code here)."""

__version__ = "0.1.0"
