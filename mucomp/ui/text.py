"""Showing user-given text safely in Streamlit's markdown.

Streamlit renders ``st.markdown``, ``st.caption``, ``st.success`` / ``error`` / ``warning`` /
``info``, ``st.toast`` and headers as markdown with its own extensions (``:red[...]`` colours,
``:material/...:`` icons, ``$...$`` LaTeX). A label, owner, method name or file name typed or
imported by someone else must show as the characters it is, never as a link, an image (which
loads an external URL in every visitor's browser) or formatting: pass it through :func:`md`.
"""

from __future__ import annotations

from mucomp.display_text import for_markdown


def md(value: object, limit: int = 300) -> str:
    """``value`` as literal text inside markdown (:func:`mucomp.display_text.for_markdown`, the
    one escaping helper): special characters escaped, line breaks made spaces, escape sequences,
    bidi overrides and other control characters removed, at most ``limit`` characters (then ``…``)."""
    return for_markdown(value, limit)
