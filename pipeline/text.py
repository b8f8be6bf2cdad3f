"""Values from data, made safe to show on a terminal: control characters escaped, no markup.

Customer ids, business units and reasons come from the source and the targets. Printed as
they are, an ``ESC[2J`` in a field would clear the operator's screen, and a ``[/]`` in a
reason would be read as rich markup (and fail). Everything from data goes through
:func:`plain` or :func:`escape_controls` before it is shown.
"""

from __future__ import annotations

import re

from rich.text import Text

__all__ = ["CONTROL", "escape_controls", "plain"]

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""C0 and C1 control characters, DEL among them (a C1 ``CSI``, U+009B, starts an escape
sequence on some terminals as ``ESC [`` does)."""


def escape_controls(value: str) -> str:
    """``value`` with each control character written as ``\\xNN``.

    >>> escape_controls("A\\x1b[2JB")
    'A\\\\x1b[2JB'
    """
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def plain(value: str) -> Text:
    """``value`` as rich text shown literally: no markup, no highlighting, controls escaped."""
    return Text(escape_controls(value))
