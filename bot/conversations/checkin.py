"""The check-in conversation, as a table of states (the shape of python-telegram-bot's
ConversationHandler).

Each state is a question. Its answer function stores what it understood on the progress report
and returns the next state, or None when it cannot place the reply::

    ASK_STATUS ─ employed ──────▶ ASK_EMPLOYER ─▶ ASK_USES_SKILL ─┐
               ├ employed + where ───────────────▶ ASK_USES_SKILL ─┤
               ├ self_employed ─▶ ASK_BUSINESS ───────────────────┤
               ├ self_employed + what ────────────────────────────┤
               ├ seeking ─────▶ ASK_JOB_ALERTS ───────────────────┤
               └ studying ────────────────────────────────────────┴▶ ASK_RATING ─▶ ASK_HELP ─▶ END

Every raw reply is kept in ``ProgressReport.raw_answers[question]``. A reply that cannot be
placed gets the question's hint (which repeats the question); after ``MAX_MISSES`` misses the
raw text stays on the report and the flow goes on to the state's ``skip_to``: nobody is stuck.
Keywords (``keywords``) are the fallbacks and work in any state; an open check-in older than
``scheduler.checkin_expires_after_days`` times out (``TIMEOUT``) and the reply is treated as if
no check-in were open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog import text
from bot.config import Settings
from bot.conversations.turn import CHECKIN_FLOW, Turn
from bot.models import (
    REPORT_COMPLETED,
    REPORT_OPEN,
    REPORT_UNANSWERED,
    CheckInRound,
    Conversation,
    Graduate,
    Message,
    ProgressReport,
    utcnow,
)
from bot.outbox import enqueue
from bot.understand import means_nothing, parse_rating, parse_status, parse_yes_no

log = logging.getLogger(__name__)

ASK_STATUS = "ask_status"
ASK_EMPLOYER = "ask_employer"
ASK_USES_SKILL = "ask_uses_skill"
ASK_BUSINESS = "ask_business"
ASK_JOB_ALERTS = "ask_job_alerts"
ASK_RATING = "ask_rating"
ASK_HELP = "ask_help"
END = "end"
TIMEOUT = "timeout"  # not a table state: an expired check-in is closed, the reply falls through

MAX_MISSES = 2

Answer = Callable[[ProgressReport, str], str | None]


# --- one function per state -----------------------------------------------------------------

def answer_status(report: ProgressReport, reply: str) -> str | None:
    """Stores the employment status; asks where, what business or about job alerts next."""
    status, detail = parse_status(reply)
    if status is None:
        return None
    report.employment_status = status
    if status == "employed":
        if detail:
            report.employer = detail
            return ASK_USES_SKILL
        return ASK_EMPLOYER
    if status == "self_employed":
        if detail:
            report.employer = detail
            return ASK_RATING
        return ASK_BUSINESS
    if status == "seeking":
        return ASK_JOB_ALERTS
    return ASK_RATING


def answer_employer(report: ProgressReport, reply: str) -> str | None:
    """Stores where the graduate works; asks whether the job uses the trained skill."""
    if not _has_words(reply):
        return None
    report.employer = _clean(reply)
    return ASK_USES_SKILL


def answer_uses_skill(report: ProgressReport, reply: str) -> str | None:
    """Stores whether the job uses the trained skill; asks for the skill rating."""
    answer = parse_yes_no(reply)
    if answer is None:
        return None
    report.uses_training_skill = answer
    return ASK_RATING


def answer_business(report: ProgressReport, reply: str) -> str | None:
    """Stores what business the graduate runs; asks for the skill rating."""
    if not _has_words(reply):
        return None
    report.employer = _clean(reply)
    return ASK_RATING


def answer_job_alerts(report: ProgressReport, reply: str) -> str | None:
    """Stores whether the graduate wants job alerts; asks for the skill rating."""
    answer = parse_yes_no(reply)
    if answer is None:
        return None
    report.wants_job_alerts = answer
    return ASK_RATING


def answer_rating(report: ProgressReport, reply: str) -> str | None:
    """Stores the 1–5 skill self-rating; asks about obstacles and help needed."""
    rating = parse_rating(reply)
    if rating is None:
        return None
    report.skill_rating = rating
    return ASK_HELP


def answer_help(report: ProgressReport, reply: str) -> str | None:
    """Stores the obstacle or help needed (None for "tidak ada"); ends the check-in."""
    if means_nothing(reply):
        report.needs_help = None
        return END
    if not _has_words(reply):
        return None
    report.needs_help = _clean(reply)
    return END


# --- the table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    """One state: the raw-answer key, the catalog texts, the answer function, where a skip goes."""

    key: str  # raw_answers[key]
    ask: str  # catalog key of the question (sent when the flow arrives here)
    hint: str  # catalog key of the hint, which repeats the question
    answer: Answer
    skip_to: str  # the next state after MAX_MISSES replies it could not place


STATES: dict[str, Question] = {
    ASK_STATUS: Question("status", "checkin.prompt", "checkin.hint_status",
                         answer_status, skip_to=ASK_RATING),
    ASK_EMPLOYER: Question("employer", "checkin.ask_employer", "checkin.hint_employer",
                           answer_employer, skip_to=ASK_USES_SKILL),
    ASK_USES_SKILL: Question("uses_skill", "checkin.ask_uses_skill", "checkin.hint_uses_skill",
                             answer_uses_skill, skip_to=ASK_RATING),
    ASK_BUSINESS: Question("business", "checkin.ask_business", "checkin.hint_business",
                           answer_business, skip_to=ASK_RATING),
    ASK_JOB_ALERTS: Question("job_alerts", "checkin.ask_job_alerts", "checkin.hint_job_alerts",
                             answer_job_alerts, skip_to=ASK_RATING),
    ASK_RATING: Question("rating", "checkin.ask_rating", "checkin.hint_rating",
                         answer_rating, skip_to=ASK_HELP),
    ASK_HELP: Question("help", "checkin.ask_help", "checkin.hint_help",
                       answer_help, skip_to=END),
}


def _check_table(states: dict[str, Question]) -> None:
    """Refuse a table whose skips lead nowhere or whose texts are missing, at import time."""
    for name, question in states.items():
        if question.skip_to not in states and question.skip_to != END:
            raise ValueError(f"check-in state {name!r} skips to unknown state "
                             f"{question.skip_to!r}")
        for key in (question.ask, question.hint):
            text("id", key, name="", cohort="")  # raises CatalogError naming the key


_check_table(STATES)


# --- running it -----------------------------------------------------------------------------

def _open_question(turn: Turn) -> tuple[ProgressReport, Question] | None:
    """The graduate's open check-in and its current question; None when there is none (a
    check-in past its expiry is closed as unanswered here)."""
    conversation = turn.conversation
    if conversation is None or conversation.flow != CHECKIN_FLOW:
        return None
    report = (turn.session.get(ProgressReport, conversation.report_id)
              if conversation.report_id is not None else None)
    if report is None or report.status != REPORT_OPEN:
        return None
    expires = timedelta(days=turn.settings.scheduler.checkin_expires_after_days)
    if report.created_at + expires <= turn.now:
        log.info("check-in %s of graduate %s timed out", report.id, turn.graduate.id)
        _close(report, REPORT_UNANSWERED, turn)
        return None
    question = STATES.get(conversation.state)
    if question is None:
        log.error("conversation of graduate %s is in unknown check-in state %r; ended",
                  turn.graduate.id, conversation.state)
        return None
    return report, question


def ask_again(turn: Turn) -> bool:
    """Say the open check-in's current question again (the graduate sent CEK in the middle of
    one); False when no check-in is open."""
    found = _open_question(turn)
    if found is None:
        return False
    turn.say(found[1].ask, name=turn.graduate.name)
    return True


def handle_reply(turn: Turn) -> bool:
    """Take one reply in the graduate's open check-in; False if it is no longer open."""
    conversation = turn.conversation
    assert conversation is not None and conversation.flow == CHECKIN_FLOW
    found = _open_question(turn)
    if found is None:
        return False
    report, question = found

    _keep_raw(report, question.key, turn.text)
    if report.responded_at is None:
        report.responded_at = turn.now
    next_state = question.answer(report, turn.text)
    if next_state is None:
        conversation.misses = (conversation.misses or 0) + 1
        if conversation.misses < MAX_MISSES:
            turn.say(question.hint, name=turn.graduate.name)
            return True
        # The reply itself is not logged (personal data): it is in the report's raw answers.
        log.info("check-in %s: a reply of %d characters not understood twice, moving on "
                 "from %s", report.id, len(turn.text or ""), conversation.state)
        next_state = question.skip_to
    conversation.misses = 0
    conversation.state = next_state
    if next_state == END:
        _close(report, REPORT_COMPLETED, turn)
        turn.end_conversation()
        turn.say("checkin.thanks", name=turn.graduate.name)
    else:
        turn.say(STATES[next_state].ask, name=turn.graduate.name)
    return True


def begin_checkin(session: Session, settings: Settings, graduate: Graduate,
                  round_: CheckInRound) -> Message | None:
    """Open the graduate's report for ``round_``, set them at ASK_STATUS and queue the prompt.

    The graduate's previous open report is closed as unanswered. Returns the queued prompt, or
    None (and does nothing) when the graduate already has a report in this round or cannot
    receive messages (inactive or opted out).
    """
    if not graduate.can_receive:
        return None
    # Serialise with the webhook handling this graduate's messages (a no-op on SQLite).
    session.execute(select(Graduate.id).where(Graduate.id == graduate.id).with_for_update())
    if session.scalar(select(ProgressReport.id).where(
            ProgressReport.round_id == round_.id,
            ProgressReport.graduate_id == graduate.id)) is not None:
        return None
    now = utcnow()
    report = ProgressReport(round_id=round_.id, graduate_id=graduate.id, raw_answers={})
    try:
        with session.begin_nested():
            session.add(report)
    except IntegrityError:
        return None  # another process opened the same report first
    session.execute(
        update(ProgressReport)
        .where(ProgressReport.graduate_id == graduate.id, ProgressReport.status == REPORT_OPEN,
               ProgressReport.id != report.id)
        .values(status=REPORT_UNANSWERED, closed_at=now)
        .execution_options(synchronize_session="fetch"))
    conversation = session.get(Conversation, graduate.id)
    if conversation is None:
        conversation = Conversation(graduate_id=graduate.id)
        session.add(conversation)
    conversation.flow = CHECKIN_FLOW
    conversation.state = ASK_STATUS
    conversation.report_id = report.id
    conversation.misses = 0
    conversation.data = {}
    cohort_name = round_.cohort.name
    language = graduate.language or settings.app.language
    return enqueue(
        session, graduate=graduate, kind="checkin",
        body=text(language, "checkin.prompt", name=graduate.name, cohort=cohort_name),
        dedupe_key=f"checkin:{round_.id}:{graduate.id}", round_id=round_.id,
        content_variables={"1": graduate.name, "2": cohort_name})


def close_open_checkin(turn: Turn) -> None:
    """End the graduate's open check-in, if any, as unanswered (opt-out)."""
    conversation = turn.conversation
    if conversation is None or conversation.flow != CHECKIN_FLOW:
        return
    if conversation.report_id is not None:
        report = turn.session.get(ProgressReport, conversation.report_id)
        if report is not None and report.status == REPORT_OPEN:
            _close(report, REPORT_UNANSWERED, turn)
    turn.end_conversation()


def _close(report: ProgressReport, status: str, turn: Turn) -> None:
    report.status = status
    if status == REPORT_COMPLETED:
        report.completed_at = turn.now
    else:
        report.closed_at = turn.now


def _keep_raw(report: ProgressReport, key: str, reply: str) -> None:
    # A new dict, so the JSON column sees the change (it does not track in-place mutation).
    answers = dict(report.raw_answers or {})
    answers[key] = [*answers.get(key, []), reply]
    report.raw_answers = answers


def _has_words(reply: str) -> bool:
    return any(ch.isalnum() for ch in reply)


def _clean(reply: str) -> str:
    return " ".join(reply.split())
