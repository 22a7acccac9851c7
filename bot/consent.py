"""Consent: who may be messaged, and the history of why (``ConsentEvent`` rows).

A graduate opts out with BERHENTI/STOP and back in with MULAI/START
(``bot.conversations.keywords``); Twilio refusing a send with error 21610 (the number
unsubscribed from the sender) opts them out too, as ``blocked``. The state is on the graduate
(``Graduate.opted_out``), so it holds across restarts; the outbox suppresses every message to an
opted-out graduate except the opt-out confirmation (``bot.outbox.ALWAYS_SENT``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from bot.models import (
    CONSENT_BLOCKED,
    CONSENT_OPT_IN,
    CONSENT_OPT_OUT,
    ConsentEvent,
    Graduate,
    Message,
    utcnow,
)

log = logging.getLogger(__name__)

# Twilio: "Attempt to send to unsubscribed recipient".
TWILIO_UNSUBSCRIBED = "21610"


def record_event(session: Session, graduate: Graduate, event: str, *,
                 message_id: int | None = None, detail: str | None = None,
                 now: datetime | None = None) -> ConsentEvent:
    """Add one consent event to the graduate's history. The caller commits."""
    entry = ConsentEvent(graduate_id=graduate.id, event=event, message_id=message_id,
                         detail=detail, created_at=now or utcnow())
    session.add(entry)
    return entry


def opt_out(session: Session, graduate: Graduate, *, message_id: int | None = None,
            now: datetime | None = None) -> ConsentEvent:
    """The graduate asked to stop (``message_id``: their inbound message)."""
    now = now or utcnow()
    graduate.opted_out = True
    graduate.opted_out_at = now
    return record_event(session, graduate, CONSENT_OPT_OUT, message_id=message_id, now=now)


def opt_in(session: Session, graduate: Graduate, *, message_id: int | None = None,
           now: datetime | None = None) -> ConsentEvent:
    """The graduate asked for messages again (``message_id``: their inbound message)."""
    graduate.opted_out = False
    graduate.opted_out_at = None
    return record_event(session, graduate, CONSENT_OPT_IN, message_id=message_id, now=now)


def blocked_by_provider(session: Session, message: Message, detail: str, *,
                        now: datetime | None = None) -> ConsentEvent | None:
    """Twilio refused ``message`` because the number unsubscribed (21610): opt the graduate
    out, recording the refused message and Twilio's words. None (nothing recorded) when the row
    has no graduate or the graduate is opted out already. The caller commits."""
    if message.graduate_id is None:
        log.warning("message %s to %s was refused as unsubscribed (21610); no graduate to opt "
                    "out", message.id, message.phone)
        return None
    graduate = session.get(Graduate, message.graduate_id)
    if graduate is None:
        return None
    if graduate.opted_out:
        log.info("message %s was refused as unsubscribed (21610); graduate %s is opted out "
                 "already", message.id, graduate.id)
        return None
    now = now or utcnow()
    graduate.opted_out = True
    graduate.opted_out_at = now
    log.warning("graduate %s opted out: Twilio refused message %s as unsubscribed (21610)",
                graduate.id, message.id)
    return record_event(session, graduate, CONSENT_BLOCKED, message_id=message.id,
                        detail=detail, now=now)
