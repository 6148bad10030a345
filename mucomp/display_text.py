"""Showing stored or remote text literally: in Streamlit's markdown and on a terminal.

Every text mucomp did not write itself (a method label or group id read from a result, an
experiment id from a file name, a reference-check message, a bundle manifest's fields, a Hub
file name) may have been written by someone else. Shown raw, it can do more than say what it
says:

- in Streamlit's markdown (``st.markdown``, ``st.caption``, ``st.info`` / ``warning`` / ``error``
  / ``success``, ``st.write`` of a string, headers, metric, expander and tab labels, ``help=``
  tooltips) ``![x](http://evil/x.png)`` loads an external image in every visitor's browser, and
  links, HTML, ``:red[...]`` colours or ``$...$`` LaTeX change what the page says;
- on a terminal, ANSI escape sequences (``ESC [2K`` erases a line, ``ESC ]0;`` sets the window
  title), ``\\r`` and backspaces overwrite what was printed, and bidi overrides (U+202E) reverse it:
  a tampered bundle could print a fake ``verdict: reproduced exactly`` over the real one.

:func:`for_markdown` and :func:`for_terminal` make such text harmless and visible as what it is.
Neither needs anything beyond the standard library (this module is in the lowest layer).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["for_markdown", "for_terminal", "is_hidden_control"]

# --- what counts as a control ---------------------------------------------------------------------
#: Characters that format or move text instead of showing a glyph: C0 and C1 controls and DEL (Cc),
#: format characters (Cf: bidi embeddings, overrides and isolates, zero-width spaces, the invisible
#: tag characters), line and paragraph separators (Zl, Zp) and lone surrogates (Cs).
_CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
#: The zero-width joiner builds emoji sequences; it moves and hides nothing.
_KEPT_FORMAT = frozenset({"\u200d"})
#: ``\t`` and friends by their usual short names; everything else as ``\xNN`` / ``\uNNNN``.
_SHORT_NAMES = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\v": "\\v"}
#: Whitespace controls: a space in markdown (a line break there would start a new block).
_WHITESPACE = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x1f\x85\u2028\u2029")

# A whole escape sequence, 7-bit or 8-bit: CSI (ESC [ or 0x9b, parameters, a final byte); OSC, DCS,
# SOS, PM and APC strings (ESC ] P X ^ _ or 0x9d 0x90 0x98 0x9e 0x9f) up to BEL or the string
# terminator (ESC \ or 0x9c), or the text's end; any other ESC with its intermediate and final byte.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)


def is_hidden_control(char: str) -> bool:
    """Whether the one character ``char`` moves, hides, recolours or reorders text instead of
    showing a glyph (see :data:`_CONTROL_CATEGORIES`)."""
    return char not in _KEPT_FORMAT and unicodedata.category(char) in _CONTROL_CATEGORIES


def _visible(char: str) -> str:
    """``char`` as the escape a Python string literal would use: ``\\x1b``, ``\\r``, ``\\u202e``."""
    if char in _SHORT_NAMES:
        return _SHORT_NAMES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def for_terminal(text: object, *, newlines: bool = False) -> str:
    """``text`` (``str()`` of any value) safe to print on a terminal: every control character,
    escape sequence introducer, bidi override and other invisible format character replaced by its
    visible escape (ESC becomes the four characters ``\\x1b``, CR ``\\r``, U+202E ``\\u202e``), so a
    stored string can neither move the cursor, erase or recolour lines, set the window title nor
    reorder what follows. ``newlines``: keep ``\\n`` as a line break (for text mucomp composed
    line by line); by default it is shown as ``\\n`` too, so one value stays on one line.

    Printable text, backslashes included, is left as it is: ``for_terminal`` of its own output
    changes nothing."""
    value = str(text)
    if not any(is_hidden_control(c) for c in value):
        return value
    return "".join(c if (newlines and c == "\n") or not is_hidden_control(c) else _visible(c) for c in value)


# --- markdown ---------------------------------------------------------------------------------------
# What can turn text into a link, an image, code, HTML, an entity, LaTeX, a Streamlit colour directive
# (``:red[...]`` needs its ``[``), a table or emphasis; ``_`` only at a word's edge (``digits_cnn``
# stays as it is), block markers (``#``, ``-``, ``1.``) only at the start.
_SPECIAL = re.compile(r"([\\`*\[\]<>$~|&])|((?<!\w)_|_(?!\w))")
_BLOCK_START = re.compile(r"^(\s*)(?:([#+\-=>])|(\d+)([.)]))")


def _plain_line(value: str) -> str:
    """``value`` on one line without controls: escape sequences dropped whole, whitespace controls
    (line breaks, tabs, separators) made spaces, every other control removed."""
    value = _SEQUENCE.sub("", value)
    return "".join(" " if c in _WHITESPACE else "" if is_hidden_control(c) else c for c in value)


def for_markdown(text: object, limit: int | None = None) -> str:
    """``text`` (``str()`` of any value) as literal text inside Streamlit's markdown: controls
    stripped (escape sequences and bidi overrides removed, line breaks and tabs made spaces, so
    the text stays inline), every markdown, HTML and Streamlit metacharacter backslash-escaped
    (``![x](http://evil/x.png)`` shows as those characters, never as an image), at most ``limit``
    characters of it kept (then ``…``; None: all). Ordinary words, ``digits_cnn`` and ``0.05``
    come out unchanged."""
    plain = _plain_line(str(text))
    if limit is not None and len(plain) > limit:
        plain = plain[: max(limit - 1, 0)] + "…"
    escaped = _SPECIAL.sub(lambda m: "\\" + m.group(0), plain)
    # A backslash escapes punctuation only: "1. x" becomes "1\. x", "# x" becomes "\# x".
    return _BLOCK_START.sub(
        lambda m: m.group(1) + (f"\\{m.group(2)}" if m.group(2) else f"{m.group(3)}\\{m.group(4)}"), escaped)
