"""Joining a cohort from an unknown number: GABUNG <kode paket> → ask the name → welcome.

The graduate row is created at GABUNG, inactive (no check-ins, no broadcasts) and named after
the WhatsApp profile for now, with a ``join`` conversation waiting for the name. Until it is
active, replies are addressed by phone (the outbox would suppress them for an inactive
graduate) and filed under the graduate when the join completes.

With ``joining.require_approval`` (the default) the name does not make the graduate active: it
waits as a join request (``join_status = "pending"``) until staff approve it in the console
(``bot.staff.joins``), and a wrong code is answered exactly like a right one (the request then
has no cohort and staff can only reject it), so nobody learns from the answers which codes
exist. Without approval the name makes the graduate active at once and a wrong code is told.
GABUNG messages per number are limited to ``joining.max_attempts_per_day``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.catalog import text
from bot.config import Settings
from bot.conversations.turn import JOIN_FLOW, Turn
from bot.models import Cohort, Conversation, Graduate, Message
from bot.outbox import enqueue
from bot.throttle import locked_row

log = logging.getLogger(__name__)

ASK_NAME = "ask_name"
NAME_MAX = 200
PENDING = "pending"
REJECTED = "rejected"
ATTEMPT_WINDOW = timedelta(days=1)


def attempt_allowed(session: Session, settings: Settings, phone: str, now: datetime) -> bool:
    """Counts one GABUNG from ``phone``; False beyond ``joining.max_attempts_per_day``."""
    row = locked_row(session, f"join:{phone}", now, ATTEMPT_WINDOW)
    if now - row.window_start > ATTEMPT_WINDOW:
        row.failures, row.window_start = 0, now
    row.failures += 1
    if row.failures > settings.joining.max_attempts_per_day:
        log.info("GABUNG from %s refused: %s attempts today", phone, row.failures)
        return False
    return True


def find_cohort(session: Session, code: str) -> Cohort | None:
    """The active cohort with this join code (case-insensitive)."""
    return session.scalar(select(Cohort).where(
        func.upper(Cohort.join_code) == code.strip().upper(), Cohort.active.is_(True)))


def start_join(session: Session, settings: Settings, phone: str, code: str,
               profile_name: str | None, inbound: Message, now: datetime) -> None:
    """Creates the (inactive) graduate in the cohort with this join code and asks the name."""
    if not attempt_allowed(session, settings, phone, now):
        return
    approval = settings.joining.require_approval
    cohort = find_cohort(session, code)
    if cohort is None:
        log.info("join from %s with an unknown code", phone)
        if not approval:
            enqueue(session, phone=phone, kind="reply", body=text(
                settings.app.language, "join.bad_code", code=code.strip().upper()))
            return
    graduate = Graduate(cohort_id=cohort.id if cohort else None,
                        name=(profile_name or phone).strip()[:NAME_MAX],
                        phone=phone, skill=cohort.skill if cohort else None,
                        language=settings.app.language, active=False,
                        join_status=PENDING if approval else None)
    session.add(graduate)
    session.flush()
    inbound.graduate_id = graduate.id
    inbound.cohort_id = graduate.cohort_id
    conversation = Conversation(graduate_id=graduate.id, flow=JOIN_FLOW, state=ASK_NAME,
                                misses=0, data={})
    session.add(conversation)
    log.info("number %s is joining cohort %s (graduate %s)", phone, graduate.cohort_id,
             graduate.id)
    turn = Turn(session, settings, graduate, "", now, conversation)
    if approval:
        turn.say("join.ask_name_request")
    else:
        turn.say("join.ask_name", cohort=cohort.name)


def change_cohort(turn: Turn, code: str | None) -> None:
    """A joining number sent GABUNG again: switches to that cohort and asks the name again."""
    if not attempt_allowed(turn.session, turn.settings, turn.graduate.phone, turn.now):
        return
    cohort = find_cohort(turn.session, code or "")
    if turn.settings.joining.require_approval:
        turn.graduate.cohort_id = cohort.id if cohort else None
        turn.graduate.skill = cohort.skill if cohort else None
        turn.say("join.ask_name_request")
        return
    if cohort is None:
        turn.say("join.bad_code", code=(code or "").strip().upper())
        return
    turn.graduate.cohort_id = cohort.id
    turn.graduate.skill = cohort.skill
    turn.say("join.ask_name", cohort=cohort.name)


def answer_name(turn: Turn) -> None:
    """Stores the name, makes the graduate active and welcomes them."""
    name = " ".join(turn.text.split())[:NAME_MAX]
    if not any(ch.isalpha() for ch in name):
        turn.say("join.hint_name")
        return
    graduate = turn.graduate
    graduate.name = name
    if graduate.join_status == PENDING:
        turn.say("join.pending", name=name)
        turn.end_conversation()
        log.info("graduate %s asks to join cohort %s", graduate.id, graduate.cohort_id)
        return
    graduate.active = True
    turn.end_conversation()
    file_join_messages(turn.session, graduate)
    cohort = turn.session.get(Cohort, graduate.cohort_id)
    log.info("graduate %s joined cohort %s", graduate.id, graduate.cohort_id)
    turn.say("join.welcome", name=name, cohort=cohort.name if cohort else "")


def file_join_messages(session: Session, graduate: Graduate) -> None:
    """File the messages exchanged while joining under the graduate, now they are active."""
    session.execute(
        update(Message)
        .where(Message.phone == graduate.phone, Message.graduate_id.is_(None))
        .values(graduate_id=graduate.id, cohort_id=graduate.cohort_id)
        .execution_options(synchronize_session=False))
