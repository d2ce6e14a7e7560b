"""The dashboard's secret token and the checks that keep other sites out (pure).

Approving from the page changes state as the person who started the server, so a changing
request needs three things: the token (printed once in the URL by ``aictl dashboard`` or
``aictl daemon start``, compared in constant time), a ``Host`` naming the loopback address
and port the server is bound to (a DNS-rebinding page sends its own host name), and, when the
browser sends one, an ``Origin`` (or ``Referer``) of that same address. Without the token the
pages are read-only and carry no approve button.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

TOKEN_BYTES = 24
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
ENVIRONMENT = "AICTL_DASHBOARD_TOKEN"
"""How ``daemon start`` hands the token to the background daemon (removed from the daemon's
environment at once, so no agent it starts inherits it)."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether ``given`` is the token; constant time in the token's content. No token set
    (None) matches nothing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def host_allowed(host: str | None, port: int) -> bool:
    """Whether a ``Host`` header names this server: a loopback name with the bound port."""
    return host is not None and host.lower() in {f"{name}:{port}" for name in LOOPBACK_NAMES}


def origin_allowed(origin: str | None, referer: str | None, port: int) -> bool:
    """Whether a changing request comes from this server's own pages: its ``Origin`` (else
    its ``Referer``), when the browser sent either, is this server. A request with neither
    (a script, curl) is judged by the token alone."""
    source = origin if origin is not None else referer
    if source is None:
        return True
    if source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme == "http" and host_allowed(parts.netloc, port)
