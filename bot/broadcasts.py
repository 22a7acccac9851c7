"""Broadcasts: a job opening or an announcement fanned out to the chosen cohorts.

A cohort is the "WhatsApp group": a post to it becomes one outbox row per active member who has
not opted out, each in the graduate's language and with its own dedupe key, so a broadcast
recorded once is never sent twice. Job openings carry a short code graduates answer with
``MINAT <code>``. Everything here only writes rows; the dispatcher sends them.

Two ways to send a job opening: ``create_job_broadcast`` records and sends it at once (the CLI);
the console records it first (``create_job``), lets staff edit or close it, and sends it to the
cohorts staff chose by id (``broadcast_job``) after a preview of exactly who will receive it
(``target_recipients``; ``recipients_fingerprint`` lets the confirmation check it still holds).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import catalog
from bot.checkins import resolve_cohorts
from bot.config import Settings
from bot.fanout import fan_out_announcement, fan_out_job
from bot.models import (
    EMPLOYMENT_STATUSES,
    MSG_FAILED,
    MSG_UNDELIVERED,
    Broadcast,
    Cohort,
    Graduate,
    Institution,
    JobOpening,
    Message,
    ProgressReport,
    audit,
    utcnow,
)

# Job codes: easy to read aloud and type on a phone; no 0/O or 1/I to confuse.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 5
TEXT_LIMIT = 200  # the length of the job opening's columns
ANNOUNCEMENT_LIMIT = 1000  # WhatsApp template variables allow about 1,024 characters


class BroadcastError(Exception):
    """A broadcast that cannot be created; the message names the field and how to fix it."""


class RecipientsChanged(BroadcastError):
    """The recipients are no longer the ones the preview showed; preview again."""


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


def cohorts_by_ids(session: Session, cohort_ids: Iterable[int]) -> list[Cohort]:
    """Active cohorts by id, by institution and name; an unknown or inactive id raises."""
    wanted = sorted({int(i) for i in cohort_ids})
    if not wanted:
        raise BroadcastError("cohorts: choose at least one cohort")
    cohorts = list(session.scalars(select(Cohort).join(Institution)
                                   .where(Cohort.id.in_(wanted))
                                   .order_by(Institution.name, Cohort.name)))
    missing = sorted(set(wanted) - {c.id for c in cohorts})
    if missing:
        raise BroadcastError(f"cohorts: no cohort with id {', '.join(map(str, missing))}")
    inactive = [c.name for c in cohorts if not c.active]
    if inactive:
        raise BroadcastError(f"cohorts: {', '.join(inactive)} is not active")
    return cohorts


def target_recipients(session: Session, cohort_ids: Iterable[int], *, skill: str | None = None,
                      statuses: Sequence[str] | None = None,
                      job: JobOpening | None = None) -> list[Graduate]:
    """Who a send to these cohorts (by id) would reach, filtered like ``preview_recipients``.

    With ``job``, graduates who already have this job opening from an earlier send (one that
    did not fail) are left out: a second send to more cohorts, or a confirmation clicked twice,
    reaches only those who have not had it.
    """
    _check_statuses(statuses)
    recipients = _recipients(session, cohorts_by_ids(session, cohort_ids), skill=skill,
                             statuses=statuses)
    if job is not None and recipients:
        had = _had_job(session, job)
        recipients = [g for g in recipients if g.id not in had]
    return recipients


def target_recipient_ids(session: Session, cohort_ids: Iterable[int], *,
                         skill: str | None = None, statuses: Sequence[str] | None = None,
                         job: JobOpening | None = None) -> list[int]:
    """The ids of ``target_recipients``, in the same order, without loading the graduates
    (what a send needs: a province's recipients as objects take longer than their rows)."""
    _check_statuses(statuses)
    cohorts = cohorts_by_ids(session, cohort_ids)
    if not cohorts:
        return []
    ids = list(session.scalars(_recipients_query(cohorts, skill, statuses)
                               .with_only_columns(Graduate.id)))
    if job is not None and ids:
        had = _had_job(session, job)
        ids = [i for i in ids if i not in had]
    return ids


def _had_job(session: Session, job: JobOpening) -> set[int]:
    """Graduates who have this job opening from an earlier send that did not fail."""
    return set(session.scalars(
        select(Message.graduate_id).join(Broadcast, Message.broadcast_id == Broadcast.id)
        .where(Broadcast.job_id == job.id,
               Message.status.not_in((MSG_FAILED, MSG_UNDELIVERED)))))


def recipients_fingerprint(recipients: Iterable[Graduate | int]) -> str:
    """A short digest of exactly who is in a preview (graduates or their ids), for the
    confirmation to check."""
    ids = ",".join(str(i) for i in sorted(g if isinstance(g, int) else g.id
                                          for g in recipients))
    return hashlib.sha256(ids.encode("ascii")).hexdigest()[:20]


def latest_reports(session: Session, graduate_ids: Iterable[int]) -> dict[int, ProgressReport]:
    """Each graduate's latest answer (their answered report of the latest round), for display."""
    ids = sorted(set(graduate_ids))
    found: dict[int, ProgressReport] = {}
    for start in range(0, len(ids), 500):  # stay far below every backend's parameter limit
        chunk = ids[start:start + 500]
        for report in session.scalars(
                select(ProgressReport)
                .join(Graduate, Graduate.answer_report_id == ProgressReport.id)
                .where(Graduate.id.in_(chunk))):
            found[report.graduate_id] = report
    return found


def _recipients(session: Session, cohorts: Sequence[Cohort], skill: str | None = None,
                statuses: Sequence[str] | None = None) -> list[Graduate]:
    if not cohorts:
        return []
    return list(session.scalars(_recipients_query(cohorts, skill, statuses)))


def _recipients_query(cohorts: Sequence[Cohort], skill: str | None = None,
                      statuses: Sequence[str] | None = None):
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
        stmt = stmt.where(Graduate.answer_status.in_(list(statuses)))
    return stmt


def _check_statuses(statuses: Sequence[str] | None) -> None:
    for status in statuses or ():
        if status not in EMPLOYMENT_STATUSES:
            raise BroadcastError(f"status: {status!r} is not one of "
                                 f"{', '.join(EMPLOYMENT_STATUSES)}")


# --- job openings ---------------------------------------------------------------------------

def create_job_broadcast(session: Session, settings: Settings, draft: JobDraft,
                         actor: str, code: str | None = None) -> tuple[JobOpening, Broadcast]:
    """Record the job opening and one outbox message per recipient; audit who sent it.

    ``code``: the job code to use when it is still free (the CLI shows the message with it
    before asking to send); otherwise a fresh one is chosen."""
    fields = _validate_job(draft, today=_today(settings))
    recipients = preview_recipients(session, draft)
    if not recipients:
        raise BroadcastError("recipients: no active graduate matches these cohorts, skill and "
                             "status filters; widen the filters")
    job = _insert_job(session, JobOpening(**fields, deadline=draft.deadline, created_by=actor),
                      code)
    cohort_ids = sorted({g.cohort_id for g in recipients if g.cohort_id is not None})
    target = {"cohort_ids": cohort_ids, "cohorts": draft.cohort_names, "skill": fields["skill"],
              "statuses": list(draft.statuses or [])}
    return job, _fan_out_job(session, settings, job, recipients, target, actor)


def create_job(session: Session, settings: Settings, draft: JobDraft, actor: str) -> JobOpening:
    """Record a job opening without sending it (the console sends it with ``broadcast_job``)."""
    fields = _validate_job(draft, today=_today(settings))
    job = _insert_job(session, JobOpening(**fields, deadline=draft.deadline, created_by=actor))
    audit(session, actor, "job.create", job_id=job.id, code=job.code, title=job.title,
          employer=job.employer, location=job.location, skill=job.skill,
          deadline=_iso(job.deadline))
    session.flush()
    return job


def update_job(session: Session, settings: Settings, job: JobOpening, draft: JobDraft,
               actor: str) -> dict[str, list[str | None]]:
    """Change a job's title, employer, location, skill and deadline; what changed (audited).

    Messages already sent keep their text; ``LOWONGAN`` and later sends show the new one. An
    unchanged deadline may stay in the past; a new one may not.
    """
    today = None if draft.deadline == job.deadline else _today(settings)
    fields = {**_validate_job(draft, today=today), "deadline": draft.deadline}
    changes: dict[str, list[str | None]] = {}
    for name, value in fields.items():
        old = getattr(job, name)
        if old != value:
            changes[name] = [_iso(old), _iso(value)]
            setattr(job, name, value)
    if changes:
        audit(session, actor, "job.edit", job_id=job.id, code=job.code, changes=changes)
        session.flush()
    return changes


def set_job_closed(session: Session, job: JobOpening, closed: bool, actor: str) -> bool:
    """Close (or reopen) a job opening: a closed one takes no ``MINAT``; True if it changed."""
    if job.closed == closed:
        return False
    job.closed = closed
    audit(session, actor, "job.close" if closed else "job.reopen", job_id=job.id,
          code=job.code, title=job.title)
    session.flush()
    return True


def broadcast_job(session: Session, settings: Settings, job: JobOpening,
                  cohort_ids: Iterable[int], *, actor: str, skill: str | None = None,
                  statuses: Sequence[str] | None = None,
                  expected: str | None = None) -> Broadcast:
    """Send a recorded job opening to the chosen cohorts (by id), filtered by skill and status.

    ``expected`` is the ``recipients_fingerprint`` of the preview staff confirmed: when the
    recipients differ now (a graduate joined, opted out, or already got it from a send a moment
    ago), ``RecipientsChanged`` is raised and nothing is sent. The job row is locked first
    (PostgreSQL; SQLite serialises writers), so two confirmations never both send.
    """
    session.refresh(job, with_for_update=True)
    if not job.is_open(_today(settings)):
        raise BroadcastError("job: this opening is closed or its deadline has passed; reopen "
                             "it or change the deadline before sending")
    skill = " ".join((skill or "").split()) or None
    recipients = target_recipient_ids(session, cohort_ids, skill=skill, statuses=statuses,
                                      job=job)
    if expected is not None and recipients_fingerprint(recipients) != expected:
        raise RecipientsChanged("recipients: they changed since the preview (someone joined, "
                                "opted out or already received this opening); check the "
                                "preview again")
    if not recipients:
        raise BroadcastError("recipients: no active graduate matches these cohorts, skill and "
                             "status filters who has not had this opening; widen the filters")
    cohorts = cohorts_by_ids(session, cohort_ids)
    target = {"cohort_ids": [c.id for c in cohorts], "cohorts": [c.name for c in cohorts],
              "skill": skill, "statuses": list(statuses or [])}
    return _fan_out_job(session, settings, job, recipients, target, actor)


def _fan_out_job(session: Session, settings: Settings, job: JobOpening,
                 recipients: Sequence[Graduate] | Sequence[int], target: dict,
                 actor: str) -> Broadcast:
    """One broadcast row and one outbox message per recipient (graduates or their ids, in
    the recipients' order), audited."""
    bc = Broadcast(kind="job_opening", job_id=job.id, target=target,
                   body=job_message(settings.app.language, job), created_by=actor,
                   recipient_count=len(recipients))
    session.add(bc)
    session.flush()
    fan_out_job(session, bc.id, [g if isinstance(g, int) else g.id for g in recipients],
                title=job.title, employer=job.employer, location=job.location, code=job.code,
                deadline={lang: deadline_text(lang, job.deadline) for lang in catalog.LANGUAGES})
    audit(session, actor, "broadcast.job", broadcast_id=bc.id, job_id=job.id, code=job.code,
          title=job.title, employer=job.employer, recipients=len(recipients), target=target)
    session.flush()
    return bc


def _today(settings: Settings) -> date:
    return utcnow().astimezone(settings.tz).date()


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, date) else value  # type: ignore[return-value]


def _validate_job(draft: JobDraft, today: date | None) -> dict[str, str | None]:
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
    if today is not None and draft.deadline is not None and draft.deadline < today:
        raise BroadcastError(f"deadline: {draft.deadline:%d/%m/%Y} is in the past "
                             f"(today is {today:%d/%m/%Y})")
    _check_statuses(draft.statuses)
    return fields


def new_job_code() -> str:
    """Five characters such as 'K7MPA' (no 0/O/1/I)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def preview_job(settings: Settings, draft: JobDraft, code: str) -> str:
    """The message ``draft`` would send with job code ``code`` (checked, not recorded)."""
    fields = _validate_job(draft, today=_today(settings))
    job = JobOpening(**fields, deadline=draft.deadline, code=code)
    return job_message(settings.app.language, job)


def _insert_job(session: Session, job: JobOpening, wanted: str | None = None) -> JobOpening:
    """Insert with a fresh unique code (``wanted`` first, when given), retrying on the rare
    collision (also across processes)."""
    for attempt in range(20):
        code = wanted if wanted and attempt == 0 else new_job_code()
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


def job_message(language: str, job: JobOpening) -> str:
    """The job opening exactly as a graduate reads it in ``language`` (the catalog text)."""
    return catalog.text(language, "job.opening", title=job.title, employer=job.employer,
                        location=job.location, deadline=deadline_text(language, job.deadline),
                        code=job.code)


# --- announcements --------------------------------------------------------------------------

def announcement_message(language: str, text: str, cohort: str) -> str:
    """An announcement exactly as a graduate of ``cohort`` reads it (the catalog text)."""
    return catalog.text(language, "announcement", text=text, cohort=cohort)


def create_announcement(session: Session, settings: Settings, cohort_names: list[str] | None,
                        text: str, actor: str, *, cohort_ids: Sequence[int] | None = None,
                        expected: str | None = None) -> Broadcast:
    """Post ``text`` to the cohorts (None: every active cohort) like a message to a group.

    The console names the cohorts by id (``cohort_ids``, then ``cohort_names`` is ignored) and
    passes the ``recipients_fingerprint`` of its preview as ``expected``: when the recipients
    changed since, ``RecipientsChanged`` is raised and nothing is sent.
    """
    text = (text or "").strip()
    if not text:
        raise BroadcastError("text: the announcement is empty")
    if len(text) > ANNOUNCEMENT_LIMIT:
        raise BroadcastError(f"text: at most {ANNOUNCEMENT_LIMIT} characters "
                             f"(this one has {len(text)})")
    if cohort_ids is not None:
        cohorts = cohorts_by_ids(session, cohort_ids)
    else:
        cohorts = resolve_cohorts(session, cohort_names, BroadcastError)
    recipients = (list(session.scalars(_recipients_query(cohorts)
                                       .with_only_columns(Graduate.id)))
                  if cohorts else [])
    if expected is not None and recipients_fingerprint(recipients) != expected:
        raise RecipientsChanged("recipients: they changed since the preview (someone joined or "
                                "opted out); check the preview again")
    if not recipients:
        raise BroadcastError("cohorts: no active graduate in these cohorts to send to")
    names = {c.id: c.name for c in cohorts}
    target = {"cohort_ids": sorted(names), "cohorts": [names[i] for i in sorted(names)]}
    label = ", ".join(target["cohorts"])
    bc = Broadcast(kind="announcement", target=target, created_by=actor,
                   body=announcement_message(settings.app.language, text, label),
                   recipient_count=len(recipients))
    session.add(bc)
    session.flush()
    fan_out_announcement(session, bc.id, recipients, text)
    audit(session, actor, "broadcast.announcement", broadcast_id=bc.id,
          recipients=len(recipients), target=target, text=text)
    session.flush()
    return bc
