"""Keywords: commands a graduate can send at any time, also in the middle of a check-in.

BANTUAN/MENU/HELP, LOWONGAN, MINAT <kode>, CEK, BERHENTI/STOP, MULAI/START and GABUNG <kode>
(``bot.understand.parse_keyword`` recognises them). Each handler answers from the catalog.
The staff commands SIARAN and REKAP are not handled here (yet): ``handle_keyword`` returns
False for them and the router treats them like any other text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import func, or_, select

from bot import consent
from bot.broadcasts import deadline_text
from bot.conversations import checkin
from bot.conversations.turn import Turn
from bot.models import CheckInRound, Interest, JobOpening
from bot.understand import Keyword

log = logging.getLogger(__name__)

MAX_JOBS_LISTED = 5


def show_menu(turn: Turn, argument: str | None) -> None:
    """Sends the menu of what a graduate can type."""
    turn.say("menu")
    turn.graduate.last_menu_at = turn.now


def list_jobs(turn: Turn, argument: str | None) -> None:
    """Sends up to five open job openings that fit the graduate's skill, newest first."""
    openings = turn.session.scalars(
        select(JobOpening)
        .where(JobOpening.closed.is_(False),
               or_(JobOpening.deadline.is_(None), JobOpening.deadline >= turn.today))
        .order_by(JobOpening.created_at.desc(), JobOpening.id.desc()))
    skill = turn.graduate.skill or (turn.graduate.cohort.skill if turn.graduate.cohort else None)
    fitting = []
    for job in openings:
        if skill_fits(job.skill, skill):
            fitting.append(job)
            if len(fitting) == MAX_JOBS_LISTED:
                break
    if not fitting:
        turn.say("jobs.none")
        return
    items = [turn.say_text("jobs.item", title=job.title, employer=job.employer,
                           location=job.location, code=job.code,
                           deadline=deadline_text(turn.language, job.deadline))
             for job in fitting]
    body = "\n\n".join([turn.say_text("jobs.header"), "\n".join(items),
                        turn.say_text("jobs.footer")])
    turn.say_body(body)


def record_interest(turn: Turn, argument: str | None) -> None:
    """Records the graduate's interest in the job opening with this code (once)."""
    code = (argument or "").strip().lstrip("#").upper()
    if not code:
        turn.say("interest.ask_code")
        return
    job = turn.session.scalar(select(JobOpening).where(func.upper(JobOpening.code) == code))
    if job is None:
        turn.say("interest.unknown_code", code=code)
        return
    if not job.is_open(turn.today):
        turn.say("interest.closed", title=job.title, code=job.code)
        return
    already = turn.session.scalar(select(Interest.id).where(
        Interest.job_id == job.id, Interest.graduate_id == turn.graduate.id))
    if already is not None:
        turn.say("interest.already", title=job.title, code=job.code)
        return
    turn.session.add(Interest(job_id=job.id, graduate_id=turn.graduate.id, created_at=turn.now))
    log.info("graduate %s is interested in job %s", turn.graduate.id, job.code)
    turn.say("interest.recorded", title=job.title, employer=job.employer, code=job.code)


def start_checkin(turn: Turn, argument: str | None) -> None:
    """Starts a check-in for this graduate alone, now (a round with trigger "self"); in the
    middle of an open one, asks its current question again instead, keeping what was said."""
    cohort = turn.graduate.cohort
    if not turn.graduate.can_receive:
        log.info("graduate %s asked for a check-in but cannot receive it (opted out or inactive)",
                 turn.graduate.id)
        return
    if cohort is None:
        show_menu(turn, argument)
        return
    if checkin.ask_again(turn):
        return
    round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=turn.now, trigger="self")
    turn.session.add(round_)
    turn.session.flush()
    checkin.begin_checkin(turn.session, turn.settings, turn.graduate, round_)


def opt_out(turn: Turn, argument: str | None) -> None:
    """Opts the graduate out of every message but this confirmation; ends any open check-in."""
    graduate = turn.graduate
    consent.opt_out(turn.session, graduate, message_id=_inbound_id(turn), now=turn.now)
    checkin.close_open_checkin(turn)
    turn.end_conversation()
    log.info("graduate %s opted out", graduate.id)
    turn.say("optout_confirm", kind="optout_confirm")


def opt_in(turn: Turn, argument: str | None) -> None:
    """Opts the graduate back in."""
    graduate = turn.graduate
    consent.opt_in(turn.session, graduate, message_id=_inbound_id(turn), now=turn.now)
    log.info("graduate %s opted back in", graduate.id)
    turn.say("optin_confirm")


def _inbound_id(turn: Turn) -> int | None:
    return turn.inbound.id if turn.inbound is not None else None


def already_joined(turn: Turn, argument: str | None) -> None:
    """Tells a graduate on a roster which cohort they already belong to."""
    cohort = turn.graduate.cohort
    if cohort is None:
        show_menu(turn, argument)
        return
    turn.say("join.already", cohort=cohort.name)


HANDLERS: dict[str, Callable[[Turn, str | None], None]] = {
    "help": show_menu,
    "jobs": list_jobs,
    "interest": record_interest,
    "checkin": start_checkin,
    "stop": opt_out,
    "start": opt_in,
    "join": already_joined,
}


def handle_keyword(turn: Turn, keyword: Keyword) -> bool:
    """Run the keyword's handler; False when it is not a graduate keyword (SIARAN, REKAP)."""
    handler = HANDLERS.get(keyword.name)
    if handler is None:
        return False
    handler(turn, keyword.argument)
    return True


def skill_fits(job_skill: str | None, graduate_skill: str | None) -> bool:
    """An opening without a skill fits everyone; else either skill contains the other.

    A graduate whose skill (and cohort's skill) is unknown sees every opening.
    """
    wanted = (job_skill or "").strip().casefold()
    have = (graduate_skill or "").strip().casefold()
    if not wanted or not have:
        return True
    return wanted in have or have in wanted
