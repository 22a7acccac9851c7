"""Broadcasts: a job opening or an announcement fanned out to the chosen cohorts.

A cohort is the "WhatsApp group": a post to it becomes one outbox row per active member who has
not opted out, each in the graduate's language and with its own dedupe key, so a broadcast
recorded once is never sent twice. Job openings carry a short code graduates answer with
``MINAT <code>``. Everything here only writes rows; the dispatcher sends them.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import catalog
from bot.checkins import resolve_cohorts
from bot.config import Settings
from bot.models import (
    EMPLOYMENT_STATUSES,
    Broadcast,
    CheckInRound,
    Cohort,
    Graduate,
    JobOpening,
    ProgressReport,
    audit,
    utcnow,
)
from bot.outbox import enqueue

# Job codes: easy to read aloud and type on a phone; no 0/O or 1/I to confuse.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 5
TEXT_LIMIT = 200  # the length of the job opening's columns
ANNOUNCEMENT_LIMIT = 1000  # WhatsApp template variables allow about 1,024 characters


class BroadcastError(Exception):
    """A broadcast that cannot be created; the message names the field and how to fix it."""


@dataclass
class JobDraft:
    """A job opening as staff typed it, with who should receive it."""

    title: str
    employer: str
    location: str
    skill: str | None = None
    deadline: date | None = None
    cohort_names: list[str] | None = None  # None: every active cohort
    statuses: list[str] | None = None  # latest employment status; None: any


# --- recipients -----------------------------------------------------------------------------

def preview_recipients(session: Session, draft: JobDraft) -> list[Graduate]:
    """Who would receive ``draft``: active graduates of its cohorts who have not opted out.

    ``skill`` matches part of the graduate's or the cohort's skill, ignoring case. ``statuses``
    matches the employment status of the graduate's latest answered check-in (by round time);
    a graduate who never gave one does not match a status filter.
    """
    _check_statuses(draft.statuses)
    cohorts = resolve_cohorts(session, draft.cohort_names, BroadcastError)
    return _recipients(session, cohorts, skill=draft.skill, statuses=draft.statuses)


def _recipients(session: Session, cohorts: Sequence[Cohort], skill: str | None = None,
                statuses: Sequence[str] | None = None) -> list[Graduate]:
    if not cohorts:
        return []
    stmt = (select(Graduate).join(Cohort, Graduate.cohort_id == Cohort.id)
            .where(Graduate.cohort_id.in_([c.id for c in cohorts]),
                   Graduate.active.is_(True), Graduate.opted_out.is_(False))
            .order_by(Cohort.name, Graduate.name, Graduate.id))
    skill = (skill or "").strip()
    if skill:
        wanted = skill.lower()
        stmt = stmt.where(or_(func.lower(Graduate.skill).contains(wanted, autoescape=True),
                              func.lower(Cohort.skill).contains(wanted, autoescape=True)))
    if statuses:
        latest = _latest_status_subquery()
        stmt = stmt.join(latest, latest.c.graduate_id == Graduate.id).where(
            latest.c.rank == 1, latest.c.employment_status.in_(list(statuses)))
    return list(session.scalars(stmt))


def _latest_status_subquery():
    """Each graduate's answered employment statuses, rank 1 = the latest round."""
    rank = func.row_number().over(
        partition_by=ProgressReport.graduate_id,
        order_by=(CheckInRound.scheduled_for.desc(), ProgressReport.id.desc()))
    return (select(ProgressReport.graduate_id, ProgressReport.employment_status,
                   rank.label("rank"))
            .join(CheckInRound, ProgressReport.round_id == CheckInRound.id)
            .where(ProgressReport.employment_status.is_not(None))
            .subquery("latest_status"))


def _check_statuses(statuses: Sequence[str] | None) -> None:
    for status in statuses or ():
        if status not in EMPLOYMENT_STATUSES:
            raise BroadcastError(f"status: {status!r} is not one of "
                                 f"{', '.join(EMPLOYMENT_STATUSES)}")


# --- job openings ---------------------------------------------------------------------------

def create_job_broadcast(session: Session, settings: Settings, draft: JobDraft,
                         actor: str) -> tuple[JobOpening, Broadcast]:
    """Record the job opening and one outbox message per recipient; audit who sent it."""
    fields = _validate_job(draft, today=utcnow().astimezone(settings.tz).date())
    recipients = preview_recipients(session, draft)
    if not recipients:
        raise BroadcastError("recipients: no active graduate matches these cohorts, skill and "
                             "status filters; widen the filters")
    job = _insert_job(session, JobOpening(**fields, deadline=draft.deadline, created_by=actor))
    cohort_ids = sorted({g.cohort_id for g in recipients if g.cohort_id is not None})
    target = {"cohort_ids": cohort_ids, "cohorts": draft.cohort_names, "skill": fields["skill"],
              "statuses": list(draft.statuses or [])}
    bc = Broadcast(kind="job_opening", job_id=job.id, target=target,
                   body=_job_body(settings.app.language, job), created_by=actor,
                   recipient_count=len(recipients))
    session.add(bc)
    session.flush()
    for graduate in recipients:
        variables = {"1": job.title, "2": job.employer, "3": job.location,
                     "4": deadline_text(graduate.language, job.deadline), "5": job.code}
        enqueue(session, graduate=graduate, kind="job_opening",
                body=_job_body(graduate.language, job),
                dedupe_key=f"broadcast:{bc.id}:{graduate.id}", broadcast_id=bc.id,
                content_variables=variables)
    audit(session, actor, "broadcast.job", broadcast_id=bc.id, job_id=job.id, code=job.code,
          title=job.title, employer=job.employer, recipients=len(recipients), target=target)
    session.flush()
    return job, bc


def _validate_job(draft: JobDraft, today: date) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for name in ("title", "employer", "location"):
        value = " ".join((getattr(draft, name) or "").split())
        if not value:
            raise BroadcastError(f"{name}: required, please fill it in")
        if len(value) > TEXT_LIMIT:
            raise BroadcastError(f"{name}: at most {TEXT_LIMIT} characters "
                                 f"(this one has {len(value)})")
        fields[name] = value
    skill = " ".join((draft.skill or "").split()) or None
    if skill and len(skill) > TEXT_LIMIT:
        raise BroadcastError(f"skill: at most {TEXT_LIMIT} characters")
    fields["skill"] = skill
    if draft.deadline is not None and draft.deadline < today:
        raise BroadcastError(f"deadline: {draft.deadline:%Y-%m-%d} is in the past "
                             f"(today is {today:%Y-%m-%d})")
    _check_statuses(draft.statuses)
    return fields


def new_job_code() -> str:
    """Five characters such as 'K7MPA' (no 0/O/1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _insert_job(session: Session, job: JobOpening) -> JobOpening:
    """Insert with a fresh unique code, retrying on the rare collision (also across processes)."""
    for _ in range(20):
        code = new_job_code()
        if session.scalar(select(JobOpening.id).where(JobOpening.code == code)) is not None:
            continue
        job.code = code
        try:
            with session.begin_nested():
                session.add(job)
        except IntegrityError:
            continue
        return job
    raise BroadcastError("code: could not find an unused job code, please try again")


def deadline_text(language: str, deadline: date | None) -> str:
    """'30/06/2026', or the catalog's 'until filled' when there is no deadline."""
    if deadline is None:
        return catalog.text(language, "jobs.no_deadline")
    return f"{deadline:%d/%m/%Y}"


def _job_body(language: str, job: JobOpening) -> str:
    return catalog.text(language, "job.opening", title=job.title, employer=job.employer,
                        location=job.location, deadline=deadline_text(language, job.deadline),
                        code=job.code)


# --- announcements --------------------------------------------------------------------------

def create_announcement(session: Session, settings: Settings, cohort_names: list[str] | None,
                        text: str, actor: str) -> Broadcast:
    """Post ``text`` to the cohorts (None: every active cohort) like a message to a group."""
    text = (text or "").strip()
    if not text:
        raise BroadcastError("text: the announcement is empty")
    if len(text) > ANNOUNCEMENT_LIMIT:
        raise BroadcastError(f"text: at most {ANNOUNCEMENT_LIMIT} characters "
                             f"(this one has {len(text)})")
    cohorts = resolve_cohorts(session, cohort_names, BroadcastError)
    recipients = _recipients(session, cohorts)
    if not recipients:
        raise BroadcastError("cohorts: no active graduate in these cohorts to send to")
    names = {c.id: c.name for c in cohorts}
    target = {"cohort_ids": sorted(names), "cohorts": [names[i] for i in sorted(names)]}
    label = ", ".join(target["cohorts"])
    bc = Broadcast(kind="announcement", target=target, created_by=actor,
                   body=catalog.text(settings.app.language, "announcement", text=text,
                                     cohort=label),
                   recipient_count=len(recipients))
    session.add(bc)
    session.flush()
    for graduate in recipients:
        cohort = names[graduate.cohort_id]
        enqueue(session, graduate=graduate, kind="announcement",
                body=catalog.text(graduate.language, "announcement", text=text, cohort=cohort),
                dedupe_key=f"broadcast:{bc.id}:{graduate.id}", broadcast_id=bc.id,
                content_variables={"1": cohort, "2": text})
    audit(session, actor, "broadcast.announcement", broadcast_id=bc.id,
          recipients=len(recipients), target=target, text=text)
    session.flush()
    return bc
