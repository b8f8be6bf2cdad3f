"""Norce jobs as Connect answers them: the job's state (``Job/Get``), its log (``Job/GetLog``)
and which item of the batch a log line stands for."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree import ElementTree

import msgspec

from pipeline.errors import SinkError

__all__ = [
    "ERROR",
    "QUEUED",
    "SUCCEEDED",
    "Job",
    "JobResponse",
    "JobTimeoutError",
    "LogLine",
    "code_of",
    "job_decoder",
    "job_response",
    "log_decoder",
]

SUCCEEDED = 2
ERROR = 3
QUEUED = 6


class JobResponse(msgspec.Struct):
    JobId: str | int


class Job(msgspec.Struct):
    JobId: int
    StatusId: int
    IsFinished: bool = False
    Fail: int | None = None

    @property
    def needs_log(self) -> bool:
        """The job failed, or says some of its items did."""
        return self.StatusId != SUCCEEDED or bool(self.Fail)

    def explained_by(self, named: int) -> bool:
        """Whether ``named`` items named in the log account for every failure of the job: all
        of them when it counts its failures, else at least one. When they do not, the items
        the log does not name may have failed too: none of them can be confirmed."""
        if not self.needs_log:
            return True
        if self.Fail is not None and self.Fail > 0:
            return named >= self.Fail
        return named > 0


class LogLine(msgspec.Struct):
    SeverityId: int
    Message: str | None = None
    ImportedRow: str | dict[str, Any] | None = None
    """The row as Norce received it: a JSON or XML string, or (seen from some hosts) the
    object itself."""


job_response = msgspec.json.Decoder(JobResponse)
job_decoder = msgspec.json.Decoder(Job)
log_decoder = msgspec.json.Decoder(list[LogLine])


class JobTimeoutError(SinkError):
    """A Norce job did not finish within the configured bound."""

    def __init__(self, job_id: str, seconds: float, *, queued: bool = False) -> None:
        what = "was still queued after" if queued else "did not finish within"
        super().__init__("norce", f"job {job_id} {what} {seconds:g} s")


def _top_level_code(row: str) -> str | None:
    """The top-level ``Code`` of a whole JSON or XML row; None when it does not parse."""
    text = row.strip()
    if text.startswith("{"):
        try:
            parsed: Any = msgspec.json.decode(text)
        except msgspec.DecodeError:
            return None
        if isinstance(parsed, dict):
            code = next((v for k, v in parsed.items() if k.casefold() == "code"), None)
            return code if isinstance(code, str) and code else None
        return None
    if text.startswith("<"):
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError:
            return None
        for child in root:
            if child.tag.rpartition("}")[2].casefold() == "code" and child.text:
                return child.text.strip() or None
    return None


def _in_row(value: str, row: str) -> bool:
    return bool(value) and (msgspec.json.encode(value).decode() in row or f">{value}<" in row)


def code_of(row: str | None, batch: Mapping[str, Sequence[str]]) -> str | None:
    """The ``Code`` of the batch item a log line's ``ImportedRow`` stands for.

    ``batch`` maps each Code sent to other values that tell its item apart (the e-mail).
    A row that parses gives its own top-level ``Code``. A row that does not (it may be
    truncated) is matched against the batch: the one item whose Code appears there as a
    ``Code`` value, else the one whose other values appear; otherwise no item.
    """
    if not row:
        return None
    code = _top_level_code(row)
    if code is not None:
        return code
    as_json = re.sub(r"\s+", "", row)
    found = [
        c
        for c in batch
        if f'"Code":{msgspec.json.encode(c).decode()}' in as_json or f"<Code>{c}</Code>" in row
    ]
    if not found:
        found = [c for c, values in batch.items() if any(_in_row(v, row) for v in values)]
    return found[0] if len(found) == 1 else None
