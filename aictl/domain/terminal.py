"""Text for a terminal: characters that could drive it, escaped.

Titles, reasons and names come from users and agents. Printed raw, an ANSI escape in a title
can clear the screen, retitle the window or forge lines of output, and a bidirectional override
(U+202E) reorders what is shown. :func:`printable` escapes them (``\\x1b``, ``\\u202e``),
keeping newlines and tabs. Every human output path uses it: the CLI's output module, the
daemon's console notifications and its echoed log lines.
"""

from __future__ import annotations


def _escape_table() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    for code in (0x09, 0x0A):  # tab and newline lay text out; they cannot drive a terminal
        del table[code]
    for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C):
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _escape_table()


def printable(text: str) -> str:
    """``text`` with every character that could drive a terminal escaped (see the module
    docstring); text without one is returned as it is."""
    return text.translate(_ESCAPES)
