"""Join codes of cohorts: random, from an alphabet without look-alikes (no 0/O, 1/I/L).

A graduate types the code after ``GABUNG``; staff see it only in the console (cohort chat
page) and may draw a new one there. A code says nothing about the cohort's name, so it cannot
be guessed from it, and 31^8 codes cannot be tried one by one (GABUNG is limited per number).
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 8


def random_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def new_join_code(session: Session, taken: set[str] | None = None) -> str:
    """A random code no cohort has (``taken``: codes handed out but not yet flushed)."""
    from bot.models import Cohort

    while True:
        code = random_code()
        if taken is not None and code in taken:
            continue
        if session.scalar(select(Cohort.id).where(Cohort.join_code == code)) is None:
            if taken is not None:
                taken.add(code)
            return code
