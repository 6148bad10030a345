"""Small assertions several test modules share."""

import torch


def same_weights(a, b) -> bool:
    """Whether two modules hold bit-identical state dicts."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def seed_reference_cache(home, scenario, kinds=("original",), from_home=None) -> None:
    """Copy the trained reference files of ``scenario`` (``kinds``) from the session's cache (or
    that of the MUCOMP_HOME ``from_home``) into the reference cache of another MUCOMP_HOME
    ``home``: a returning user's machine, where only the missing references are trained. Call it
    while MUCOMP_HOME is still the session's."""
    import shutil
    from pathlib import Path

    from mucomp import settings
    from mucomp.references import cache_path

    session_dir = settings.references_dir()
    for kind in kinds:
        source = cache_path(scenario, kind)
        target = Path(home) / "references" / source.relative_to(session_dir)
        if from_home is not None:
            source = Path(from_home) / "references" / source.relative_to(session_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def private_home(tmp_path_factory, name: str):
    """A generator for a module fixture: a private MUCOMP_HOME (the CLI's default store is the
    module's) that shares the session's reference cache, set for the module and put back after."""
    import pytest

    from mucomp import settings

    home = tmp_path_factory.mktemp(name)
    (home / "references").symlink_to(settings.references_dir(), target_is_directory=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("MUCOMP_HOME", str(home))
    yield home
    patch.undo()


def fresh_app_home(path, monkeypatch):
    """Point MUCOMP_HOME at ``path`` for one AppTest and empty Streamlit's caches (they outlive a
    script run and would show the previous test's store). Returns ``path``; call
    :func:`clear_app_caches` after the test when the next one must not see this store either."""
    monkeypatch.setenv("MUCOMP_HOME", str(path))
    clear_app_caches()
    return path


def clear_app_caches() -> None:
    """Empty ``st.cache_resource`` and ``st.cache_data``."""
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
