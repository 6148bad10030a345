"""Unlearning methods: the registry, the context a method works with, and the runner.

Public API::

    from mucomp.methods import register, Param, UnlearnContext, run_unlearning

    @register("my_method", label="My method", defaults={"epochs": 3, "lr": 0.01, "batch_size": 32},
              params=[Param("weight", "float", default=1.0, min=0, max=10)])
    def my_method(ctx: UnlearnContext) -> None:
        for _epoch in ctx.epochs():
            for images, labels in ctx.retain_batches():
                ctx.step(ctx.hyper["weight"] * F.cross_entropy(ctx.model(images), labels))

Built-ins (one file each): ``ft``, ``ga``, ``rl``, ``scrub``, ``salun``, ``retrain``.
"""

import importlib

from mucomp.methods.context import UnlearnContext
from mucomp.methods.registry import (
    COMMON_PARAMS,
    ENTRY_POINT_GROUP,
    PLUGINS_ENV,
    MethodInfo,
    Param,
    PluginError,
    available_methods,
    get_method,
    load_plugin_file,
    plugin_errors,
    refresh_plugins,
    register,
    unregister,
)
from mucomp.methods.run import STATUSES, UnlearnResult, run_unlearning

#: The built-in methods, one module each, in the order the app lists them; each registers
#: itself when imported.
BUILTIN_METHODS = (
    "ft", "ga", "rl", "scrub", "salun", "neggrad_plus", "l1_sparse", "ssd", "bad_teacher", "unsir", "retrain",
)
for _module in BUILTIN_METHODS:
    importlib.import_module(f"mucomp.methods.{_module}")

__all__ = [
    "BUILTIN_METHODS", "COMMON_PARAMS", "ENTRY_POINT_GROUP", "PLUGINS_ENV", "STATUSES", "MethodInfo", "Param",
    "PluginError", "UnlearnContext", "UnlearnResult", "available_methods", "get_method", "load_plugin_file",
    "plugin_errors", "refresh_plugins", "register", "run_unlearning", "unregister",
]
