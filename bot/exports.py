"""Exports for staff reports: progress reports, messages and job interests as CSV or XLSX.

``rows`` builds the header and a streamed iterator of display values (text, numbers, empty
cells as None) that the CSV and XLSX writers share, and that the console can reuse. Rows come
from the database in batches (``yield_per``), so a 200k-message export never sits in memory.

Values: times are ISO 8601 with their UTC offset, in the app timezone (given as ``tz``, else the
timezone most cohorts use, else UTC); yes/no answers are ``true``/``false``/empty; employment
status is one of ``employed``, ``self_employed``, ``seeking``, ``studying`` or empty;
``raw_answers`` is compact JSON.

Messages can also be filtered as the console's reply log filters them (``filter_messages``):
direction, status, text in the body (case-insensitive) and graduates needing help.
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

from sqlalchemy import Boolean, Select, func, select, text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from bot.db import Database
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
# Messages only (the console's reply log): direction, status, text contained in the body
# (case-insensitive), needs_help (true: graduates whose latest report asks for help).
MESSAGE_FILTER_KEYS = ("direction", "status", "text", "needs_help")
BATCH = 1000
MAX_LISTED_GRADUATES = 10_000  # more graduates needing help than this: a subquery instead

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
    known = FILTER_KEYS + (MESSAGE_FILTER_KEYS if what == "messages" else ())
    unknown = sorted(set(filters) - set(known))
    if unknown:
        raise ExportError(f"unknown export filter {', '.join(unknown)} "
                          f"(known: {', '.join(known)})")
    zone = _zone(session, tz)
    if what == "messages" and filters.get("needs_help") is True:
        filters["needs_help"] = needs_help_ids(session)
    stmt, shape = _QUERIES[what](filters)
    result = session.execute(stmt.execution_options(yield_per=BATCH))

    def iterate() -> Iterator[list[Any]]:
        for record in result:
            yield shape(record, lambda value: _time(value, zone))

    return list(HEADERS[what]), iterate()


def export(session: Session, what: str, fmt: str, output: Path, *, actor: str = "cli",
           filters: Mapping[str, Any] | None = None, tz: tzinfo | str | None = None,
           audit_db: Database | None = None, header: list[str] | None = None,
           present: Callable[[list[Any]], list[Any]] | None = None) -> int:
    """Write ``what`` to ``output`` as CSV or XLSX; return the number of data rows written.

    The export is audited in ``session``, or, with ``audit_db``, in a short write transaction
    of its own (``bot.auditing.record``): a read session must never upgrade to a write.

    The console passes its own ``header`` (column names in the reader's language) and
    ``present`` (each row as people read it); the CLI writes the stable codes of ``HEADERS``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    output = Path(output)
    codes, data = rows(session, what, filters, tz=tz)
    if header is not None and len(header) != len(codes):
        raise ExportError(f"{what}: {len(header)} column names for {len(codes)} columns")
    header = header or codes
    if present is not None:
        data = (present(row) for row in data)
    partial = output.with_name(output.name + ".part")
    try:
        count = (_write_csv if fmt == "csv" else _write_xlsx)(partial, what, header, data)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    detail = {"what": what, "format": fmt, "file": output.name, "rows": count,
              "filters": json.loads(json.dumps(dict(filters or {}), default=str))}
    if audit_db is not None:
        from bot.auditing import record

        record(audit_db, actor, "export", **detail)
    else:
        audit(session, actor, "export", **detail)
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
    stmt = filter_messages(stmt, f)

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


# The text search looks in every message but the check-in questions and reminders: those are
# the catalog's texts, the same for everyone, and leaving them out of the trigram index on
# PostgreSQL (migration 0022, whose predicate this must match word for word, literals and
# all, so the planner can use it) halves the time of queuing a round.
SEARCHED = text("messages.kind NOT IN ('checkin', 'reminder')")


def filter_messages(stmt: Select, f: Mapping[str, Any]) -> Select:
    """Apply the message filters on ``Message`` columns alone (no join needed).

    The console's reply log pages with this too, so the page and its export show the same rows.
    ``needs_help`` is True, or the graduate ids ``needs_help_ids`` looked up beforehand.
    """
    if f.get("institution_id") is not None:
        stmt = stmt.where(Message.cohort_id.in_(
            select(Cohort.id).where(Cohort.institution_id == f["institution_id"])))
    cohort_id = f.get("cohort_id")
    if cohort_id is not None:
        ids = list(cohort_id) if isinstance(cohort_id, list | tuple | set) else [cohort_id]
        stmt = stmt.where(Message.cohort_id.in_(ids))
    if f.get("since") is not None:
        stmt = stmt.where(Message.created_at >= f["since"])
    if f.get("until") is not None:
        stmt = stmt.where(Message.created_at < f["until"])
    if f.get("direction"):
        stmt = stmt.where(Message.direction == f["direction"])
    if f.get("status"):
        stmt = stmt.where(Message.status == f["status"])
    if f.get("text"):
        stmt = stmt.where(SEARCHED, contains_folded(Message.body, f["text"]))
    needy = f.get("needs_help")
    if needy is True:
        needy = needs_help_graduates()
    if needy is not None and needy is not False:
        # "+ 0": walk the messages newest first testing each against the graduates, instead
        # of fetching every message of every such graduate through the index and sorting them.
        stmt = stmt.where((Message.graduate_id + 0).in_(needy))
    return stmt


class _ContainsFolded(FunctionElement):
    """``column`` contains a text, ignoring case (built by ``contains_folded``).

    Its arguments: the column, the text as a LIKE pattern and as a regular expression; each
    database gets the form it matches fastest when it has to read every row (a search for a
    word no message has): about twice as fast as ``lower(body) LIKE`` or ``ILIKE``.
    """

    type = Boolean()
    inherit_cache = True
    name = "contains_folded"


@compiles(_ContainsFolded)
def _contains_folded(element, compiler, **kw) -> str:
    column, _like, regex = element.clauses
    return f"{compiler.process(column, **kw)} ~* {compiler.process(regex, **kw)}"


@compiles(_ContainsFolded, "sqlite")
def _contains_folded_sqlite(element, compiler, **kw) -> str:
    # SQLite's LIKE already ignores ASCII case, exactly as its lower() does.
    column, like, _regex = element.clauses
    return f"{compiler.process(column, **kw)} LIKE {compiler.process(like, **kw)} ESCAPE '/'"


def contains_folded(column, text: str) -> _ContainsFolded:
    """``column`` contains ``text``, ignoring case; no character of ``text`` is special."""
    like = "%" + text.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
    # In a PostgreSQL regular expression a backslash makes any ASCII punctuation literal.
    regex = re.sub(r"([\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f])", r"\\\1", text)
    return _ContainsFolded(column, like, regex)


def needs_help_ids(session: Session) -> list[int] | Select:
    """The graduates who need help as a list of ids (a list the databases hash), or the query
    itself when there are very many."""
    found = list(session.scalars(needs_help_graduates().limit(MAX_LISTED_GRADUATES + 1)))
    return found if len(found) <= MAX_LISTED_GRADUATES else needs_help_graduates()


def needs_help_graduates() -> Select:
    """Ids of graduates whose latest word on help asks for help (``bot.summaries``)."""
    return select(Graduate.id).where(Graduate.help_report_id.is_not(None))


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

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(what)
    sheet.freeze_panes = "A2"
    sheet.append(header)
    count = 0
    for row in data:
        sheet.append([safe_cell(sheet, value) for value in row])
        count += 1
    workbook.save(path)
    return count


def safe_cell(sheet: Any, value: Any) -> Any:
    """A value for a write-only XLSX sheet: characters XML cannot hold removed, and text that
    starts with "=" stored as text, never as a formula."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if not isinstance(value, str):
        return value
    value = ILLEGAL_CHARACTERS_RE.sub("", value) or None
    if value and value.startswith("="):
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        return cell
    return value
