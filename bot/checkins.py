"""Check-in rounds: start one per cohort, hold prompts through quiet hours, remind, expire.

A round is unique per cohort and ``scheduled_for`` (a database constraint), so whoever starts a
round for a fire time that already has one (a second scheduler, a late restart, a double click)
sends nothing. The conversation itself (prompt, answers) lives in ``bot.conversations.checkin``;
this module decides who is asked and when the prompts may go out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.fanout import fan_out_reminders, fan_out_rounds
from bot.models import (
    REPORT_OPEN,
    REPORT_UNANSWERED,
    CheckInRound,
    Cohort,
    Conversation,
    Graduate,
    Institution,
    ProgressReport,
    utcnow,
)
from bot.schedules import cron_trigger

ROUND_TRIGGERS = ("schedule", "manual", "self")


class CheckinError(Exception):
    """A check-in request that cannot be carried out (unknown cohort, ambiguous name ...)."""


# --- time -----------------------------------------------------------------------------------

def quiet_hours_end(now: datetime, window: tuple[int, int] | None,
                    tz: tzinfo | str) -> datetime | None:
    """When the quiet hours around ``now`` end (aware, in ``tz``), or None outside them.

    ``window`` is (start, end) in minutes after local midnight and may wrap midnight
    ((1260, 420) is 21:00-07:00). The start is inside, the end is not; an empty window
    (start == end) or None means no quiet hours.
    """
    if now.tzinfo is None:
        raise ValueError("quiet_hours_end needs an aware datetime")
    if not window or window[0] == window[1]:
        return None
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local = now.astimezone(zone)
    start, end = window
    minute = local.hour * 60 + local.minute
    if start < end:
        inside, end_day = start <= minute < end, local.date()
    elif minute >= start:  # wraps midnight, evening part: ends tomorrow morning
        inside, end_day = True, local.date() + timedelta(days=1)
    else:
        inside, end_day = minute < end, local.date()
    if not inside:
        return None
    return datetime.combine(end_day, time(end // 60, end % 60), tzinfo=zone)


# Crontab weekday numbers: 0 and 7 are Sunday. APScheduler 3 counts 0 as Monday, so numbers
# are turned into names, which both read the same way.
def latest_fire_time(cron: str, tz: tzinfo | str, now: datetime) -> datetime:
    """The most recent fire time of ``cron`` (minute hour day month weekday) at or before now."""
    trigger = cron_trigger(cron, tz)
    for lookback in (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1),
                     timedelta(days=32), timedelta(days=367), timedelta(days=366 * 9)):
        fire = trigger.get_next_fire_time(None, now - lookback)
        if fire is None or fire > now:
            continue
        # Walk forward to the last fire time that is still not after now.
        while True:
            following = trigger.get_next_fire_time(None, fire + timedelta(seconds=1))
            if following is None or following > now:
                return fire
            fire = following
    raise CheckinError(f"the schedule {cron!r} never fired before {now:%Y-%m-%d %H:%M}")


def _zone(cohort: Cohort) -> ZoneInfo:
    return ZoneInfo(cohort.timezone or "Asia/Jakarta")


def _local_label(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


# --- rounds ---------------------------------------------------------------------------------

@dataclass
class RoundStarted:
    """What starting a round did: the round, how many prompts, and when they may go out."""

    cohort: Cohort
    round: CheckInRound
    prompts: int
    waiting_until: datetime | None  # end of quiet hours, or None when sent at once

    def describe(self, label: str | None = None) -> str:
        """'Menjahit 1: 20 prompts queued' or '… waiting for 07:00 (quiet hours)'."""
        name = label or self.cohort.name
        noun = "prompt" if self.prompts == 1 else "prompts"
        if self.waiting_until is not None and self.prompts:
            return (f"{name}: {self.prompts} {noun} waiting for "
                    f"{self.waiting_until:%H:%M} (quiet hours)")
        return f"{name}: {self.prompts} {noun} queued"


def open_round(session: Session, settings: Settings, cohort: Cohort, scheduled_for: datetime,
               trigger: str = "schedule", ignore_quiet_hours: bool = False,
               now: datetime | None = None) -> RoundStarted | None:
    """Create the round and prompt the cohort; None (nothing sent) if the round exists already."""
    if scheduled_for.tzinfo is None:
        raise ValueError("scheduled_for must be timezone-aware")
    if trigger not in ROUND_TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(ROUND_TRIGGERS)}, not {trigger!r}")
    now = now or utcnow()
    if _round_exists(session, cohort.id, scheduled_for):
        return None
    round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=scheduled_for, trigger=trigger)
    try:
        # Two schedulers racing for the same fire time: the unique constraint picks one.
        with session.begin_nested():
            session.add(round_)
    except IntegrityError:
        return None
    waiting_until = None if ignore_quiet_hours else quiet_hours_end(
        now, settings.quiet_window, _zone(cohort))
    session.flush()  # the reports and prompts below go in as sets, without the ORM
    prompts = fan_out_rounds(session, settings.app.language, [round_], waiting_until)[round_.id]
    return RoundStarted(cohort=cohort, round=round_, prompts=prompts, waiting_until=waiting_until)


def open_rounds_at(session: Session, settings: Settings, cohorts: Sequence[Cohort],
                   scheduled_for: datetime, trigger: str = "schedule",
                   ignore_quiet_hours: bool = False,
                   now: datetime | None = None) -> list[RoundStarted | None]:
    """``open_round`` for many cohorts at one fire time, as a few statements for all of them.

    The rounds are inserted together (``ON CONFLICT DO NOTHING``: a cohort whose round for
    ``scheduled_for`` exists, or that another process inserts at the same moment, gets None and
    nothing is sent to it); their prompts are written by one fan-out per quiet-hours end, in
    chunks of graduates across the cohorts (``bot.fanout``). One entry per cohort, in order."""
    if scheduled_for.tzinfo is None:
        raise ValueError("scheduled_for must be timezone-aware")
    if trigger not in ROUND_TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(ROUND_TRIGGERS)}, not {trigger!r}")
    if not cohorts:
        return []
    now = now or utcnow()
    session.flush()
    table = CheckInRound.__table__
    insert_ = (postgresql.insert(table) if session.get_bind().dialect.name == "postgresql"
               else sqlite.insert(table))
    created_at = utcnow()
    inserted = []
    for start in range(0, len(cohorts), 1000):  # 8 parameters a row: below SQLite's limit
        inserted += session.execute(
            insert_.values([{"cohort_id": c.id, "scheduled_for": scheduled_for,
                             "trigger": trigger, "created_at": created_at, "prompted": 0,
                             "responded": 0, "rating_sum": 0, "ratings": 0}
                            for c in cohorts[start:start + 1000]])
            .on_conflict_do_nothing(index_elements=["cohort_id", "scheduled_for"])
            .returning(table.c.id, table.c.cohort_id)).all()
    round_ids = {cohort_id: round_id for round_id, cohort_id in inserted}
    rounds = {r.cohort_id: r for r in session.scalars(
        select(CheckInRound).where(CheckInRound.id.in_(list(round_ids.values()))))} \
        if round_ids else {}
    waiting: dict[int, datetime | None] = {}
    zones: dict[str, datetime | None] = {}
    for cohort in cohorts:
        if cohort.id in rounds:
            key = cohort.timezone or "Asia/Jakarta"
            if key not in zones:
                zones[key] = None if ignore_quiet_hours else quiet_hours_end(
                    now, settings.quiet_window, _zone(cohort))
            waiting[cohort.id] = zones[key]
    prompts: dict[int, int] = {}
    for until in dict.fromkeys(waiting.values()):
        group = [rounds[cid] for cid, u in waiting.items() if u == until]
        prompts.update(fan_out_rounds(session, settings.app.language, group, until))
    return [RoundStarted(cohort=c, round=rounds[c.id], prompts=prompts[round_ids[c.id]],
                         waiting_until=waiting[c.id]) if c.id in rounds else None
            for c in cohorts]


def start_round(session: Session, settings: Settings, cohort: Cohort, scheduled_for: datetime,
                trigger: str = "schedule", ignore_quiet_hours: bool = False,
                now: datetime | None = None) -> CheckInRound | None:
    """Start the cohort's round for ``scheduled_for``; None if it already exists (nothing sent).

    Every active graduate who has not opted out gets a prompt. Inside quiet hours (in the
    cohort's time zone) the prompts are recorded now and held until the quiet hours end,
    unless ``ignore_quiet_hours``.
    """
    started = open_round(session, settings, cohort, scheduled_for, trigger=trigger,
                         ignore_quiet_hours=ignore_quiet_hours, now=now)
    return started.round if started else None


def _round_exists(session: Session, cohort_id: int, scheduled_for: datetime) -> bool:
    return session.scalar(select(CheckInRound.id).where(
        CheckInRound.cohort_id == cohort_id,
        CheckInRound.scheduled_for == scheduled_for)) is not None


@dataclass(frozen=True)
class OpenRound:
    """A cohort's check-in that is still open: who has not finished it, who is mid-answer."""

    label: str
    since: datetime  # when the oldest still-open round of the cohort started
    zone: ZoneInfo
    unfinished: int  # graduates with an open check-in
    mid_answer: int  # of them, those who already answered something

    def describe(self) -> str:
        """'Menjahit 1: the round of 2026-03-10 10:15 WIB is still open: 20 graduates …'."""
        noun = "graduate has" if self.unfinished == 1 else "graduates have"
        return (f"{self.label}: the round of {_local_label(self.since, self.zone)} is still "
                f"open: {self.unfinished} {noun} not finished it, {self.mid_answer} of them "
                "mid-answer")


class RoundStillOpen(CheckinError):
    """Starting a round where one is open; nothing was sent (``force`` starts it anyway)."""

    def __init__(self, rounds: list[OpenRound]) -> None:
        self.rounds = rounds
        super().__init__("; ".join(r.describe() for r in rounds))

    @property
    def mid_answer(self) -> int:
        return sum(r.mid_answer for r in self.rounds)


def open_rounds(session: Session, cohorts: Sequence[Cohort],
                labels: dict[int, str] | None = None) -> list[OpenRound]:
    """The cohorts among ``cohorts`` whose graduates still have open check-ins, in that order.

    Only graduates who would get the next prompt count (active, not opted out); a new round
    closes their open check-ins as unanswered, answers so far included.
    """
    if not cohorts:
        return []
    labels = labels or cohort_labels(session, cohorts)
    rows = session.execute(
        select(CheckInRound.cohort_id, func.count(), func.count(ProgressReport.responded_at),
               func.min(CheckInRound.scheduled_for))
        .select_from(ProgressReport)
        .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
        .join(Graduate, ProgressReport.graduate_id == Graduate.id)
        .where(ProgressReport.status == REPORT_OPEN,
               CheckInRound.cohort_id.in_([c.id for c in cohorts]),
               Graduate.active.is_(True), Graduate.opted_out.is_(False))
        .group_by(CheckInRound.cohort_id)).all()
    found = {cohort_id: (unfinished, mid, since) for cohort_id, unfinished, mid, since in rows}
    return [OpenRound(label=labels[c.id], since=found[c.id][2], zone=_zone(c),
                      unfinished=found[c.id][0], mid_answer=found[c.id][1])
            for c in cohorts if c.id in found]


def send_rounds_now(session: Session, settings: Settings, cohort_names: list[str] | None,
                    ignore_quiet_hours: bool = False, now: datetime | None = None,
                    force: bool = False) -> list[str]:
    """Start a manual round for the named cohorts (None: every active cohort); one line each.

    The round is stamped with the current minute, so repeating the command within the same
    minute sends nothing twice. Where a cohort's previous round is still open (graduates have
    not finished answering), nothing is sent to any cohort and ``RoundStillOpen`` says who,
    unless ``force``.
    """
    return [line for line, _started in start_rounds_now(
        session, settings, cohort_names, ignore_quiet_hours=ignore_quiet_hours, now=now,
        force=force)]


def start_rounds_now(session: Session, settings: Settings, cohort_names: list[str] | None,
                     ignore_quiet_hours: bool = False, now: datetime | None = None,
                     force: bool = False) -> list[tuple[str, RoundStarted | None]]:
    """``send_rounds_now`` with what each line stands for: the round started, or None when
    one was already started this minute (so a caller can tell whether anything was queued)."""
    now = now or utcnow()
    cohorts = resolve_cohorts(session, cohort_names, CheckinError)
    if not cohorts:
        raise CheckinError("there is no active cohort yet: import a roster first "
                           "(kabar import-roster FILE)")
    labels = cohort_labels(session, cohorts)
    stamp = now.replace(second=0, microsecond=0)
    if not force:
        existing = set(session.scalars(select(CheckInRound.cohort_id).where(
            CheckInRound.scheduled_for == stamp,
            CheckInRound.cohort_id.in_([c.id for c in cohorts]))))
        fresh = [c for c in cohorts if c.id not in existing]
        still_open = open_rounds(session, fresh, labels)
        if still_open:
            raise RoundStillOpen(still_open)
    results: list[tuple[str, RoundStarted | None]] = []
    opened = open_rounds_at(session, settings, cohorts, stamp, trigger="manual",
                            ignore_quiet_hours=ignore_quiet_hours, now=now)
    for cohort, started in zip(cohorts, opened, strict=True):
        if started is None:
            results.append((f"{labels[cohort.id]}: a round was already started this minute, "
                            "nothing sent again", None))
        else:
            results.append((started.describe(labels[cohort.id]), started))
    return results


# --- finding cohorts by name ----------------------------------------------------------------

def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip().casefold()


def resolve_cohorts(session: Session, names: Sequence[str] | None,
                    error: type[Exception] = CheckinError) -> list[Cohort]:
    """Cohorts by name, case-insensitively ("Menjahit 1" or "LPKS A'nur/Menjahit 1"), by join
    code ("MENJAHIT1") or SEMUA, read as staff name them on WhatsApp (bot.conversations.staff).

    None means every active cohort. An unknown name raises ``error`` listing the known
    cohorts; a name used by two institutions asks for "Institution/Cohort".
    """
    if names is None:
        return list(session.scalars(
            select(Cohort).join(Institution).where(Cohort.active.is_(True))
            .order_by(Institution.name, Cohort.name)))
    # The same reading of a name as SIARAN/REKAP from a staff phone.
    from bot.conversations.staff import _Ambiguous, _match_in

    everything = list(session.scalars(
        select(Cohort).join(Institution).order_by(Institution.name, Cohort.name)))
    chosen: list[Cohort] = []
    for raw in names:
        if not _norm(raw):
            raise error("cohort: an empty name was given")
        matches = _match_in(everything, raw, active_only=False)
        if isinstance(matches, _Ambiguous):
            raise error(f"cohort {raw!r} exists in several institutions: "
                        f"write it as Institution/Cohort ({', '.join(matches.options)})")
        if not matches:
            known = ", ".join(sorted({c.name for c in everything if c.active})) or "none yet"
            raise error(f"cohort {raw!r} not found (known cohorts: {known})")
        for cohort in matches:
            if not cohort.active:
                raise error(f"cohort {cohort.name!r} is not active")
            if cohort not in chosen:
                chosen.append(cohort)
    return chosen


def cohort_labels(session: Session, cohorts: Sequence[Cohort]) -> dict[int, str]:
    """Cohort id -> its name, or "Institution/Name" where the name alone is ambiguous."""
    shared = set(session.scalars(
        select(func.lower(Cohort.name)).group_by(func.lower(Cohort.name))
        .having(func.count() > 1)))
    return {c.id: f"{c.institution.name}/{c.name}" if c.name.lower() in shared else c.name
            for c in cohorts}


# --- reminders and expiry -------------------------------------------------------------------

def send_reminders(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """One reminder to each open, unanswered report older than the reminder delay; the count.

    Graduates who opted out are skipped; inside quiet hours the reminder waits for morning.
    """
    now = now or utcnow()
    cutoff = now - timedelta(hours=settings.scheduler.reminder_after_hours)
    rows = session.execute(
        select(ProgressReport.id, Cohort.timezone)
        .join(Graduate, ProgressReport.graduate_id == Graduate.id)
        .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
        .join(Cohort, CheckInRound.cohort_id == Cohort.id)
        .where(ProgressReport.status == REPORT_OPEN,
               ProgressReport.responded_at.is_(None),
               ProgressReport.reminded_at.is_(None),
               ProgressReport.created_at <= cutoff,
               Graduate.active.is_(True), Graduate.opted_out.is_(False))
        .order_by(ProgressReport.id)).all()
    # Inside quiet hours (in each round's cohort's time zone) the reminder waits for morning.
    by_end: dict[datetime | None, list[int]] = {}
    ends: dict[str, datetime | None] = {}
    for report_id, zone in rows:
        zone = zone or "Asia/Jakarta"
        if zone not in ends:
            ends[zone] = quiet_hours_end(now, settings.quiet_window, ZoneInfo(zone))
        by_end.setdefault(ends[zone], []).append(report_id)
    session.flush()
    return sum(fan_out_reminders(session, settings.app.language, ids, until, reminded_at=now)
               for until, ids in by_end.items())


def expire_checkins(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Close open reports older than the expiry as unanswered and end their conversations."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.scheduler.checkin_expires_after_days)
    ids = list(session.scalars(select(ProgressReport.id).where(
        ProgressReport.status == REPORT_OPEN, ProgressReport.created_at <= cutoff)))
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        session.execute(delete(Conversation).where(Conversation.report_id.in_(chunk)))
        session.execute(update(ProgressReport).where(ProgressReport.id.in_(chunk))
                        .values(status=REPORT_UNANSWERED, closed_at=now))
    return len(ids)


def round_label(started: RoundStarted) -> str:
    """'Menjahit 1: round for 2026-12-01 09:00 WIB, 20 prompts' (for the scheduler's log)."""
    zone = _zone(started.cohort)
    text = (f"{started.cohort.name}: round for "
            f"{_local_label(started.round.scheduled_for, zone)}, {started.prompts} prompts")
    if started.waiting_until is not None:
        text += f" (held until {_local_label(started.waiting_until, zone)}, quiet hours)"
    return text

