"""Check-in schedules: each visible cohort's schedule in plain words with its next run times;
admin and staff change it with simple fields (monthly on a day, weekly on a weekday, daily, at
a time) or a cron line for experts, or reset it to ``scheduler.default_checkin``.

A schedule is a standard crontab line read the crontab way (``bot.schedules.cron_trigger``),
in the cohort's time zone. Nothing needs a restart: the scheduler re-reads the cohorts table
every ``scheduler.reconcile_every_seconds`` (``scheduler.service.reconcile_jobs``). Every change
is in the audit log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from bot import get_db, get_settings
from bot.checkins import quiet_hours_end
from bot.models import Cohort, audit, utcnow
from bot.schedules import cron_trigger
from bot.staff import bp
from bot.staff.auth import can_write, cohort_or_404, visible_cohorts
from bot.staff.i18n import current_language, t
from bot.staff.jobs import page, session_for_request
from bot.staff.reads import page_session

NEXT_RUNS = 3
MODES = ("monthly", "weekly", "daily", "cron")
CRON_FIELDS = ("minute", "hour", "day", "month", "weekday")
SCHEDULE_LIMIT = 100  # the column's length
LAST_DAY = 28  # every month has it
# Crontab weekday numbers (0 and 7 Sunday) and the names crontab also accepts.
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# The weekday choices of the form, Monday first (crontab numbers).
WEEK = (1, 2, 3, 4, 5, 6, 0)


# --- reading a schedule ---------------------------------------------------------------------

def _weekday_names() -> list[str]:
    """Weekday names in the UI language, by crontab number (0 = Sunday)."""
    return t("schedules.weekdays").split(",")


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return t("schedules.words.list", first=", ".join(items[:-1]), last=items[-1])


def _ordinal(day: int) -> str:
    if current_language() != "en":
        return str(day)
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _weekdays(text: str) -> list[int] | None:
    """Crontab weekday numbers of a field like '1', '1,4', '1-5' or 'mon-fri'; None if other."""
    days: list[int] = []
    for part in text.lower().split(","):
        low, dash, high = part.partition("-")
        try:
            first = int(low) if low.isdigit() else _DAY_NAMES[low]
            last = (int(high) if high.isdigit() else _DAY_NAMES[high]) if dash else first
        except KeyError:
            return None
        if not (0 <= first <= last <= 7):
            return None
        days.extend(d % 7 for d in range(first, last + 1))
    return sorted(set(days), key=lambda d: WEEK.index(d))


def describe(cron: str) -> str:
    """A schedule in plain words in the UI language ('every 1st of the month at 09:00'); the
    cron line itself when it is not a monthly, weekly or daily schedule at one time."""
    fields = cron.split()
    if len(fields) == 5:
        minute, hour, day, month, weekday = fields
        if minute.isdigit() and hour.isdigit() and int(minute) < 60 and int(hour) < 24:
            at = f"{int(hour):02d}:{int(minute):02d}"
            days = _weekdays(weekday) if weekday not in ("*", "?") else None
            if month == "*" and day == "*" and (weekday in ("*", "?") or days == list(WEEK)):
                return t("schedules.words.daily", time=at)
            if month == "*" and day.isdigit() and 1 <= int(day) <= 31 and weekday in ("*", "?"):
                return t("schedules.words.monthly", day=_ordinal(int(day)), time=at)
            if month == "*" and day == "*" and days:
                names = _weekday_names()
                return t("schedules.words.weekly", days=_join([names[d] for d in days]),
                         time=at)
    return t("schedules.words.cron", cron=cron)


def next_runs(cron: str, zone: str, count: int = NEXT_RUNS,
              now: datetime | None = None) -> list[datetime]:
    """The next ``count`` fire times of ``cron`` in ``zone`` (aware, in that zone)."""
    trigger = cron_trigger(cron, zone)
    runs: list[datetime] = []
    moment = now or utcnow()
    previous = None
    while len(runs) < count:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None:
            break
        runs.append(fire)
        previous, moment = fire, fire + timedelta(seconds=1)
    return runs


def when(moment: datetime) -> str:
    """'Sen, 01/12/2026 09:00 WIB' (the weekday in the UI language)."""
    days = t("schedules.weekdays_short").split(",")
    return f"{days[moment.isoweekday() % 7]}, {moment:%d/%m/%Y %H:%M} {moment.tzname()}"


@dataclass
class Row:
    """One cohort's schedule as the page shows it."""

    cohort: Cohort
    cron: str
    is_default: bool
    zone: str
    words: str
    runs: list[str] = field(default_factory=list)
    problem: str | None = None


def _row(cohort: Cohort) -> Row:
    settings = get_settings()
    cron = cohort.checkin_schedule or settings.scheduler.default_checkin
    zone = cohort.timezone or settings.app.timezone
    row = Row(cohort, cron, cohort.checkin_schedule is None, zone, describe(cron))
    try:
        row.runs = [when(r) for r in next_runs(cron, zone)]
    except (ValueError, LookupError) as exc:
        row.problem = str(exc)
    return row


# --- pages ----------------------------------------------------------------------------------

@bp.get("/schedules")
@login_required
def schedules():
    """Every visible cohort's schedule in words, with its next run times."""
    with page_session() as session:
        rows = [_row(c) for c in visible_cohorts(session)]
        return page("staff/schedules.html", rows=rows,
                    default=describe(get_settings().scheduler.default_checkin))


@dataclass
class ScheduleForm:
    """The edit form's fields, and its errors by field."""

    mode: str = "monthly"
    day: str = "1"
    weekday: str = "1"
    time: str = "09:00"
    cron: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_cron(cls, cron: str) -> ScheduleForm:
        """The simple fields for a schedule they can express, else the cron field."""
        form = cls(cron=cron, mode="cron")
        fields = cron.split()
        if len(fields) != 5:
            return form
        minute, hour, day, month, weekday = fields
        if not (minute.isdigit() and hour.isdigit() and int(minute) < 60 and int(hour) < 24
                and month == "*"):
            return form
        form.time = f"{int(hour):02d}:{int(minute):02d}"
        days = _weekdays(weekday) if weekday not in ("*", "?") else None
        if day == "*" and weekday in ("*", "?"):
            form.mode = "daily"
        elif day.isdigit() and 1 <= int(day) <= LAST_DAY and weekday in ("*", "?"):
            form.mode, form.day = "monthly", str(int(day))
        elif day == "*" and days is not None and len(days) == 1:
            form.mode, form.weekday = "weekly", str(days[0])
        return form

    @classmethod
    def from_request(cls) -> ScheduleForm:
        values = {name: (request.form.get(name) or "").strip()
                  for name in ("mode", "day", "weekday", "time", "cron")}
        return cls(**values)

    def to_cron(self, zone: str) -> str | None:
        """The crontab line for the fields, or None with ``errors`` filled in."""
        self.errors = {}
        if self.mode not in MODES:
            self.errors["mode"] = t("schedules.error.mode")
            return None
        if self.mode == "cron":
            cron = " ".join(self.cron.split())
            problem = check_cron(cron, zone)
            if problem:
                self.errors["cron"] = problem
                return None
            return cron
        match = re.fullmatch(r"(\d{1,2})[:.](\d{2})", self.time)
        if not match or int(match[1]) > 23 or int(match[2]) > 59:
            self.errors["time"] = t("schedules.error.time")
            return None
        hour, minute = int(match[1]), int(match[2])
        if self.mode == "monthly":
            if not (self.day.isdigit() and 1 <= int(self.day) <= LAST_DAY):
                self.errors["day"] = t("schedules.error.day", last=LAST_DAY)
                return None
            return f"{minute} {hour} {int(self.day)} * *"
        if self.mode == "weekly":
            if not (self.weekday.isdigit() and int(self.weekday) in WEEK):
                self.errors["weekday"] = t("schedules.error.weekday")
                return None
            return f"{minute} {hour} * * {int(self.weekday)}"
        return f"{minute} {hour} * * *"


def check_cron(cron: str, zone: str) -> str | None:
    """What is wrong with a crontab line, naming the field, or None when it is usable."""
    fields = cron.split()
    if len(fields) != 5:
        return t("schedules.error.cron_count", count=len(fields))
    if len(cron) > SCHEDULE_LIMIT:
        return t("schedules.error.cron_long", limit=SCHEDULE_LIMIT)
    for index, name in enumerate(CRON_FIELDS):
        probe = ["*"] * 5
        probe[index] = fields[index]
        try:
            cron_trigger(" ".join(probe), zone)
        except ValueError:
            return t("schedules.error.cron_field", field=t(f"schedules.cron_field.{name}"),
                     value=fields[index], allowed=t(f"schedules.cron_allowed.{name}"))
    try:
        trigger = cron_trigger(cron, zone)
    except ValueError as exc:
        return t("schedules.error.cron", detail=str(exc))
    if trigger.get_next_fire_time(None, utcnow()) is None:
        return t("schedules.error.never")
    return None


@bp.route("/schedules/<int:cohort_id>", methods=["GET", "POST"])
@login_required
def schedule_edit(cohort_id: int):
    """One cohort's schedule: the form (admin, staff) and its next run times."""
    if request.method == "POST" and not current_user.can_write:
        abort(403)
    settings = get_settings()
    with session_for_request() as session:
        cohort = cohort_or_404(session, cohort_id)
        row = _row(cohort)
        form = ScheduleForm.from_cron(row.cron)
        status = 200
        if request.method == "POST":
            form = ScheduleForm.from_request()
            cron = form.to_cron(row.zone)
            if cron is None:
                status = 400
            else:
                new = None if cron == settings.scheduler.default_checkin and row.is_default \
                    else cron
                _save(session, cohort, new, row)
                return redirect(url_for("staff.schedules") + f"#cohort-{cohort.id}")
        return page("staff/schedule_edit.html", row=row, form=form, modes=MODES,
                    week=WEEK, weekday_names=_weekday_names(), last_day=LAST_DAY,
                    default=describe(settings.scheduler.default_checkin)), status


@bp.post("/schedules/<int:cohort_id>/reset")
@can_write
def schedule_reset(cohort_id: int):
    """Back to the default schedule (``scheduler.default_checkin``)."""
    with get_db().session() as session:
        cohort = cohort_or_404(session, cohort_id)
        _save(session, cohort, None, _row(cohort))
    return redirect(url_for("staff.schedules") + f"#cohort-{cohort_id}")


def _save(session, cohort: Cohort, new: str | None, before: Row) -> None:
    """Store the schedule (None: the default), audit it, and tell staff what it now means."""
    settings = get_settings()
    old = cohort.checkin_schedule
    if old != new:
        cohort.checkin_schedule = new
        audit(session, current_user.name, "schedule.change", cohort_id=cohort.id,
              cohort=cohort.name, old=old, new=new, default=settings.scheduler.default_checkin)
    after = _row(cohort)
    flash(t("schedules.flash.saved", cohort=cohort.name, words=after.words,
            next=after.runs[0] if after.runs else "—"))
    runs = next_runs(after.cron, after.zone, count=1)
    if runs and quiet_hours_end(runs[0], settings.quiet_window, after.zone) is not None:
        flash(t("schedules.flash.quiet", hours=settings.scheduler.quiet_hours))
