"""Which database a console page reads from: the replica when there is one, else the primary.

With ``database.read_url`` set, the console's pages read through ``page_session``, which is
``Database.replica_session``: the replica while it is usable, the primary otherwise. A browser
that has just changed something (any POST to the console) reads from the primary for
``database.primary_after_write_seconds``, so the page it is sent to next shows what it saved
even when the replica has not replayed it yet. Sign-in and the session check read the primary
always (``bot.staff.auth``), as do the roster import's progress pages.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from flask import request
from flask import session as cookie
from sqlalchemy.orm import Session

from bot import get_db, get_settings
from bot.staff import bp

PRIMARY_UNTIL_KEY = "_primary_until"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def page_session() -> AbstractContextManager[Session]:
    """A read session for a console page (see the module's text)."""
    db = get_db()
    if db.replica_sessions is None:
        return db.read_session()
    until = cookie.get(PRIMARY_UNTIL_KEY)
    if isinstance(until, int | float) and time.time() < until:
        return db.read_session()
    return db.replica_session()


@bp.after_request
def remember_write(response):
    """After a console request that may have written: read the primary for a while."""
    if request.method not in SAFE_METHODS and get_db().replica_sessions is not None:
        delay = get_settings().database.primary_after_write_seconds
        if delay > 0:
            cookie[PRIMARY_UNTIL_KEY] = time.time() + delay
    return response
