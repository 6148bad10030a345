"""Finding the user's methods, and listing every registered method.

User methods are found in two places (searched on first use, again after
:func:`refresh_plugins`):

- ``MUCOMP_PLUGINS``: ``os.pathsep``-separated ``.py`` files or folders (every ``*.py`` in a
  folder, sorted, not recursive, names starting with ``_`` or ``.`` skipped);
- the entry-point group ``mucomp.methods`` of installed distributions (each entry point's
  object is loaded; loading a module that calls ``@register`` is enough).

A plugin that fails to import or to register never breaks the app: the error is kept, with
where it came from, in :func:`plugin_errors`, and whatever that plugin had registered is
dropped again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

from mucomp.methods.registry import _LOCK, _STATE, MethodInfo, PluginError

ENTRY_POINT_GROUP = "mucomp.methods"
PLUGINS_ENV = "MUCOMP_PLUGINS"


@contextlib.contextmanager
def _loading(source: str) -> Iterator[None]:
    """Register everything done inside as coming from ``source``; on an error, drop it again
    and keep the error."""
    previous_source, previous_added = _STATE.source, _STATE.added
    _STATE.source, _STATE.added = source, []
    try:
        yield
    except (Exception, SystemExit) as err:  # a plugin may raise anything, even sys.exit()
        for name in _STATE.added:
            info = _STATE.methods.get(name)
            if info is not None and info.source == source:
                del _STATE.methods[name]
        _STATE.errors.append(PluginError(source, _describe(err)))
    finally:
        _STATE.source, _STATE.added = previous_source, previous_added


def _describe(err: BaseException) -> str:
    """``Type: message (file:line)``, the line being the innermost frame in plugin code."""
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "importlib" not in frame.filename and not frame.filename.endswith("registry.py"):
            where = f" ({Path(frame.filename).name}, line {frame.lineno})"
            break
    if isinstance(err, SyntaxError) and err.filename:
        where = f" ({Path(err.filename).name}, line {err.lineno})"
    text = str(err).strip() or "no details"
    return f"{type(err).__name__}: {text}{where}"


def plugin_paths(value: str | None = None) -> tuple[list[Path], list[PluginError]]:
    """The ``.py`` files named by ``MUCOMP_PLUGINS`` (or ``value``), and errors for entries
    that do not exist or are not Python files."""
    value = os.environ.get(PLUGINS_ENV, "") if value is None else value
    files: list[Path] = []
    errors: list[PluginError] = []
    for entry in (e.strip() for e in value.split(os.pathsep)):
        if not entry:
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            files += sorted(p for p in path.glob("*.py") if not p.name.startswith(("_", ".")))
        elif path.is_file() and path.suffix == ".py":
            files.append(path)
        elif path.exists():
            errors.append(PluginError(str(path), f"{PLUGINS_ENV} names a file that is not a .py file"))
        else:
            errors.append(PluginError(str(path), f"{PLUGINS_ENV} names a file or folder that does not exist"))
    return files, errors


def load_plugin_file(path: str | os.PathLike) -> list[str]:
    """Import one plugin file; returns the names it registered (errors go to
    :func:`plugin_errors`). A file loaded again (after an edit) replaces its methods."""
    path = Path(path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"mucomp_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{digest}"
    with _LOCK, _loading(str(path)):
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        if not _STATE.added:
            raise LookupError("the file registered no method; decorate a function fn(ctx) with @register(...)")
        return list(_STATE.added)
    return []


def _load_entry_points() -> None:
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        source = f"entry point {ep.name} ({ep.value})"
        with _loading(source):
            obj = ep.load()
            registered = any(info.fn is obj or info.module == ep.module for info in _STATE.methods.values())
            if not _STATE.added and not registered:
                raise LookupError("loading it registered no method; decorate a function fn(ctx) with @register(...)")


def _ensure_plugins() -> None:
    """Load what ``MUCOMP_PLUGINS`` names (again when it changed) and, once, the entry points."""
    with _LOCK:
        value = os.environ.get(PLUGINS_ENV, "")
        if not _STATE.entry_points_loaded:
            _STATE.entry_points_loaded = True
            try:
                _load_entry_points()
            except Exception as err:  # a broken installed distribution must not break the app
                _STATE.errors.append(PluginError("entry points", _describe(err)))
        if _STATE.loaded_env != value:
            _STATE.loaded_env = value
            for name in [n for n, info in _STATE.methods.items() if _is_file_source(info.source)]:
                del _STATE.methods[name]
            _STATE.errors = [e for e in _STATE.errors if not _is_file_source(e.source)]
            files, errors = plugin_paths(value)
            _STATE.errors += errors
            for path in files:
                load_plugin_file(path)


def _is_file_source(source: str) -> bool:
    return not source.startswith(("builtin", "entry point", "module "))


def refresh_plugins() -> None:
    """Forget the methods of plugin files and every plugin error, then search
    ``MUCOMP_PLUGINS`` and the entry points again (after installing or editing a plugin, or in
    tests). Methods of imported modules stay: a module runs its decorators only once."""
    with _LOCK:
        _STATE.errors = []
        _STATE.loaded_env = None
        _STATE.entry_points_loaded = False
    _ensure_plugins()


def available_methods() -> dict[str, MethodInfo]:
    """Every registered method, built-ins first (in their fixed order), then plugins."""
    _ensure_plugins()
    with _LOCK:
        return dict(_STATE.methods)


def get_method(name: str) -> MethodInfo:
    """The method registered as ``name``; ValueError lists the available ones."""
    methods = available_methods()
    try:
        return methods[name]
    except KeyError:
        hint = ""
        if plugin_errors():
            hint = f" ({len(plugin_errors())} plugin(s) failed to load: see `mucomp methods`)"
        raise ValueError(f"unknown method {name!r}; available: {', '.join(methods)}{hint}") from None


def plugin_errors() -> list[PluginError]:
    """Plugins that could not be loaded, each with its source and a readable message."""
    _ensure_plugins()
    with _LOCK:
        return list(_STATE.errors)
