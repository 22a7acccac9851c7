"""Personal data under UU PDP 27/2022: erase one graduate, copy their data, keep no longer than
configured, and keep numbers and message text out of the logs (see docs/privacy.md).

- ``erase_graduate``: the person's name and number go, their message bodies and media, the
  free text of their answers, their place on shortlists and their conversation; what stays is
  anonymous (a row named "dihapus" that keeps the cohort's and rounds' counts right, the coded
  answers counted in the figures, the consent history as times only). The number is kept as a
  hash in ``erased_numbers`` so a roster import does not bring the person back unless forced.
- ``graduate_data``: everything Kabar holds about one graduate, for a data-subject request.
- ``apply_retention``: message bodies older than ``privacy.message_body_days`` are emptied and
  messages from numbers on no roster older than ``privacy.unknown_number_days`` deleted; the
  scheduler runs it daily.
- ``install_log_masking``: every log record has phone numbers masked (+62812****565).
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.models import (
    AuditLog,
    Cohort,
    ConsentEvent,
    Conversation,
    ErasedNumber,
    Graduate,
    Institution,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
    audit,
    utcnow,
)
from bot.phones import PhoneError, normalize_phone

log = logging.getLogger(__name__)

ERASED_NAME = "(dihapus)"
ERASED_TEXT = "[dihapus]"


class PrivacyError(ValueError):
    """The graduate cannot be found, or the request cannot be carried out; says why."""


# --- masking ------------------------------------------------------------------------------

_PHONE = re.compile(r"(?<![0-9A-Za-z])(\+?)(\d{9,15})(?![0-9A-Za-z])")


# An access log's request line: "GET /staff/log?q=... HTTP/1.1" (the query can hold a number).
_REQUEST_QUERY = re.compile(r'("(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) [^ ?"]*)\?[^ "]*')


def mask_phone(text: str) -> str:
    """Phone numbers in ``text`` masked: '+6281234567565' -> '+62812****565'."""
    return _PHONE.sub(lambda m: f"{m.group(1)}{m.group(2)[:5]}****{m.group(2)[-3:]}", text)


def mask_log_line(text: str) -> str:
    """A log line without query strings in request lines and with phone numbers masked."""
    return mask_phone(_REQUEST_QUERY.sub(r"\1", text))


_installed = False


def install_log_masking() -> None:
    """Mask phone numbers in every log record from now on (idempotent; whole process)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return record
        masked = mask_log_line(message)
        if masked != message or record.args:
            record.msg, record.args = masked, ()
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


# --- tombstones ---------------------------------------------------------------------------

def phone_hash(phone: str) -> str:
    """The stored fingerprint of an erased number (SHA-256 of its E.164 form)."""
    return hashlib.sha256(f"kabar-erased:{phone}".encode()).hexdigest()


def erased_numbers(session: Session, phones: list[str]) -> dict[str, datetime]:
    """Which of ``phones`` belonged to an erased graduate, with when they were erased."""
    by_hash = {phone_hash(p): p for p in phones}
    found: dict[str, datetime] = {}
    hashes = list(by_hash)
    for start in range(0, len(hashes), 500):
        for row in session.scalars(select(ErasedNumber).where(
                ErasedNumber.phone_hash.in_(hashes[start:start + 500]))):
            found[by_hash[row.phone_hash]] = row.erased_at
    return found


# --- finding one graduate -----------------------------------------------------------------

def find_graduate(session: Session, who: str) -> Graduate:
    """A graduate by id (``#12`` or ``12``) or WhatsApp number (any common spelling)."""
    who = who.strip()
    if re.fullmatch(r"#?\d{1,9}", who):
        graduate = session.get(Graduate, int(who.lstrip("#")))
        if graduate is not None:
            return graduate
    try:
        phone = normalize_phone(who)
    except PhoneError:
        raise PrivacyError(f"{who!r} is neither a graduate id nor a WhatsApp number") from None
    graduate = session.scalar(select(Graduate).where(Graduate.phone == phone))
    if graduate is None:
        raise PrivacyError(f"no graduate has the number {mask_phone(phone)}")
    return graduate


# --- a copy of one graduate's data --------------------------------------------------------

def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def graduate_data(session: Session, graduate: Graduate) -> dict[str, Any]:
    """Everything Kabar keeps about ``graduate``, as plain JSON-ready values."""
    cohort = session.get(Cohort, graduate.cohort_id) if graduate.cohort_id else None
    institution = session.get(Institution, cohort.institution_id) if cohort else None
    reports = session.scalars(select(ProgressReport).where(
        ProgressReport.graduate_id == graduate.id).order_by(ProgressReport.id))
    messages = session.scalars(select(Message).where(or_(
        Message.graduate_id == graduate.id, Message.phone == graduate.phone))
        .order_by(Message.id))
    interests = session.execute(select(Interest.created_at, JobOpening.code, JobOpening.title)
                                .join(JobOpening, Interest.job_id == JobOpening.id)
                                .where(Interest.graduate_id == graduate.id))
    consent = session.scalars(select(ConsentEvent).where(
        ConsentEvent.graduate_id == graduate.id).order_by(ConsentEvent.id))
    return {
        "graduate": {"id": graduate.id, "name": graduate.name, "phone": graduate.phone,
                     "skill": graduate.skill, "language": graduate.language,
                     "active": graduate.active, "opted_out": graduate.opted_out,
                     "opted_out_at": _iso(graduate.opted_out_at),
                     "institution": institution.name if institution else None,
                     "cohort": cohort.name if cohort else None,
                     "created_at": _iso(graduate.created_at)},
        "progress_reports": [
            {"id": r.id, "round_id": r.round_id, "status": r.status,
             "employment_status": r.employment_status, "employer": r.employer,
             "uses_training_skill": r.uses_training_skill,
             "wants_job_alerts": r.wants_job_alerts, "skill_rating": r.skill_rating,
             "needs_help": r.needs_help, "raw_answers": r.raw_answers,
             "responded_at": _iso(r.responded_at), "completed_at": _iso(r.completed_at)}
            for r in reports],
        "messages": [
            {"id": m.id, "direction": m.direction, "kind": m.kind, "body": m.body,
             "media_url": m.media_url, "media_type": m.media_type, "status": m.status,
             "created_at": _iso(m.created_at), "sent_at": _iso(m.sent_at)}
            for m in messages],
        "job_interests": [{"job_code": code, "job_title": title, "at": _iso(at)}
                          for at, code, title in interests],
        "consent_events": [{"kind": e.kind, "at": _iso(e.created_at)} for e in consent],
    }


# --- erasure ------------------------------------------------------------------------------

def erase_graduate(session: Session, graduate: Graduate, actor: str) -> dict[str, int]:
    """Erase ``graduate``'s personal data (caller commits); what was removed, as counts."""
    if graduate.name == ERASED_NAME and graduate.phone.startswith("x"):
        raise PrivacyError(f"graduate {graduate.id} was already erased")
    phone, pseudonym = graduate.phone, f"x{graduate.id}"
    messages = session.execute(
        update(Message).where(or_(Message.graduate_id == graduate.id, Message.phone == phone))
        .values(body="", media_url=None, meta=None, content_variables=None,
                error_message=None, phone=pseudonym)
        .execution_options(synchronize_session=False)).rowcount
    answers = 0
    for report in session.scalars(select(ProgressReport).where(
            ProgressReport.graduate_id == graduate.id)):
        # The coded answers stay (the figures count them); the words go.
        report.raw_answers = {}
        if report.employer:
            report.employer = ERASED_TEXT
        if report.needs_help and report.needs_help.strip():
            report.needs_help = ERASED_TEXT
        answers += 1
    interests = session.execute(delete(Interest).where(
        Interest.graduate_id == graduate.id)).rowcount
    session.execute(delete(Conversation).where(Conversation.graduate_id == graduate.id))
    entries = _scrub_audit(session, graduate, phone)
    graduate.name, graduate.phone, graduate.skill = ERASED_NAME, pseudonym, None
    graduate.active, graduate.opted_out = False, True
    if session.get(ErasedNumber, phone_hash(phone)) is None:
        session.add(ErasedNumber(phone_hash=phone_hash(phone), erased_by=actor))
    counts = {"messages": messages, "reports": answers, "interests": interests,
              "audit_entries": entries}
    audit(session, actor, "graduate.erase", graduate_id=graduate.id, **counts)
    return counts


def _scrub_audit(session: Session, graduate: Graduate, phone: str) -> int:
    """Remove the name and number from earlier audit entries (the entries themselves stay)."""
    secrets_ = [s for s in (graduate.name, phone) if s and len(s) >= 3]
    changed = 0
    for entry in session.scalars(select(AuditLog)):
        scrubbed = _scrub(entry.detail, secrets_)
        if scrubbed != entry.detail:
            entry.detail = scrubbed
            changed += 1
    return changed


def _scrub(value: Any, secrets_: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets_:
            value = value.replace(secret, ERASED_TEXT)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets_) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets_) for v in value]
    return value


# --- retention ----------------------------------------------------------------------------

def apply_retention(session: Session, settings: Settings,
                    now: datetime | None = None) -> dict[str, int]:
    """Empty old message bodies and delete old messages from unknown numbers (caller commits)."""
    now = now or utcnow()
    done = {"bodies_emptied": 0, "unknown_deleted": 0}
    days = settings.privacy.unknown_number_days
    if days:
        cutoff = now - timedelta(days=days)
        done["unknown_deleted"] = session.execute(
            delete(Message).where(Message.graduate_id.is_(None), Message.created_at < cutoff,
                                  Message.phone.not_in(select(Graduate.phone)))
            .execution_options(synchronize_session=False)).rowcount
    days = settings.privacy.message_body_days
    if days:
        cutoff = now - timedelta(days=days)
        done["bodies_emptied"] = session.execute(
            update(Message).where(Message.created_at < cutoff,
                                  or_(Message.body != "", Message.media_url.is_not(None)))
            .values(body="", media_url=None, meta=None, content_variables=None)
            .execution_options(synchronize_session=False)).rowcount
    if any(done.values()):
        audit(session, "scheduler", "privacy.retention", **done)
    return done


def refuse_erased(session: Session, rows: list, problems: list) -> list:
    """Roster rows without the numbers of erased graduates; each refusal becomes a problem."""
    erased = erased_numbers(session, [row.phone for row in rows])
    if not erased:
        return rows
    from bot.roster import ImportProblem

    kept = []
    for row in rows:
        when = erased.get(row.phone)
        if when is None:
            kept.append(row)
            continue
        problems.append(ImportProblem(row.line, (
            f"no_wa {mask_phone(row.phone)} belonged to a graduate erased on request on "
            f"{when:%Y-%m-%d}; add it again only if they ask to be added again "
            "(kabar import-roster --allow-erased)")))
    if hasattr(problems, "total"):
        problems.total += len(rows) - len(kept)
    return kept
