"""Loading a configuration, in the order it happens: TOML, environment overrides, strict
decoding into :mod:`pipeline.config`'s Structs, then the rules across keys (every URL, the
field maps, the ids, what each target needs). Every failure is one :class:`ConfigError`
naming the key.

Overrides are applied *before* decoding: ``PIPELINE__SOURCE__PAGE_SIZE=500`` sets
``[source] page_size``; the value is read as a TOML value when it parses as one, else as text.
Every key typed :data:`~pipeline.config.Url` is checked by one rule (:func:`_check_urls`): an
http(s) URL with a host and no user name or password.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import urlsplit

import msgspec

from pipeline import registry
from pipeline.config import (
    CONTROL,
    ENV_PREFIX,
    AddressFieldMap,
    FieldMap,
    Settings,
    SourceSettings,
    TargetSettings,
    TargetsSettings,
    Url,
)
from pipeline.errors import ConfigError
from pipeline.state.url import check_state_url

__all__ = [
    "FIRST_ELEMENT",
    "check_field_maps",
    "listen_address",
    "load_settings",
    "plugin_modules",
    "settings_from_mapping",
]


def plugin_modules(environ: Mapping[str, str] | None = None) -> list[str]:
    """The plug-in modules named by ``PIPELINE_PLUGINS`` (comma-separated), for
    :func:`pipeline.registry.load_plugins`."""
    value = (os.environ if environ is None else environ).get(registry.PLUGINS_ENV, "")
    return [name.strip() for name in value.split(",") if name.strip()]


def _env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name} overrides a value that is not a section")
            node = child
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node[parts[-1]] = value
    return data


_UNKNOWN = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]*)`")


def _path_of(message: str) -> tuple[str, str | None]:
    # msgspec says "... - at `$.targets.syncbatch.batch_size`": keep the path apart, and put
    # an unknown key at the end of it, so the path names the key itself.
    text, sep, where = message.rpartition(" - at `")
    if not sep:
        text, where = message, "$"
    path = where.rstrip("`").removeprefix("$").removeprefix(".")
    unknown = _UNKNOWN.match(text)
    if unknown:
        path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
    return text, path or None


def settings_from_mapping(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Settings:
    """Decode settings from parsed TOML, after environment overrides.

    Raises:
        ConfigError: an unknown key, a wrong type or an out-of-range value, with its path.
    """
    merged = _env_overrides(_deep_copy(data), os.environ if environ is None else environ)
    sections = merged.pop("targets", {})
    settings: Settings = _convert(merged, Settings)
    settings = msgspec.structs.replace(settings, targets=_targets(sections))
    _check_urls(settings)
    for name, section in settings.targets.sections.items():
        _check_urls(section, f"targets.{name}.")
    listen_address(settings.metrics.listen)
    _check_source(settings.source)
    if settings.state.url is not None:
        check_state_url(settings.state.url)
    if "://" in settings.state.path:
        raise ConfigError(
            "is a file; a database URL goes in state.url (postgresql://...)", path="state.path"
        )
    _check_deactivation(settings)
    for name, section in settings.targets.sections.items():
        key = f"targets.{name}"
        _check_base_url(section.url, section.endpoints(), f"{key}.url")
        section.check(key)
    return settings


def _convert(data: Any, kind: type[Any], prefix: str = "") -> Any:
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        message, path = _path_of(str(exc))
        where = ".".join(p for p in (prefix, path) if p)
        raise ConfigError(message, path=where or None) from exc


def _targets(sections: Any) -> TargetsSettings:
    """Each ``[targets.<name>]`` decoded with the settings type its target registered, in the
    registry's order; a name no target registered is an error naming it."""
    if not isinstance(sections, dict):
        raise ConfigError("must be a table of [targets.<name>] sections", path="targets")
    known = {spec.name: spec for spec in registry.targets()}
    for name in sections:
        if name not in known:
            raise ConfigError(f"no such target (known: {', '.join(known)})", path=f"targets.{name}")
    decoded: dict[str, TargetSettings] = {}
    for name, spec in known.items():
        if name in sections:
            decoded[name] = _convert(sections[name], spec.settings, f"targets.{name}")
    return TargetsSettings(sections=decoded)


FIRST_ELEMENT = "[0]"
"""Suffix of a field map value naming a list's first element (``addresses[0]``)."""


def check_field_maps(fields: FieldMap, address_fields: AddressFieldMap) -> None:
    """The field maps' rules: no empty key, no key read by two fields, and no list index
    but ``[0]`` on ``address``.

    Raises:
        ConfigError: naming the key (``source.fields.email``) or the map.
    """
    names = msgspec.structs.asdict(fields)
    names["address"] = names["address"].removesuffix(FIRST_ELEMENT)
    for field, key in names.items():
        if "[" in key or "]" in key:
            message = (
                'a list is named whole ("addresses") or by its first element ("addresses[0]")'
                if field == "address"
                else "only address may name a list element"
            )
            raise ConfigError(message, path=f"source.fields.{field}")
    for section, mapping in (
        ("fields", names),
        ("address_fields", msgspec.structs.asdict(address_fields)),
    ):
        seen: dict[str, str] = {}
        for field, key in mapping.items():
            if not key:
                raise ConfigError("must not be empty", path=f"source.{section}.{field}")
            if key in seen:
                raise ConfigError(
                    f"{seen[key]} and {field} are both read from key {key!r}",
                    path=f"source.{section}",
                )
            seen[key] = field


def _url_problem(url: str) -> str | None:
    # The message never quotes the URL: it may hold a password.
    if CONTROL.search(url) or " " in url:
        return "must not hold spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL (a port out of range, or a stray bracket?)"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be a whole URL starting with http:// or https://"
    if "@" in parts.netloc:
        return "must not hold a user name or password: credentials come from *_env variables"
    if not parts.hostname:
        return "must name a host"
    if port == 0:
        return "port must be within 1..65535"
    return None


def _check_urls(section: msgspec.Struct, path: str = "") -> None:
    """Every key typed :data:`Url`, in every section, follows the same rule."""
    hints = get_type_hints(type(section), include_extras=True)
    for name in section.__struct_fields__:
        value = getattr(section, name)
        key = f"{path}{name}"
        if isinstance(value, msgspec.Struct):
            _check_urls(value, f"{key}.")
        elif hints[name] in (Url, Url | None) and value is not None:
            problem = _url_problem(value)
            if problem is not None:
                raise ConfigError(problem, path=key)


def _check_base_url(url: str, endpoints: tuple[str, ...], key: str) -> None:
    """A target's ``url`` is the base its endpoint paths are added to: it must not already hold
    one (its first two segments are enough to tell, ``/sync/customers``)."""
    path = urlsplit(url).path.rstrip("/") + "/"
    for endpoint in endpoints:
        lead = "/".join(endpoint.strip("/").split("/")[:2])
        if f"/{lead}/" in path:
            raise ConfigError(
                f"must be the base URL only: the pipeline adds {endpoint} itself", path=key
            )


def listen_address(listen: str) -> tuple[str, int]:
    """``[metrics] listen`` as host and port: ``host:port``, ``[ipv6]:port``, or ``:port`` for
    every interface; port 0 picks a free one.

    Raises:
        ConfigError: not of that form, or the port is not within 0..65535.
    """
    host, sep, port = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError("must be host:port with a port within 0..65535", path="metrics.listen")
    # An IPv6 address without brackets: which colon ends it would be a guess.
    if (":" in host and not bracketed) or any(c in host for c in "[]/@ ") or CONTROL.search(host):
        raise ConfigError(
            "must be host:port (an IPv6 host in brackets: [::1]:9108), not a URL",
            path="metrics.listen",
        )
    return host, int(port)


def _check_deactivation(settings: Settings) -> None:
    """Deactivation trusts a read to have seen every record: with offset paging that needs an
    overlap, or one deletion between two page requests skips a live customer, who is then
    deactivated."""
    deactivating = [n for n, t in settings.targets.sections.items() if t.deactivate_missing]
    if deactivating and settings.source.paging == "offset" and settings.source.overlap == 0:
        raise ConfigError(
            f"must be at least 1 while targets.{deactivating[0]}.deactivate_missing is true: "
            "without it, a deletion at the source during a pass skips a live customer",
            path="source.overlap",
        )


def _check_source(source: SourceSettings) -> None:
    """Rules across keys of ``[source]`` (a single key's rules are in its type)."""
    check_field_maps(source.fields, source.address_fields)
    if source.paging == "page" and source.first_page is None:
        raise ConfigError(
            'is required with paging = "page" (0 or 1): a wrong guess would skip a page',
            path="source.first_page",
        )
    params = [source.limit_param, source.offset_param if source.paging == "offset" else None]
    if source.paging == "page":
        params.append(source.page_param)
    names = [p for p in params if p is not None]
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError("paging parameters must be distinct and not empty", path="source")


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and decode a TOML configuration file.

    Raises:
        ConfigError: the file is missing, is not TOML, or does not decode.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration file: {exc.strerror}", path=str(path)
        ) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from exc
    return settings_from_mapping(data, environ)


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
