"""Feeds for tests: the settings of a source, and feed files for the pipeline run as a process
(a ``[source]`` and ``[targets.syncbatch]``, and, asked for, ``[targets.norce]``, pointing at
the URLs ``pipeline emulate`` prints)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from pipeline.config import SourceSettings

SB_IDS: dict[str, Any] = {
    "account_ids": "range",
    "account_id_range": [1, 1_000_000],
    "organisation_id_range": [1, 1000],
}
"""Sync-batch ids of the test feeds: a range, which takes any customer id (inserted ones too)."""

Table = Mapping[str, Any]


def source_settings(url: str, **overrides: Any) -> SourceSettings:
    """The source of an emulated MAN at ``url``: pages of 100, no overlap, quick retries."""
    data: dict[str, Any] = {
        "url": f"{url}/customer-users",
        "page_size": 100,
        "max_in_flight": 4,
        "overlap": 0,
        "token_env": "MAN_TOKEN",
        "retry": {"initial_seconds": 0.001, "max_seconds": 0.02, "max_attempts": 6},
    }
    data.update(overrides)
    return msgspec.convert(data, SourceSettings)


def toml_value(value: Any) -> str:
    """``value`` (a string, number, boolean, list or table) as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def toml_table(name: str, keys: Table) -> str:
    return f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items())


def feed_toml(
    urls: Mapping[str, str],
    state: Path,
    *,
    source: Table | None = None,
    syncbatch: Table | None = None,
    norce: Table | None = None,
    tables: Mapping[str, Table] | None = None,
    extra: str = "",
) -> str:
    """A feed of ``urls["source"]`` into ``urls["syncbatch"]`` (and ``urls["norce"]`` when
    ``norce`` is given), state in ``state``; ``source``, ``syncbatch`` and ``norce`` add to or
    change their tables' keys, ``tables`` adds whole tables (``flow``, ``serve``...) and
    ``extra`` is text put last (more keys of the last table)."""
    parts = [
        toml_table(
            "source",
            {"url": urls["source"], "page_size": 100, "token_env": "MAN_TOKEN", **(source or {})},
        ),
        toml_table("state", {"path": str(state)}),
    ]
    parts += [toml_table(name, keys) for name, keys in (tables or {}).items()]
    sync_batch = {
        "url": urls["syncbatch"],
        "token_env": "SYNCBATCH_TOKEN",
        "profile_url": "https://shop.example.com/users/{customer_id}",
        **SB_IDS,
        "batch_size": 100,
        **(syncbatch or {}),
    }
    parts.append(toml_table("targets.syncbatch", sync_batch))
    if norce is not None:
        keys = {
            "url": urls["norce"],
            "application_id": 1234,
            "account_id": 42,
            "scope": "stage",
            "client_id_env": "NORCE_CLIENT_ID",
            "client_secret_env": "NORCE_CLIENT_SECRET",
            **norce,
        }
        parts.append(toml_table("targets.norce", keys))
    return "\n".join(parts) + extra + "\n"


def write_feed(path: Path, urls: Mapping[str, str], state: Path, **keys: Any) -> Path:
    """:func:`feed_toml` written to ``path``; returns ``path``."""
    path.write_text(feed_toml(urls, state, **keys))
    return path
