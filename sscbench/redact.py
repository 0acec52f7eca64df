"""Secrets kept out of everything sscbench writes or shows: one function, ``mask``.

What it is: a storage URL may carry a password in two places, the user part
(``postgresql+psycopg://USER:PASSWORD@HOST/DB``) and libpq's ``password=``
query parameter (``...?host=/run/pg&password=PASSWORD``). ``mask`` replaces
both with ``***`` wherever they occur in a text. Every path by which a URL
leaves sscbench goes through it: the command line and the spec recorded in
results files (``results.Record`` and ``spec.StorageSpec`` serialise through
it), the study records and job records kept in the storage, error messages,
and ``sscbench scrub``, which masks files written before.

A password is found up to the last ``@`` before the next space or quote, so a
raw ``:`` or ``/`` in it is covered. A URL with a space, a quote or a control
character in it cannot be masked reliably inside other text, and a raw ``@`` in
a password makes drivers take its tail for the host name (which their errors
then show), so sscbench refuses such a URL (``unsafe``) without repeating it
and asks for it percent-encoded.

What it is not: a way to keep the password out of the URL altogether. libpq
reads it from ``PGPASSWORD`` or ``~/.pgpass`` (``PGPASSFILE``) when the URL has
none, which is the form the documentation shows.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import Any

MASK = "***"

# scheme://user:SECRET@ ... the secret runs to the last "@" before a space or a quote.
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:'\"]*:)[^\s'\"]+(?=@)")
# password=SECRET as a query parameter or a libpq keyword (case-insensitive, as libpq's are not).
_PARAMETER = re.compile(r"((?:^|[?&;\s'\"])password=)[^&;\s'\"]+", re.IGNORECASE)
_UNSAFE = re.compile(r"[\s'\"\x00-\x1f\x7f]")


def mask(text: str) -> str:
    """``text`` with the password of every URL in it (user part and ``password=``) replaced by ``***``."""
    return _PARAMETER.sub(rf"\1{MASK}", _USERINFO.sub(rf"\1{MASK}", text))


#: Why a storage URL is refused by ``unsafe``; it never repeats the URL.
UNSAFE = ("the URL holds a space, a quote, a control character or a second '@', so a password in it could not be "
          "masked reliably; percent-encode them (a space is %20, '@' is %40), or leave the password out and give it "
          "through PGPASSWORD or ~/.pgpass")


def unsafe(url: str) -> bool:
    """True where ``mask`` could not be trusted with the URL: it holds a space, a quote or a control
    character (which end a password's run), or its password a raw ``@`` (drivers split the URL at
    the first one and show the rest as the host name)."""
    found = _USERINFO.search(url)
    return bool(_UNSAFE.search(url)) or (found is not None and "@" in url[found.end(1):found.end()])


def command_line(argv: Sequence[str]) -> str:
    """A command line as the shell would take it, every argument masked on its own."""
    return shlex.join(mask(arg) for arg in argv)


def masked_json(value: Any) -> Any:
    """A parsed JSON value with ``mask`` applied to every string in it, keys included."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [masked_json(v) for v in value]
    if isinstance(value, dict):
        return {mask(k): masked_json(v) for k, v in value.items()}
    return value


def scrub_text(text: str) -> str | None:
    """A JSON document's text with every string in it masked, or None where nothing needed masking.

    The masking is done on the text, so every other byte stays as it was; where that would not
    give the same document as masking each parsed string (a password ending in an escaped quote),
    the document is written out again instead (two-space indent, as sscbench writes).
    """
    document = json.loads(text)
    cleaned = masked_json(document)
    if cleaned == document:
        return None
    in_place = mask(text)
    try:
        if json.loads(in_place) == cleaned:
            return in_place
    except json.JSONDecodeError:
        pass
    return json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n"
