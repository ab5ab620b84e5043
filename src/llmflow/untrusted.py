"""Text from an input (a mail's subject, sender or summary; anyone can write it) shown to a
person: in a terminal, a digest or an approval prompt. One place says what it may not hold."""

from __future__ import annotations

import re

_UNSEEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Control characters (a terminal's ESC sequences, line breaks) and bidi overrides."""


def one_line(text: str, limit: int | None = None) -> str:
    """`text` as one line without control characters or bidi overrides, cut at `limit`
    characters (with an ellipsis): it cannot add lines, move the cursor, recolour or
    reorder what follows it."""
    flat = " ".join(_UNSEEN.sub(" ", text).split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat


def other_domains(sender: str, addresses: str | list[str]) -> list[str]:
    """The addresses (a header's value or a list) at another domain than the `sender`
    header's: where a reply to a mail goes when its Reply-To points elsewhere (a web form,
    or a forged From)."""
    from email.utils import getaddresses

    own = domains(sender)
    given = [addresses] if isinstance(addresses, str) else addresses
    found = [a for _, a in getaddresses(given) if a]
    return [a for a in found if a.rpartition("@")[2].lower() not in own]


def domains(header: str) -> set[str]:
    """The domains of the addresses in a header's value, in lower case."""
    from email.utils import getaddresses

    return {a.rpartition("@")[2].lower() for _, a in getaddresses([header]) if a}
