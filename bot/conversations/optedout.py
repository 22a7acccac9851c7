"""A graduate who opted out (BERHENTI/STOP, or Twilio's 21610) and writes again.

Every reply to them is suppressed by the outbox, so without this they would hear nothing at all.
They get one short reply saying how to come back (``MULAI``), at most once per ``HINT_EVERY``:
a chatty number is not answered message after message, and the opt-out confirmation (which says
the same) counts as that reply. It always answers a message they have just sent, so it goes out
inside their 24-hour window as a plain reply. MULAI/START and BERHENTI/STOP are left to the
keywords.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from bot.conversations.turn import Turn
from bot.models import OUTBOUND, Message
from bot.understand import parse_keyword

log = logging.getLogger(__name__)

HINT_EVERY = timedelta(hours=24)
SESSION_WINDOW = timedelta(hours=24)  # WhatsApp's window for replies after the graduate wrote
HINT_KIND = "optout_reminder"  # in bot.outbox.ALWAYS_SENT: sent although opted out
# Messages that already told the graduate how to come back.
_TOLD = (HINT_KIND, "optout_confirm")


def answer_opted_out(turn: Turn) -> bool:
    """True when the message was an opted-out graduate's (answered with the hint or not)."""
    graduate = turn.graduate
    if not graduate.opted_out or turn.joining:
        return False
    keyword = parse_keyword(turn.text) if turn.text else None
    if keyword is not None and keyword.name in ("start", "stop"):
        return False
    wrote_at = graduate.last_inbound_at
    if wrote_at is None or turn.now - wrote_at >= SESSION_WINDOW:
        # Handled a day late (no dispatcher ran): WhatsApp would refuse a plain reply now.
        log.info("graduate %s is opted out; their message is too old to answer", graduate.id)
        return True
    told = turn.session.scalar(
        select(Message.id).where(Message.graduate_id == graduate.id,
                                 Message.direction == OUTBOUND, Message.kind.in_(_TOLD),
                                 Message.created_at > turn.now - HINT_EVERY).limit(1))
    if told is not None:
        log.info("graduate %s is opted out and was told how to come back less than %s ago",
                 graduate.id, HINT_EVERY)
        return True
    log.info("graduate %s is opted out and wrote: told how to come back (MULAI)", graduate.id)
    turn.say("optout_reminder", kind=HINT_KIND)
    return True
