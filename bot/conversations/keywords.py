"""Keywords: commands a graduate can send at any time, also in the middle of a check-in.

BANTUAN/MENU/HELP, LOWONGAN, MINAT <kode>, CEK, BERHENTI/STOP, MULAI/START and GABUNG <kode>
(``bot.understand.parse_keyword`` recognises them). Each handler answers from the catalog.
The staff commands SIARAN and REKAP are not handled here (yet): ``handle_keyword`` returns
False for them and the router treats them like any other text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, or_, select

from bot import consent
from bot.broadcasts import deadline_text
from bot.conversations import checkin
from bot.conversations.turn import Turn
from bot.models import OUTBOUND, Broadcast, CheckInRound, Interest, JobOpening, Message
from bot.understand import Keyword, read_interest

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


RECENT_OPENING = timedelta(days=7)  # how long "minat" without a code means the last opening


def find_job(turn: Turn, codes: tuple[str, ...]) -> JobOpening | None:
    """The job opening whose code is one of ``codes`` (the words of a message), if any."""
    if not codes:
        return None
    return turn.session.scalars(
        select(JobOpening).where(func.upper(JobOpening.code).in_(codes))
        .order_by(JobOpening.closed, JobOpening.created_at.desc())).first()


def recent_openings(turn: Turn) -> list[JobOpening]:
    """The open job openings sent to this graduate in the last ``RECENT_OPENING``, newest
    first."""
    since = turn.now - RECENT_OPENING
    jobs = turn.session.scalars(
        select(JobOpening).join(Broadcast, Broadcast.job_id == JobOpening.id)
        .join(Message, Message.broadcast_id == Broadcast.id)
        .where(Message.graduate_id == turn.graduate.id, Message.direction == OUTBOUND,
               Message.kind == "job_opening", Message.created_at >= since)
        .order_by(Message.id.desc())).all()
    return [job for job in dict.fromkeys(jobs) if job.is_open(turn.today)]


def last_message_was_opening(turn: Turn) -> JobOpening | None:
    """The job opening the graduate's latest message from Kabar was (within
    ``RECENT_OPENING``), so that "mau kak" answers it; None otherwise."""
    latest = turn.session.scalars(
        select(Message).where(Message.graduate_id == turn.graduate.id,
                              Message.direction == OUTBOUND)
        .order_by(Message.id.desc()).limit(1)).first()
    if latest is None or latest.kind != "job_opening" or latest.broadcast_id is None or \
            latest.created_at < turn.now - RECENT_OPENING:
        return None
    broadcast = turn.session.get(Broadcast, latest.broadcast_id)
    job = turn.session.get(JobOpening, broadcast.job_id) if broadcast and broadcast.job_id \
        else None
    return job if job is not None and job.is_open(turn.today) else None


def record_interest(turn: Turn, argument: str | None) -> None:
    """Records the graduate's interest in a job opening (once): the one whose code is in the
    message ("MINAT J9UJ3 ya kak"), else the only opening sent to them lately, named in the
    confirmation; asks for the code when neither tells which."""
    interest = read_interest(argument or "")
    joined = "".join(interest.codes)
    job = find_job(turn, interest.codes + ((joined,) if joined else ()))
    if job is not None:
        _interested(turn, job, named=False)
        return
    recent = recent_openings(turn)
    if not interest.typed_codes and len(recent) == 1:
        _interested(turn, recent[0], named=True)
        return
    if interest.typed_codes:
        typed = next((c for c in interest.typed_codes if any(ch.isdigit() for ch in c)),
                     interest.typed_codes[0])
        turn.say("interest.unknown_code", code=typed)
        return
    turn.say("interest.ask_code")


def interest_without_keyword(turn: Turn) -> bool:
    """A message that answers a job opening without starting with MINAT: a job's code with
    other words ("sy minat kak J9UJ3"), "minat" right after openings, or "mau kak" right
    after one. Records it (``record_interest``) and returns True; False otherwise."""
    interest = read_interest(turn.text)
    # Only a message that says "minat", or that is short and holds a token which is no word
    # Kabar knows, is looked up: every other reply reaches its question without a query.
    codes = interest.codes if interest.says_interest else (
        interest.typed_codes if len(interest.codes) <= 3 else ())
    job = find_job(turn, codes)
    if job is not None:
        _interested(turn, job, named=False)
        return True
    if interest.says_interest:
        record_interest(turn, turn.text)
        return True
    if interest.soft and (job := last_message_was_opening(turn)) is not None:
        _interested(turn, job, named=True)
        return True
    return False


def _interested(turn: Turn, job: JobOpening, *, named: bool) -> None:
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
    turn.say("interest.recorded_named" if named else "interest.recorded", title=job.title,
             employer=job.employer, code=job.code)


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
