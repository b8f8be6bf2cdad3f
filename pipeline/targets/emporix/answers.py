"""Emporix's answers as the client reads them: its error message (status, type, the fields it
names), a customer's version, a search hit, and the refusal a dead letter keeps (never the
message, which may quote anyone)."""

from __future__ import annotations

import msgspec

from pipeline.http import Response
from pipeline.targets.acks import redact
from pipeline.targets.emporix.payload import EmxMetadata

__all__ = [
    "Detail",
    "ErrorMessage",
    "Found",
    "Refused",
    "Version",
    "error_decoder",
    "error_of",
    "found_decoder",
    "refusal",
    "version_decoder",
]


class Detail(msgspec.Struct):
    field: str | None = None
    message: str | None = None


class ErrorMessage(msgspec.Struct):
    status: int | None = None
    type: str | None = None
    message: str | None = None
    details: list[Detail] = []


class Version(msgspec.Struct):
    metadata: EmxMetadata | None = None


class Found(msgspec.Struct):
    id: str | None = None
    customerNumber: str | None = None


error_decoder = msgspec.json.Decoder(ErrorMessage)
version_decoder = msgspec.json.Decoder(Version)
found_decoder = msgspec.json.Decoder(list[Found])


class Refused(Exception):
    """Emporix refused this record for good; the message is the dead-letter reason."""


def error_of(response: Response) -> ErrorMessage:
    try:
        return error_decoder.decode(response.body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return ErrorMessage(status=response.status)


def refusal(what: str, response: Response) -> Refused:
    problem = error_of(response)
    fields = sorted({d.field for d in problem.details if d.field})
    parts = [f"{what} refused with {response.status}"]
    if problem.type:
        parts.append(problem.type)
    if fields:
        parts.append("fields " + ", ".join(fields))
    # Never its message: it may quote anyone ("Duplicate account 'x@y'").
    return Refused(redact(": ".join(parts)))
