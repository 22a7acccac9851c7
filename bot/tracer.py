"""The tracer report: where each cohort's graduates are 3, 6 and 12 months after training.

Definitions (also printed on the report page and in ``docs/reports.md``):

- **cohorts in the period**: cohorts whose training ended (``Cohort.training_end``) on a day
  from ``date_from`` to ``date_to``, both included; cohorts without an end date are listed
  apart, since no milestone can be placed for them.
- **graduates**: every graduate row of the cohort (active or not, opted out or not): all were
  trained, so all count in the base.
- **milestone N** (N = 3, 6, 12 months): the day N calendar months after the training end (31
  January + 1 month = 28/29 February), and its **window**: from 45 days before to 45 days
  after that day, both included, compared with the round's day in the cohort's timezone.
- **the answer at N**: the graduate's latest answered report (one with an employment status)
  of a round whose day falls in the window; latest by round time, then report id.
- **response rate**: graduates with an answer at N / graduates. The status shares
  (employed, self-employed, seeking work, studying) are of the answers at N.
- **working with the trained skill**: of the answers at N saying employed or self-employed,
  those that also say the work uses the trained skill.
- **rating**: the mean skill rating (1-5) given in the answers at N that have one; the three
  milestones side by side are the trend.
- **help requested**: answers at N with a help request.
- a milestone whose window has not started on ``today`` is **not yet due** (shown as such and
  left out of the LPKS and overall totals); one whose window has started but not ended is
  **in progress** (its figures can still grow).
"""

from __future__ import annotations

from calendar import monthrange
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.models import (
    EMPLOYMENT_STATUSES,
    CheckInRound,
    Cohort,
    Graduate,
    Institution,
    ProgressReport,
)
from bot.summaries import asks_for_help

MILESTONES = (3, 6, 12)
WINDOW_DAYS = 45
WORKING = ("employed", "self_employed")
CHUNK = 500


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months, on the month's last day when it has no such day."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    month += 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def window(training_end: date, months: int) -> tuple[date, date]:
    """The days (first, last, both included) whose rounds count for milestone ``months``."""
    target = add_months(training_end, months)
    return target - timedelta(days=WINDOW_DAYS), target + timedelta(days=WINDOW_DAYS)


@dataclass
class Cell:
    """The figures of one cohort (or a sum of cohorts) at one milestone."""

    graduates: int = 0
    answered: int = 0
    statuses: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EMPLOYMENT_STATUSES, 0))
    skill: int = 0  # working answers that use the trained skill
    rating_sum: int = 0
    ratings: int = 0
    help: int = 0
    due: bool = True  # the window has started
    in_progress: bool = False  # the window has started but not ended

    def add(self, other: Cell) -> None:
        if not other.due:
            return
        self.graduates += other.graduates
        self.answered += other.answered
        for key, value in other.statuses.items():
            self.statuses[key] += value
        self.skill += other.skill
        self.rating_sum += other.rating_sum
        self.ratings += other.ratings
        self.help += other.help
        self.due = True
        self.in_progress = self.in_progress or other.in_progress

    @property
    def working(self) -> int:
        return sum(self.statuses[s] for s in WORKING)

    @property
    def response_rate(self) -> float | None:
        return self.answered / self.graduates if self.graduates else None

    def share(self, status: str) -> float | None:
        return self.statuses[status] / self.answered if self.answered else None

    @property
    def working_share(self) -> float | None:
        return self.working / self.answered if self.answered else None

    @property
    def skill_share(self) -> float | None:
        return self.skill / self.working if self.working else None

    @property
    def rating(self) -> float | None:
        return self.rating_sum / self.ratings if self.ratings else None


@dataclass
class Row:
    """A cohort, an institution's total or the overall total."""

    kind: str  # cohort | institution | total
    institution: str
    cohort: str = ""
    cohort_id: int | None = None
    training_start: date | None = None
    training_end: date | None = None
    graduates: int = 0
    cells: dict[int, Cell] = field(default_factory=dict)


@dataclass
class Report:
    date_from: date | None
    date_to: date | None
    today: date
    rows: list[Row]
    undated: list[Row]  # cohorts in scope without a training end date


def build(session: Session, *, date_from: date | None = None, date_to: date | None = None,
          institution_id: int | None = None, cohort_ids: list[int] | None = None,
          today: date | None = None) -> Report:
    """The tracer report for cohorts that ended training in the period (within the scope)."""
    today = today or datetime.now(UTC).date()
    stmt = (select(Cohort, Institution.name)
            .join(Institution, Cohort.institution_id == Institution.id)
            .order_by(Institution.name, Cohort.training_end, Cohort.name, Cohort.id))
    if institution_id is not None:
        stmt = stmt.where(Cohort.institution_id == institution_id)
    if cohort_ids is not None:
        stmt = stmt.where(Cohort.id.in_(cohort_ids))
    found = list(session.execute(stmt))
    dated = [(c, inst) for c, inst in found if c.training_end is not None
             and (date_from is None or c.training_end >= date_from)
             and (date_to is None or c.training_end <= date_to)]
    undated = [Row("cohort", inst, c.name, c.id, c.training_start, None) for c, inst in found
               if c.training_end is None]
    counts = _graduate_counts(session, [c.id for c, _ in dated])
    picked = _answers(session, [c for c, _ in dated])

    rows: list[Row] = []
    total = Row("total", "", cells={n: Cell(due=False) for n in MILESTONES})
    by_institution: dict[str, Row] = {}
    for cohort, inst in dated:
        row = Row("cohort", inst, cohort.name, cohort.id, cohort.training_start,
                  cohort.training_end, counts.get(cohort.id, 0))
        for n in MILESTONES:
            first, last = window(cohort.training_end, n)
            cell = Cell(graduates=row.graduates, due=today >= first,
                        in_progress=first <= today <= last)
            for status, uses_skill, rating, helped in picked[cohort.id][n].values():
                cell.answered += 1
                cell.statuses[status] += 1
                cell.skill += bool(uses_skill) and status in WORKING
                if rating is not None:
                    cell.rating_sum += rating
                    cell.ratings += 1
                cell.help += bool(helped)
            row.cells[n] = cell
        if inst not in by_institution:
            by_institution[inst] = Row("institution", inst,
                                       cells={n: Cell(due=False) for n in MILESTONES})
        for target in (by_institution[inst], total):
            target.graduates += row.graduates
            for n in MILESTONES:
                target.cells[n].add(row.cells[n])
        rows.append(row)
    ordered: list[Row] = []
    for inst, summary in by_institution.items():
        ordered.extend(r for r in rows if r.institution == inst)
        ordered.append(summary)
    if len(by_institution) > 1:
        ordered.append(total)
    return Report(date_from, date_to, today, ordered, undated)


def _graduate_counts(session: Session, cohort_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for start in range(0, len(cohort_ids), CHUNK):
        chunk = cohort_ids[start:start + CHUNK]
        for cohort_id, number in session.execute(
                select(Graduate.cohort_id, func.count()).where(Graduate.cohort_id.in_(chunk))
                .group_by(Graduate.cohort_id)):
            counts[cohort_id] = number
    return counts


def _answers(session: Session, cohorts: list[Cohort]) -> dict[int, dict[int, dict[int, tuple]]]:
    """cohort id -> milestone -> graduate id -> (status, uses skill, rating, asks for help) of
    the graduate's answer at that milestone."""
    picked: dict[int, dict[int, dict[int, tuple]]] = defaultdict(
        lambda: {n: {} for n in MILESTONES})
    best: dict[tuple[int, int], tuple] = {}  # (graduate, milestone) -> (time, id)
    for start in range(0, len(cohorts), CHUNK):
        chunk = cohorts[start:start + CHUNK]
        # Per cohort: its timezone and the three windows, worked out once.
        info = {c.id: (_zone(c.timezone), [(n, *window(c.training_end, n)) for n in MILESTONES])
                for c in chunk}
        earliest = min(windows[0][1] for _zone_, windows in info.values())
        latest = max(windows[-1][2] for _zone_, windows in info.values())
        stmt = (select(Graduate.cohort_id, ProgressReport.graduate_id, CheckInRound.scheduled_for,
                       ProgressReport.id, ProgressReport.employment_status,
                       ProgressReport.uses_training_skill, ProgressReport.skill_rating,
                       asks_for_help(ProgressReport.needs_help))
                .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
                .join(Graduate, ProgressReport.graduate_id == Graduate.id)
                .where(Graduate.cohort_id.in_(list(info)),
                       ProgressReport.employment_status.is_not(None),
                       CheckInRound.scheduled_for >= datetime.combine(
                           earliest - timedelta(days=1), time(), tzinfo=UTC),
                       CheckInRound.scheduled_for < datetime.combine(
                           latest + timedelta(days=2), time(), tzinfo=UTC)))
        for cohort_id, graduate_id, when, report_id, status, uses, rating, helped \
                in session.execute(stmt):
            if status not in EMPLOYMENT_STATUSES:
                continue
            zone, windows = info[cohort_id]
            day = when.astimezone(zone).date()
            for n, first, last in windows:
                if first <= day <= last:
                    key = (graduate_id, n)
                    if key not in best or (when, report_id) > best[key]:
                        best[key] = (when, report_id)
                        picked[cohort_id][n][graduate_id] = (status, uses, rating, helped)
    return picked


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Jakarta")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


# --- XLSX ------------------------------------------------------------------------------------

def percent(value: float | None) -> str:
    """0.667 -> '67%'; '–' when there is nothing to divide by."""
    return "–" if value is None else f"{round(value * 100)}%"


def write_xlsx(report: Report, path: Path, words: dict[str, str], office: str) -> None:
    """The report as one sheet: title lines, then one row per cohort and total; percentages
    are numbers formatted as percent."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from bot.outcomes import dmy

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = words["tracer.sheet"]
    bold = Font(bold=True)
    title = words["tracer.title"] + (f" · {office}" if office else "")
    sheet.append([title])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([words["tracer.period_line"].format(
        start=dmy(report.date_from) or "…", end=dmy(report.date_to) or "…",
        today=dmy(report.today))])
    sheet.append([words["tracer.definition_short"]])
    sheet.append([])
    header: list[Any] = [words["tracer.col_institution"], words["tracer.col_cohort"],
                         words["tracer.col_start"], words["tracer.col_end"],
                         words["tracer.col_graduates"]]
    metrics = ("answered", "response_rate", "employed", "self_employed", "seeking", "studying",
               "working_share", "skill_share", "rating", "help")
    for n in MILESTONES:
        header += [words["tracer.xlsx_metric"].format(
            months=n, metric=words[f"tracer.col_{m}"]) for m in metrics]
    sheet.append(header)
    for column in range(1, len(header) + 1):
        sheet.cell(row=sheet._current_row, column=column).font = bold
    sheet.freeze_panes = sheet.cell(row=sheet._current_row + 1, column=3)
    percent_columns = [6 + i for i, metric in enumerate(metrics * len(MILESTONES))
                       if metric.endswith(("rate", "share"))]
    for row in report.rows:
        values: list[Any] = [
            row.institution if row.kind != "total" else words["tracer.total"],
            row.cohort if row.kind == "cohort" else words["tracer.subtotal"]
            if row.kind == "institution" else "",
            row.training_start, row.training_end, row.graduates]
        for n in MILESTONES:
            cell = row.cells[n]
            if not cell.due:
                values += [words["tracer.not_due"]] + [None] * (len(metrics) - 1)
                continue
            values += [cell.answered, cell.response_rate, cell.statuses["employed"],
                       cell.statuses["self_employed"], cell.statuses["seeking"],
                       cell.statuses["studying"], cell.working_share, cell.skill_share,
                       round(cell.rating, 2) if cell.rating is not None else None, cell.help]
        sheet.append(values)
        # The row just written, cell by cell: ``max_row`` and ``ws[row]`` scan every cell of
        # the sheet, which makes a sheet of a thousand cohorts take minutes.
        at = sheet._current_row
        for column in (3, 4):
            sheet.cell(row=at, column=column).number_format = "DD/MM/YYYY"
        for column in percent_columns:
            sheet.cell(row=at, column=column).number_format = "0%"
        if row.kind != "cohort":
            for column in range(1, len(values) + 1):
                sheet.cell(row=at, column=column).font = bold
    for row in report.undated:
        sheet.append([row.institution, row.cohort, row.training_start, None, None,
                      words["tracer.no_dates"]])
    workbook.save(path)
