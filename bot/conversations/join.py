"""Joining a cohort from an unknown number: GABUNG <kode paket> → ask the name → welcome.

The graduate row is created at GABUNG, inactive (no check-ins, no broadcasts) and named after
the WhatsApp profile for now, with a ``join`` conversation waiting for the name; the name makes
it active. Until then replies are addressed by phone (the outbox would suppress them for an
inactive graduate) and filed under the graduate when the join completes.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.catalog import text
from bot.config import Settings
from bot.conversations.turn import JOIN_FLOW, Turn
from bot.models import Cohort, Conversation, Graduate, Message
from bot.outbox import enqueue

log = logging.getLogger(__name__)

ASK_NAME = "ask_name"
NAME_MAX = 200


def find_cohort(session: Session, code: str) -> Cohort | None:
    """The active cohort with this join code (case-insensitive)."""
    return session.scalar(select(Cohort).where(
        func.upper(Cohort.join_code) == code.strip().upper(), Cohort.active.is_(True)))


def start_join(session: Session, settings: Settings, phone: str, code: str,
               profile_name: str | None, inbound: Message, now: datetime) -> None:
    """Creates the (inactive) graduate in the cohort with this join code and asks the name."""
    cohort = find_cohort(session, code)
    if cohort is None:
        log.info("join from %s with an unknown code", phone)
        enqueue(session, phone=phone, kind="reply",
                body=text(settings.app.language, "join.bad_code", code=code.strip().upper()))
        return
    graduate = Graduate(cohort_id=cohort.id, name=(profile_name or phone).strip()[:NAME_MAX],
                        phone=phone, skill=cohort.skill, language=settings.app.language,
                        active=False)
    session.add(graduate)
    session.flush()
    inbound.graduate_id = graduate.id
    inbound.cohort_id = cohort.id
    conversation = Conversation(graduate_id=graduate.id, flow=JOIN_FLOW, state=ASK_NAME,
                                misses=0, data={})
    session.add(conversation)
    log.info("number %s is joining cohort %s (graduate %s)", phone, cohort.id, graduate.id)
    Turn(session, settings, graduate, "", now, conversation).say("join.ask_name",
                                                                  cohort=cohort.name)


def change_cohort(turn: Turn, code: str | None) -> None:
    """A joining number sent GABUNG again: switches to that cohort and asks the name again."""
    cohort = find_cohort(turn.session, code or "")
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
    graduate.active = True
    turn.end_conversation()
    # File the messages exchanged while joining under the graduate, now that they are active.
    turn.session.execute(
        update(Message)
        .where(Message.phone == graduate.phone, Message.graduate_id.is_(None))
        .values(graduate_id=graduate.id, cohort_id=graduate.cohort_id)
        .execution_options(synchronize_session=False))
    cohort = turn.session.get(Cohort, graduate.cohort_id)
    log.info("graduate %s joined cohort %s", graduate.id, graduate.cohort_id)
    turn.say("join.welcome", name=name, cohort=cohort.name if cohort else "")
