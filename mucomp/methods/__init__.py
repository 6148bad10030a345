"""Unlearning methods: the registry, the context a method works with, and the runner.

Public API::

    from mucomp.methods import register, Param, UnlearnContext, run_unlearning

    @register("my_method", label="My method", defaults={"epochs": 3, "lr": 0.01, "batch_size": 32},
              params=[Param("weight", "float", default=1.0, min=0, max=10)])
    def my_method(ctx: UnlearnContext) -> None:
        for _epoch in ctx.epochs():
            for images, labels in ctx.retain_batches():
                ctx.step(ctx.hyper["weight"] * F.cross_entropy(ctx.model(images), labels))

Built-ins (one file each, :data:`~mucomp.catalogue.BUILTIN_METHODS`): FT, GA, RL, SCRUB, SalUn,
SalUn as the published comparator runs it, NegGrad+, l1-sparse, SSD, Bad Teacher, UNSIR and
Retrain. The package is split by job:
:mod:`~mucomp.methods.params` (hyper-parameter declarations), :mod:`~mucomp.methods.registry`
(``@register``), :mod:`~mucomp.methods.plugins` (finding the user's methods, listing all),
:mod:`~mucomp.methods.sources` (shared citations), :mod:`~mucomp.methods.context` (what a method
works with) and :mod:`~mucomp.methods.unlearning` (one run, timed and guarded).
"""

import importlib

from mucomp.catalogue import BUILTIN_METHODS
from mucomp.methods.context import UnlearnContext
from mucomp.methods.params import COMMON_PARAMS, Param
from mucomp.methods.plugins import (
    ENTRY_POINT_GROUP,
    PLUGINS_ENV,
    available_methods,
    get_method,
    load_plugin_file,
    plugin_errors,
    refresh_plugins,
)
from mucomp.methods.registry import MethodInfo, PluginError, register, unregister
from mucomp.methods.unlearning import STATUSES, UnlearnResult, run_unlearning

# Each built-in registers itself when imported, in the order the app lists them.
for _module in BUILTIN_METHODS:
    importlib.import_module(f"mucomp.methods.{_module}")

__all__ = [
    "BUILTIN_METHODS", "COMMON_PARAMS", "ENTRY_POINT_GROUP", "PLUGINS_ENV", "STATUSES", "MethodInfo", "Param",
    "PluginError", "UnlearnContext", "UnlearnResult", "available_methods", "get_method", "load_plugin_file",
    "plugin_errors", "refresh_plugins", "register", "run_unlearning", "unregister",
]
