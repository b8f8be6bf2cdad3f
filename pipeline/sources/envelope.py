"""The answer's envelope (pure): where the record list and the record count sit in a page.

MANPINT002 does not define the JSON wrapper. A bare array is always accepted; an object is read
at the configured dotted paths (``data``, ``result.data``; ``total``, ``meta.total``). The
types are built once, so a page is decoded in one pass with no dict walking.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pipeline.errors import ConfigError, DecodeError

__all__ = ["Answer", "EnvelopeDecoder"]


class Answer(msgspec.Struct, frozen=True):
    """One page's records, still undecoded, and the total it announced, if any."""

    records: list[msgspec.Raw]
    total: int | None = None


def _struct(name: str, node: dict[str, Any]) -> type:
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for i, (key, child) in enumerate(node.items()):
        attr = f"f{i}"
        rename[attr] = key
        if isinstance(child, dict):
            child_type = _struct(f"{name}_{i}", child)
            required = "records" in _leaves(child)
            fields.append(
                (attr, child_type, msgspec.NODEFAULT)
                if required
                else (attr, child_type | None, None)
            )
        elif child == "records":
            fields.append((attr, list[msgspec.Raw] | None, msgspec.NODEFAULT))
        else:
            fields.append((attr, Any, None))  # read leniently: an odd total is no total
    return msgspec.defstruct(name, fields, rename=rename)


def _leaves(node: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for child in node.values():
        found |= _leaves(child) if isinstance(child, dict) else {child}
    return found


def _insert(tree: dict[str, Any], path: list[str], leaf: str, *, key: str) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError("the record list and the total cannot share a path", path=key)
        node = child
    if path[-1] in node:
        raise ConfigError("the record list and the total cannot share a path", path=key)
    node[path[-1]] = leaf


def _get(obj: Any, path: list[str]) -> Any:
    for i in range(len(path)):
        if obj is None:
            return None
        obj = getattr(obj, f"f{_index(obj, path[i])}")
    return obj


def _index(obj: Any, key: str) -> int:
    return type(obj).__struct_encode_fields__.index(key)  # type: ignore[no-any-return]


def _count(value: object) -> int | None:
    """A ``total`` the server may send as a number or a numeric string; anything else is none."""
    if isinstance(value, str):
        value = int(value) if value.strip().isdigit() else None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 else None


class EnvelopeDecoder:
    """Decodes a page answer into an :class:`Answer`."""

    def __init__(self, url: str, data_path: str, total_path: str) -> None:
        self.url = url
        self._records_path = data_path.split(".")
        self._total_path = total_path.split(".") if total_path else None
        tree: dict[str, Any] = {}
        _insert(tree, self._records_path, "records", key="source.data_path")
        if self._total_path is not None:
            _insert(tree, self._total_path, "total", key="source.total_path")
        self._decoder = msgspec.json.Decoder(list[msgspec.Raw] | _struct("Envelope", tree))

    def decode(self, body: bytes) -> Answer | None:
        """The page's answer; None for an empty body (the caller decides what that means).

        Raises:
            DecodeError: not JSON, or not of the expected shape (the message says where).
        """
        if not body.strip():
            return None
        try:
            decoded = self._decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise DecodeError(self.url, str(exc)) from exc
        except (UnicodeDecodeError, RecursionError) as exc:
            raise DecodeError(self.url, type(exc).__name__) from exc
        if isinstance(decoded, list):
            return Answer(decoded)
        records = _get(decoded, self._records_path) or []
        total = _count(_get(decoded, self._total_path)) if self._total_path else None
        return Answer(records, total)
