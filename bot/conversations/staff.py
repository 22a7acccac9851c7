"""Staff over WhatsApp: ``SIARAN <paket|SEMUA> <teks>`` (confirmed with ``YA``) and
``REKAP <paket>``, from the phone of an active staff user.

- Roles: ``admin`` and ``staff`` may broadcast to any active cohort; a ``viewer`` may only
  ``REKAP`` the cohorts of their own institution.
- ``SIARAN`` sends nothing by itself: it counts the recipients, stores the broadcast as the staff
  user's ``pending_action`` (with ``pending_since``) and asks for ``YA``. ``YA`` within
  ``CONFIRM_WITHIN`` creates the announcement (``bot.broadcasts.create_announcement``);
  ``BATAL``, a no, or any other message cancels it; a ``YA`` after that answers that it expired.
- ``REKAP`` answers with one message about the cohort's latest round (rounds a graduate started
  alone with ``CEK`` are not rounds of the cohort and are left out).

A number that is both a staff user's and a graduate's is handled here only for SIARAN, REKAP
and, while a broadcast waits for confirmation, YA/BATAL (``is_staff_message``); everything else
goes to the graduate's conversation. Every command writes an audit entry; every answer is a
catalog text (``[staff]``) queued in the outbox to the staff user's phone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.broadcasts import ANNOUNCEMENT_LIMIT, BroadcastError, _recipients, create_announcement
from bot.catalog import text as catalog_text
from bot.checkins import cohort_labels
from bot.config import Settings
from bot.models import (
    CheckInRound,
    Cohort,
    Graduate,
    Institution,
    ProgressReport,
    StaffUser,
    audit,
)
from bot.outbox import enqueue
from bot.understand import Keyword, normalize, parse_keyword, parse_yes_no

log = logging.getLogger(__name__)

CONFIRM_WITHIN = timedelta(minutes=30)
BROADCAST_ROLES = ("admin", "staff")
ALL_COHORTS = ("semua", "all")
CANCEL_WORDS = ("batal", "batalkan", "cancel", "jangan")
MAX_KNOWN_LISTED = 20  # cohorts named in an "unknown cohort" answer (Twilio allows 1,600 chars)
MAX_HELP_NAMES = 5  # names listed under "needs help" in REKAP
SELF_TRIGGER = "self"  # a round one graduate started with CEK
_EDGE_PUNCTUATION = ":;,.-–—"


def find_staff(session: Session, phone: str) -> StaffUser | None:
    """The active staff user with this phone, locked for this message (their pending action)."""
    return session.scalar(select(StaffUser).where(StaffUser.phone == phone,
                                                  StaffUser.active.is_(True))
                          .with_for_update())


def is_staff_message(staff: StaffUser, body: str, is_graduate: bool) -> bool:
    """Whether this message is for the staff commands rather than the graduate conversation.

    A number that is only a staff user's: always. One that is also a graduate's: SIARAN and
    REKAP, and YA/BATAL while a broadcast waits for confirmation. ``GABUNG <kode>`` from a staff
    user's number joins a cohort like from any unknown number.
    """
    keyword = parse_keyword(body)
    if not is_graduate:
        return keyword is None or keyword.name != "join"  # GABUNG: joins as a graduate
    if keyword is not None and keyword.name in ("broadcast", "summary"):
        return True
    return staff.pending_action is not None and _confirmation(body) is not None


def cancel_pending(session: Session, settings: Settings, staff: StaffUser, now: datetime,
                   reason: str) -> None:
    """Drop the waiting broadcast (a graduate-and-staff number wrote something else)."""
    if staff.pending_action is None:
        return
    expired = _expired(staff, now)
    pending = staff.pending_action
    _clear(staff)
    audit(session, staff.name, "whatsapp.broadcast_cancel", phone=staff.phone, reason=reason,
          expired=expired, pending=pending)
    if not expired:
        _reply(session, settings, staff, "staff.cancelled")


def handle_staff_message(session: Session, settings: Settings, staff: StaffUser, body: str,
                         now: datetime) -> None:
    """Answer one message from a staff user's phone; the caller commits."""
    staff.last_inbound_at = now
    body = (body or "").strip()
    keyword = parse_keyword(body)
    if keyword is not None and keyword.name not in ("broadcast", "summary"):
        keyword = None
    confirmation = _confirmation(body) if keyword is None else None
    if staff.pending_action is not None:
        if confirmation is not None:
            _answer_pending(session, settings, staff, confirmation, now)
            return
        cancel_pending(session, settings, staff, now,
                       reason="new command" if keyword else "other message")
    elif confirmation is not None:
        audit(session, staff.name, "whatsapp.nothing_pending", phone=staff.phone, text=body)
        _reply(session, settings, staff, "staff.nothing_pending")
        return
    if keyword is None:
        audit(session, staff.name, "whatsapp.help", phone=staff.phone, text=body[:200])
        _reply(session, settings, staff, "staff.help")
    elif keyword.name == "broadcast":
        _prepare_broadcast(session, settings, staff, keyword, now)
    else:
        _summary(session, settings, staff, keyword)


# --- SIARAN / YA / BATAL ----------------------------------------------------------------------

def _prepare_broadcast(session: Session, settings: Settings, staff: StaffUser, keyword: Keyword,
                       now: datetime) -> None:
    argument = keyword.argument
    if staff.role not in BROADCAST_ROLES:
        _refuse(session, settings, staff, "broadcast", "role", "staff.not_allowed_broadcast")
        return
    if not argument:
        _refuse(session, settings, staff, "broadcast", "usage", "staff.broadcast_usage")
        return
    found = _split_target(session, staff, argument)
    if found is None:
        first = argument.split()[0]
        _unknown_cohort(session, settings, staff, "broadcast", first)
        return
    if isinstance(found, _Ambiguous):
        _ambiguous(session, settings, staff, "broadcast", found)
        return
    cohorts, message = found
    if not message:
        _refuse(session, settings, staff, "broadcast", "no text", "staff.broadcast_usage")
        return
    if len(message) > ANNOUNCEMENT_LIMIT:
        _refuse(session, settings, staff, "broadcast", "too long", "staff.broadcast_too_long",
                limit=ANNOUNCEMENT_LIMIT, length=len(message))
        return
    labels = cohort_labels(session, cohorts)
    label = ", ".join(labels[c.id] for c in cohorts)
    count = len(_recipients(session, cohorts))
    if count == 0:
        _refuse(session, settings, staff, "broadcast", "no recipients",
                "staff.broadcast_no_recipients", cohorts=label)
        return
    staff.pending_action = {"action": "broadcast", "cohorts": [c.id for c in cohorts],
                            "text": message}
    staff.pending_since = now
    audit(session, staff.name, "whatsapp.broadcast_prepare", phone=staff.phone,
          cohort_ids=[c.id for c in cohorts], cohorts=label, recipients=count, text=message)
    _reply(session, settings, staff, "staff.broadcast_confirm", cohorts=label, count=count,
           text=message, minutes=int(CONFIRM_WITHIN.total_seconds() // 60))


def _answer_pending(session: Session, settings: Settings, staff: StaffUser, confirmed: bool,
                    now: datetime) -> None:
    pending = staff.pending_action or {}
    expired = _expired(staff, now)
    _clear(staff)
    if expired:
        audit(session, staff.name, "whatsapp.broadcast_expired", phone=staff.phone,
              pending=pending, confirmed=confirmed)
        _reply(session, settings, staff, "staff.expired",
               minutes=int(CONFIRM_WITHIN.total_seconds() // 60))
        return
    if not confirmed:
        audit(session, staff.name, "whatsapp.broadcast_cancel", phone=staff.phone,
              reason="cancelled", pending=pending)
        _reply(session, settings, staff, "staff.cancelled")
        return
    if pending.get("action") != "broadcast":
        log.error("staff user %s had an unknown pending action %r; dropped", staff.id, pending)
        audit(session, staff.name, "whatsapp.nothing_pending", phone=staff.phone,
              pending=pending)
        _reply(session, settings, staff, "staff.nothing_pending")
        return
    ids = [int(i) for i in pending.get("cohorts") or []]
    cohorts = [c for c in session.scalars(select(Cohort).where(Cohort.id.in_(ids))) if c.active]
    labels = cohort_labels(session, cohorts)
    try:
        if not cohorts:
            raise BroadcastError("cohorts: none of the chosen cohorts is active any more")
        with session.begin_nested():
            broadcast = create_announcement(session, settings,
                                            [labels[c.id] for c in cohorts],
                                            pending.get("text") or "", actor=staff.name)
    except BroadcastError as exc:
        log.warning("staff user %s: broadcast not sent: %s", staff.id, exc)
        audit(session, staff.name, "whatsapp.broadcast_failed", phone=staff.phone,
              pending=pending, error=str(exc))
        _reply(session, settings, staff, "staff.broadcast_failed")
        return
    log.info("staff user %s broadcast %s to %d graduates", staff.id, broadcast.id,
             broadcast.recipient_count)
    audit(session, staff.name, "whatsapp.broadcast_confirm", phone=staff.phone,
          broadcast_id=broadcast.id, recipients=broadcast.recipient_count,
          cohorts=broadcast.target.get("cohorts"))
    _reply(session, settings, staff, "staff.broadcast_sent", count=broadcast.recipient_count,
           cohorts=", ".join(broadcast.target.get("cohorts") or []))


def _confirmation(body: str) -> bool | None:
    """True for YA (ya/iya/ok…), False for BATAL or a no; None for anything else.

    Digits do not count: "1" is a check-in answer, not a confirmation.
    """
    words = normalize(body).split()
    if not words or any(word.isdigit() for word in words):
        return None
    if words[0] in CANCEL_WORDS:
        return False
    return parse_yes_no(body)


def _expired(staff: StaffUser, now: datetime) -> bool:
    return staff.pending_since is None or now - staff.pending_since > CONFIRM_WITHIN


def _clear(staff: StaffUser) -> None:
    staff.pending_action = None
    staff.pending_since = None


# --- REKAP ----------------------------------------------------------------------------------

def _summary(session: Session, settings: Settings, staff: StaffUser, keyword: Keyword) -> None:
    name = _strip_edges(keyword.argument)
    if not name or name.casefold() in ALL_COHORTS:
        _refuse(session, settings, staff, "summary", "usage", "staff.summary_usage")
        return
    found = _match(session, staff, name, active_only=False)
    if isinstance(found, _Ambiguous):
        _ambiguous(session, settings, staff, "summary", found)
        return
    if not found:
        _unknown_cohort(session, settings, staff, "summary", name)
        return
    cohort = found[0]
    label = cohort_labels(session, [cohort])[cohort.id]
    round_ = session.scalar(
        select(CheckInRound)
        .where(CheckInRound.cohort_id == cohort.id, CheckInRound.trigger != SELF_TRIGGER)
        .order_by(CheckInRound.scheduled_for.desc(), CheckInRound.id.desc()).limit(1))
    if round_ is None:
        audit(session, staff.name, "whatsapp.summary", phone=staff.phone, cohort_id=cohort.id,
              cohort=label, round_id=None)
        _reply(session, settings, staff, "staff.summary_no_round", cohort=label)
        return
    figures = round_summary(session, round_)
    names = figures.pop("help_names")
    shown = ", ".join(names[:MAX_HELP_NAMES])
    if len(names) > MAX_HELP_NAMES:
        shown = _text(settings, "staff.summary_more", names=shown,
                      more=len(names) - MAX_HELP_NAMES)
    help_names = _text(settings, "staff.summary_help_names", names=shown) if names else ""
    date = round_.scheduled_for.astimezone(settings.tz).strftime("%d/%m/%Y")
    audit(session, staff.name, "whatsapp.summary", phone=staff.phone, cohort_id=cohort.id,
          cohort=label, round_id=round_.id, **figures)
    _reply(session, settings, staff, "staff.summary", cohort=label, date=date,
           help_names=help_names, **figures)


def round_summary(session: Session, round_: CheckInRound) -> dict:
    """The figures of one round: graduates asked, answered, per status, needing help, silent."""
    rows = session.execute(
        select(ProgressReport.responded_at, ProgressReport.employment_status,
               ProgressReport.needs_help, Graduate.name)
        .join(Graduate, ProgressReport.graduate_id == Graduate.id)
        .where(ProgressReport.round_id == round_.id)
        .order_by(Graduate.name, Graduate.id)).all()
    answered = [row for row in rows if row.responded_at is not None]
    by_status = {status: sum(1 for row in rows if row.employment_status == status)
                 for status in ("employed", "self_employed", "seeking", "studying")}
    help_names = [row.name for row in rows if (row.needs_help or "").strip()]
    return {"graduates": len(rows), "answered": len(answered),
            "not_answered": len(rows) - len(answered), **by_status,
            "needs_help": len(help_names), "help_names": help_names}


# --- finding cohorts ------------------------------------------------------------------------

@dataclass
class _Ambiguous:
    """A name several cohorts in reach share; the options say how to tell them apart."""

    name: str
    options: list[str]


def _strip_edges(value: str) -> str:
    return " ".join(value.split()).strip(_EDGE_PUNCTUATION + " ")


def _in_reach(session: Session, staff: StaffUser | None) -> list[Cohort]:
    """Every cohort ``staff`` may address (a viewer: their own institution's; None: all)."""
    stmt = select(Cohort).join(Institution).order_by(Institution.name, Cohort.name)
    if staff is not None and staff.role not in BROADCAST_ROLES:
        stmt = stmt.where(Cohort.institution_id == staff.institution_id)
    return list(session.scalars(stmt))


def _match(session: Session, staff: StaffUser | None, name: str,
           active_only: bool) -> list[Cohort] | _Ambiguous:
    """Cohorts ``name`` means among those ``staff`` may address (every cohort for None)."""
    return _match_in(_in_reach(session, staff), name, active_only)


def _match_in(cohorts: list[Cohort], name: str, active_only: bool) -> list[Cohort] | _Ambiguous:
    """Cohorts ``name`` means: SEMUA, a cohort name, "Institution/Name", or a join code."""
    wanted = _strip_edges(name).casefold()
    if not wanted:
        return []
    cohorts = [c for c in cohorts if c.active or not active_only]
    if wanted in ALL_COHORTS:
        return [c for c in cohorts if c.active]
    matches = [c for c in cohorts if " ".join(c.name.split()).casefold() == wanted]
    if not matches and "/" in wanted:
        inst, _, cohort = (part.strip() for part in wanted.rpartition("/"))
        matches = [c for c in cohorts if " ".join(c.institution.name.split()).casefold() == inst
                   and " ".join(c.name.split()).casefold() == cohort]
    if not matches and " " not in wanted:
        matches = [c for c in cohorts if c.join_code.casefold() == wanted]
    if len(matches) > 1:
        return _Ambiguous(name, [f"{c.institution.name}/{c.name}" for c in matches])
    return matches


def _split_target(session: Session, staff: StaffUser,
                  argument: str) -> tuple[list[Cohort], str] | _Ambiguous | None:
    """``<paket|SEMUA> <teks>`` → (cohorts, text); the longest leading words naming a cohort win
    ("Menjahit 1 Besok ada bursa kerja" is cohort "Menjahit 1"). None when no prefix does."""
    cohorts = _in_reach(session, staff)
    longest = max([len(f"{c.institution.name}/{c.name}") for c in cohorts]
                  + [len(c.join_code) for c in cohorts] + [len(ALL_COHORTS[0])])
    spans = [m.span() for m in re.finditer(r"\S+", argument)]
    for n in range(len(spans), 0, -1):
        end = spans[n - 1][1]
        if len(_strip_edges(argument[:end])) > longest:  # longer than any cohort's name
            continue
        found = _match_in(cohorts, argument[:end], active_only=True)
        if isinstance(found, _Ambiguous):
            return found
        if found:
            rest = argument[end:].strip()
            return found, rest.lstrip(_EDGE_PUNCTUATION).strip()
    return None


# --- answers --------------------------------------------------------------------------------

def _text(settings: Settings, key: str, **values: object) -> str:
    return catalog_text(settings.app.language, key, **values)


def _reply(session: Session, settings: Settings, staff: StaffUser, key: str,
           **values: object) -> None:
    enqueue(session, phone=staff.phone, kind="staff_reply", body=_text(settings, key, **values))


def _refuse(session: Session, settings: Settings, staff: StaffUser, command: str, reason: str,
            key: str, **values: object) -> None:
    audit(session, staff.name, "whatsapp.refused", phone=staff.phone, command=command,
          reason=reason, role=staff.role)
    _reply(session, settings, staff, key, **values)


def _unknown_cohort(session: Session, settings: Settings, staff: StaffUser, command: str,
                    name: str) -> None:
    """Name the cohorts this user may address; a viewer naming another institution's cohort
    hears that it is not theirs."""
    reachable = [c for c in _in_reach(session, staff) if c.active]
    if staff.role not in BROADCAST_ROLES and _match(session, None, name, active_only=False):
        _refuse(session, settings, staff, command, "other institution",
                "staff.not_allowed_cohort", cohort=_strip_edges(name))
        return
    labels = cohort_labels(session, reachable)
    names = [labels[c.id] for c in reachable]
    known = ", ".join(names[:MAX_KNOWN_LISTED]) or "-"
    if len(names) > MAX_KNOWN_LISTED:
        known = _text(settings, "staff.summary_more", names=known,
                      more=len(names) - MAX_KNOWN_LISTED)
    audit(session, staff.name, "whatsapp.refused", phone=staff.phone, command=command,
          reason="unknown cohort", cohort=_strip_edges(name))
    _reply(session, settings, staff, "staff.unknown_cohort", cohort=_strip_edges(name),
           known=known)


def _ambiguous(session: Session, settings: Settings, staff: StaffUser, command: str,
               found: _Ambiguous) -> None:
    audit(session, staff.name, "whatsapp.refused", phone=staff.phone, command=command,
          reason="ambiguous cohort", cohort=found.name, options=found.options)
    _reply(session, settings, staff, "staff.ambiguous_cohort", cohort=_strip_edges(found.name),
           options=", ".join(found.options))
