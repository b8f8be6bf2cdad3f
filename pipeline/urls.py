"""URLs as they may be shown: in errors, reports, logs and ``/readyz``.

Configured URLs are refused at load when they hold credentials
(:mod:`pipeline.config_load`); this is the second line, for URLs that come from elsewhere
or are built at run time.
"""

from __future__ import annotations

__all__ = ["safe_url"]

MASK = "***"


def safe_url(url: str) -> str:
    """``url`` without its user name and password (masked) and without query or fragment.

    A query string or fragment could carry a key or personal data, so neither is ever shown;
    plain text that parses as no URL is only cut at ``?`` and ``#``. Never raises.
    """
    end = min((i for i in (url.find("?"), url.find("#")) if i >= 0), default=len(url))
    url = url[:end]
    scheme, sep, rest = url.partition("//")
    if not sep:
        return url
    host_end = len(rest) if "/" not in rest else rest.index("/")
    netloc = rest[:host_end]
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    return f"{scheme}{sep}{netloc}{rest[host_end:]}"
