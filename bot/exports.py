"""Exports for staff reports: progress reports, messages and job interests as CSV or XLSX.

``rows`` builds the header and a streamed iterator of display values (text, numbers, empty
cells as None) that the CSV and XLSX writers share, and that the console can reuse. Rows come
from the database in batches (``yield_per``), so a 200k-message export never sits in memory.

Values: times are ISO 8601 with their UTC offset, in the app timezone (given as ``tz``, else the
timezone most cohorts use, else UTC); yes/no answers are ``true``/``false``/empty; employment
status is one of ``employed``, ``self_employed``, ``seeking``, ``studying`` or empty;
``raw_answers`` is compact JSON.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from bot.models import (
    CheckInRound,
    Cohort,
    Graduate,
    Institution,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
    audit,
)

KINDS = ("progress", "messages", "interests")
FORMATS = ("csv", "xlsx")
FILTER_KEYS = ("institution_id", "cohort_id", "since", "until")
BATCH = 1000

HEADERS: dict[str, list[str]] = {
    "progress": ["graduate", "phone", "institution", "cohort", "round_started_at",
                 "responded_at", "employment_status", "employer", "uses_training_skill",
                 "skill_rating", "needs_help", "status", "raw_answers",
                 "wants_job_alerts", "completed_at"],
    "messages": ["twilio_sid", "direction", "phone", "graduate", "cohort", "kind", "body",
                 "media_url", "status", "error_code", "created_at",
                 "media_type", "error_message", "sent_at"],
    "interests": ["job_code", "job_title", "graduate", "phone", "cohort", "created_at",
                  "employer", "institution"],
}


class ExportError(ValueError):
    """An unknown export kind, format or filter."""


def rows(session: Session, what: str, filters: Mapping[str, Any] | None = None, *,
         tz: tzinfo | str | None = None) -> tuple[list[str], Iterator[list[Any]]]:
    """The header and a lazy iterator of rows for ``what`` (consume it inside the session)."""
    if what not in KINDS:
        raise ExportError(f"unknown export {what!r} (known: {', '.join(KINDS)})")
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise ExportError(f"unknown export filter {', '.join(unknown)} "
                          f"(known: {', '.join(FILTER_KEYS)})")
    zone = _zone(session, tz)
    stmt, shape = _QUERIES[what](filters)
    result = session.execute(stmt.execution_options(yield_per=BATCH))

    def iterate() -> Iterator[list[Any]]:
        for record in result:
            yield shape(record, lambda value: _time(value, zone))

    return list(HEADERS[what]), iterate()


def export(session: Session, what: str, fmt: str, output: Path, *, actor: str = "cli",
           filters: Mapping[str, Any] | None = None, tz: tzinfo | str | None = None) -> int:
    """Write ``what`` to ``output`` as CSV or XLSX; return the number of data rows written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    output = Path(output)
    header, data = rows(session, what, filters, tz=tz)
    partial = output.with_name(output.name + ".part")
    try:
        count = (_write_csv if fmt == "csv" else _write_xlsx)(partial, what, header, data)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    audit(session, actor, "export", what=what, format=fmt, file=output.name, rows=count,
          filters=json.loads(json.dumps(dict(filters or {}), default=str)))
    return count


# --- queries ------------------------------------------------------------------------------

Shape = Callable[[Any, Callable[[datetime | None], str | None]], list[Any]]


def _progress(f: dict[str, Any]) -> tuple[Select, Shape]:
    stmt = (select(Graduate.name, Graduate.phone, Institution.name, Cohort.name,
                   CheckInRound.scheduled_for, ProgressReport.responded_at,
                   ProgressReport.employment_status, ProgressReport.employer,
                   ProgressReport.uses_training_skill, ProgressReport.skill_rating,
                   ProgressReport.needs_help, ProgressReport.status, ProgressReport.raw_answers,
                   ProgressReport.wants_job_alerts, ProgressReport.completed_at)
            .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
            .join(Cohort, CheckInRound.cohort_id == Cohort.id)
            .join(Institution, Cohort.institution_id == Institution.id)
            .join(Graduate, ProgressReport.graduate_id == Graduate.id)
            .order_by(CheckInRound.scheduled_for, Institution.name, Cohort.name, Graduate.name,
                      ProgressReport.id))
    stmt = _filter(stmt, f, CheckInRound.scheduled_for)

    def shape(r, t):
        return [r[0], r[1], r[2], r[3], t(r[4]), t(r[5]), r[6] or None, r[7] or None,
                _bool(r[8]), r[9], r[10] or None, r[11], _json(r[12]), _bool(r[13]), t(r[14])]

    return stmt, shape


def _messages(f: dict[str, Any]) -> tuple[Select, Shape]:
    stmt = (select(Message.twilio_sid, Message.direction, Message.phone, Graduate.name,
                   Cohort.name, Message.kind, Message.body, Message.media_url, Message.status,
                   Message.error_code, Message.created_at, Message.media_type,
                   Message.error_message, Message.sent_at)
            .outerjoin(Graduate, Message.graduate_id == Graduate.id)
            .outerjoin(Cohort, Message.cohort_id == Cohort.id)
            .order_by(Message.id))
    stmt = _filter(stmt, f, Message.created_at)

    def shape(r, t):
        return [r[0], r[1], r[2], r[3], r[4], r[5], r[6] or None, r[7], r[8], r[9], t(r[10]),
                r[11], r[12], t(r[13])]

    return stmt, shape


def _interests(f: dict[str, Any]) -> tuple[Select, Shape]:
    stmt = (select(JobOpening.code, JobOpening.title, Graduate.name, Graduate.phone,
                   Cohort.name, Interest.created_at, JobOpening.employer, Institution.name)
            .join(JobOpening, Interest.job_id == JobOpening.id)
            .join(Graduate, Interest.graduate_id == Graduate.id)
            .outerjoin(Cohort, Graduate.cohort_id == Cohort.id)
            .outerjoin(Institution, Cohort.institution_id == Institution.id)
            .order_by(Interest.id))
    stmt = _filter(stmt, f, Interest.created_at)

    def shape(r, t):
        return [r[0], r[1], r[2], r[3], r[4], t(r[5]), r[6], r[7]]

    return stmt, shape


_QUERIES: dict[str, Callable[[dict[str, Any]], tuple[Select, Shape]]] = {
    "progress": _progress, "messages": _messages, "interests": _interests}


def _filter(stmt: Select, f: dict[str, Any], when) -> Select:
    if f.get("institution_id") is not None:
        stmt = stmt.where(Cohort.institution_id == f["institution_id"])
    cohort_id = f.get("cohort_id")
    if cohort_id is not None:
        ids = list(cohort_id) if isinstance(cohort_id, list | tuple | set) else [cohort_id]
        stmt = stmt.where(Cohort.id.in_(ids))
    if f.get("since") is not None:
        stmt = stmt.where(when >= f["since"])
    if f.get("until") is not None:
        stmt = stmt.where(when < f["until"])
    return stmt


# --- values -------------------------------------------------------------------------------

def _zone(session: Session, tz: tzinfo | str | None) -> tzinfo:
    if isinstance(tz, str):
        return ZoneInfo(tz)
    if tz is not None:
        return tz
    common = session.scalar(select(Cohort.timezone).group_by(Cohort.timezone)
                            .order_by(func.count().desc(), Cohort.timezone).limit(1))
    try:
        return ZoneInfo(common) if common else UTC
    except (ValueError, KeyError):
        return UTC


def _time(value: datetime | None, zone: tzinfo) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).isoformat(timespec="seconds")


def _bool(value: bool | None) -> str | None:
    return None if value is None else ("true" if value else "false")


def _json(value: Any) -> str | None:
    if not value:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- writers ------------------------------------------------------------------------------

# Text a spreadsheet would run as a formula; plain numbers and phone numbers are left alone.
_FORMULA = re.compile(r"^(?:[=@\t\r]|[+-](?![\d\s().-]*$))")


def _write_csv(path: Path, what: str, header: list[str], data: Iterator[list[Any]]) -> int:
    count = 0
    # UTF-8 with a BOM, so Excel shows Indonesian names and emoji correctly.
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in data:
            writer.writerow(["" if v is None else
                             ("'" + v if isinstance(v, str) and _FORMULA.match(v) else v)
                             for v in row])
            count += 1
    return count


def _write_xlsx(path: Path, what: str, header: list[str], data: Iterator[list[Any]]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(what)
    sheet.freeze_panes = "A2"
    sheet.append(header)
    count = 0
    for row in data:
        cells: list[Any] = []
        for value in row:
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value) or None
                if value and value.startswith("="):  # text, never a formula
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.data_type = "s"
                    value = cell
            cells.append(value)
        sheet.append(cells)
        count += 1
    workbook.save(path)
    return count
