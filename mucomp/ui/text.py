"""Showing user-given text safely in Streamlit's markdown.

Streamlit renders ``st.markdown``, ``st.caption``, ``st.success`` / ``error`` / ``warning`` /
``info``, ``st.toast`` and headers as markdown with its own extensions (``:red[...]`` colours,
``:material/...:`` icons, ``$...$`` LaTeX). A label, owner, method name or file name typed or
imported by someone else must show as the characters it is, never as a link, an image (which
loads an external URL in every visitor's browser) or formatting: pass it through :func:`md`.
"""

from __future__ import annotations

import re

# What can turn text into a link, an image, code, HTML, LaTeX, a Streamlit colour directive
# (``:red[...]`` needs its ``[``), a table or emphasis; ``_`` only at a word's edge (``digits_cnn``
# stays as it is), block markers (``#``, ``-``, ``1.``) only at the start.
_SPECIAL = re.compile(r"([\\`*\[\]<>$~|])|((?<!\w)_|_(?!\w))")
_BLOCK_START = re.compile(r"^(\s*)(?:([#+\-=>])|(\d+)([.)]))")


def md(value: object, limit: int = 300) -> str:
    """``value`` as literal text inside markdown: special characters escaped, line breaks and
    other control characters made spaces, at most ``limit`` characters (then ``…``)."""
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in str(value))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = _SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    # A backslash escapes punctuation only: "1. x" becomes "1\. x", "# x" becomes "\# x".
    return _BLOCK_START.sub(lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"), text)
