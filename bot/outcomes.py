"""The outcome export: one row per graduate and check-in round, readable as it stands.

Where ``bot.exports`` writes the machine layout (English headers, status codes, ISO times, the
raw replies as JSON), this writes what an office hands on: headers in the console's language,
statuses in words ("Bekerja", "Usaha sendiri", ...), dates as dd/mm/yyyy in the app timezone,
yes/no as words, and every question's raw replies in a column of its own. CSV cells that a
spreadsheet would run as formulas are neutralised exactly as the other exports do; XLSX dates
are real date cells shown as dd/mm/yyyy.

Filters (``institution_id``, ``cohort_id``, ``since``, ``until`` on the round's time) are those
of ``bot.exports``; the console adds the viewer's scope as ``cohort_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.exports import (
    BATCH,
    FILTER_KEYS,
    FORMATS,
    ExportError,
    _filter,
    _write_csv,
    _zone,
    safe_cell,
)
from bot.models import (
    CheckInRound,
    Cohort,
    Graduate,
    Institution,
    ProgressReport,
    audit,
)

# Output columns, in order; their headers are ``outcomes.col_<key>`` in the console texts.
COLUMNS = ("institution", "cohort", "graduate", "phone", "training_end", "round_date",
           "report_status", "responded_at", "employment_status", "status_read", "employer",
           "job_title", "uses_skill", "rating", "needs_help", "job_alerts", "completed_at")
# The check-in questions (``bot.conversations.checkin``), one raw-reply column each.
QUESTIONS = ("status", "employer", "uses_skill", "business", "job_alerts", "rating", "help")
DATE_FORMAT = "%d/%m/%Y"
DATETIME_FORMAT = "%d/%m/%Y %H:%M"
XLSX_DATE = "DD/MM/YYYY"
XLSX_DATETIME = "DD/MM/YYYY HH:MM"
LANGUAGES = ("id", "en")


def dmy(value: date | datetime | None, zone: tzinfo | None = None) -> str:
    """A date as dd/mm/yyyy (a time in ``zone`` first); '' for None."""
    if value is None:
        return ""
    if isinstance(value, datetime) and zone is not None:
        value = value.astimezone(zone)
    return value.strftime(DATE_FORMAT)


def parse_dmy(text: str) -> date:
    """'31/01/2025' (or '31-01-2025', '31.01.2025', '2025-01-31') as a date; ValueError
    otherwise (``bot.staff.formats.parse_date``, the console's one date reader)."""
    from bot.staff.formats import parse_date

    return parse_date(text)


def texts(language: str) -> dict[str, str]:
    """The console texts of ``language`` (the CLI has no request to pick one from)."""
    from bot.staff.i18n import _texts

    return _texts(language if language in LANGUAGES else "id")


def status_word(code: str | None, language: str) -> str:
    """'self_employed' -> 'Usaha sendiri' (or the English words)."""
    if not code:
        return ""
    return texts(language).get(f"outcomes.status_{code}", code)


def rows(session: Session, filters: Mapping[str, Any] | None = None, *, language: str = "id",
         tz: tzinfo | str | None = None) -> tuple[list[str], Iterator[list[Any]]]:
    """The header and a lazy iterator of rows; dates stay ``date``/``datetime`` (local, naive)
    so that each writer formats them its own way (consume it inside the session)."""
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise ExportError(f"unknown export filter {', '.join(unknown)} "
                          f"(known: {', '.join(FILTER_KEYS)})")
    words = texts(language)
    zone = _zone(session, tz)
    header = [words[f"outcomes.col_{key}"] for key in COLUMNS] + [
        words["outcomes.col_raw"].format(question=words[f"outcomes.question_{q}"])
        for q in QUESTIONS]
    stmt = (select(Institution.name, Cohort.name, Graduate.name, Graduate.phone,
                   Cohort.training_end, CheckInRound.scheduled_for, ProgressReport.status,
                   ProgressReport.responded_at, ProgressReport.employment_status,
                   ProgressReport.employer, ProgressReport.uses_training_skill,
                   ProgressReport.skill_rating, ProgressReport.needs_help,
                   ProgressReport.wants_job_alerts, ProgressReport.completed_at,
                   ProgressReport.raw_answers, ProgressReport.job_title,
                   ProgressReport.readings)
            .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
            .join(Cohort, CheckInRound.cohort_id == Cohort.id)
            .join(Institution, Cohort.institution_id == Institution.id)
            .join(Graduate, ProgressReport.graduate_id == Graduate.id)
            .order_by(CheckInRound.scheduled_for, Institution.name, Cohort.name, Graduate.name,
                      ProgressReport.id))
    stmt = _filter(stmt, filters, CheckInRound.scheduled_for)
    result = session.execute(stmt.execution_options(yield_per=BATCH))

    def local(value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(zone).replace(tzinfo=None)

    def yes_no(value: bool | None) -> str | None:
        return None if value is None else words["outcomes.yes" if value else "outcomes.no"]

    def iterate() -> Iterator[list[Any]]:
        for r in result:
            raw = r[15] if isinstance(r[15], dict) else {}
            scheduled = local(r[5])
            how = (r[17] if isinstance(r[17], dict) else {}).get("employment_status")
            yield [r[0], r[1], r[2], r[3], r[4], scheduled.date() if scheduled else None,
                   words.get(f"outcomes.report_{r[6]}", r[6]), local(r[7]),
                   status_word(r[8], language) or None,
                   words.get(f"graduate.how.{how}") if r[8] and how else None,
                   r[9] or None, r[16] or None, yes_no(r[10]), r[11],
                   (r[12] or "").strip() or None, yes_no(r[13]), local(r[14]),
                   *(_replies(raw.get(q)) for q in QUESTIONS)]

    return header, iterate()


def _replies(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, list):
        return " | ".join(str(v) for v in value if v is not None) or None
    return str(value)


def format_for(output: Path, fmt: str | None) -> str:
    """The format an output file gets: its extension, or ``fmt``; a mismatch is refused."""
    suffix = Path(output).suffix.lower().lstrip(".")
    if fmt is not None and fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise ExportError(f"--format {fmt} does not match the file name {output} "
                              f"(a .{suffix} file); name the file .{fmt} or drop --format")
        return suffix
    return fmt or "csv"


def export(session: Session, fmt: str, output: Path, *, actor: str = "cli",
           filters: Mapping[str, Any] | None = None, language: str = "id",
           tz: tzinfo | str | None = None, audit_db=None) -> int:
    """Write the outcome rows to ``output`` as CSV or XLSX; return the number of rows.

    With ``audit_db`` (a ``bot.db.Database``) the audit entry is written after the read in a
    transaction of its own (``bot.auditing.record``), so a read session never writes."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    output = Path(output)
    header, data = rows(session, filters, language=language, tz=tz)
    partial = output.with_name(output.name + ".part")
    try:
        if fmt == "csv":
            count = _write_csv(partial, "outcomes", header, (
                [_as_text(v) for v in row] for row in data))
        else:
            count = _write_xlsx(partial, texts(language)["outcomes.sheet"], header, data)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    detail = {"what": "outcomes", "format": fmt, "file": output.name, "rows": count,
              "language": language,
              "filters": json.loads(json.dumps(dict(filters or {}), default=str))}
    if audit_db is not None:
        from bot.auditing import record

        record(audit_db, actor, "export", **detail)
    else:
        audit(session, actor, "export", **detail)
    return count


def _as_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime(DATETIME_FORMAT)
    if isinstance(value, date):
        return value.strftime(DATE_FORMAT)
    return value


def _write_xlsx(path: Path, title: str, header: list[str], data: Iterator[list[Any]]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31])
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    head = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        head.append(cell)
    sheet.append(head)
    count = 0
    for row in data:
        cells: list[Any] = []
        for value in row:
            if isinstance(value, datetime | date):
                cell = WriteOnlyCell(sheet, value=value)
                cell.number_format = XLSX_DATETIME if isinstance(value, datetime) else XLSX_DATE
                value = cell
            else:
                value = safe_cell(sheet, value)
            cells.append(value)
        sheet.append(cells)
        count += 1
    workbook.save(path)
    return count

