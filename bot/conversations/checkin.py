"""The check-in conversation, as a table of states (the shape of python-telegram-bot's
ConversationHandler).

Each state is a question. Its answer function stores what it understood on the progress report
(with how it was read, ``ProgressReport.readings``) and returns the next state, ``FOLLOW_UP``
to ask a narrower question first, or None when it cannot place the reply::

    ASK_STATUS ─ employed ──────▶ ASK_EMPLOYER ─▶ ASK_USES_SKILL ─┐
               ├ employed + where ───────────────▶ ASK_USES_SKILL ─┤
               ├ self_employed ─▶ ASK_BUSINESS ───────────────────┤
               ├ self_employed + what ────────────────────────────┤
               ├ seeking ─────▶ ASK_JOB_ALERTS ───────────────────┤
               └ studying ────────────────────────────────────────┴▶ ASK_RATING ─▶ ASK_HELP ─▶ END

Every raw reply is kept in ``ProgressReport.raw_answers[question]``. A state whose field is
already answered (a rating given before the status, say) is passed over.

Replies that cannot be placed:

- a greeting or a ping ("p", "halo kak") is no answer: the question is asked again, no miss;
- the status question is never dropped: the first miss gets a hint, the second the question
  as WhatsApp quick-reply buttons (``twilio.templates.status_buttons``), the third puts the
  graduate on the dashboard's call list ("not understood") and the check-in goes on; a later
  message that reads as a status (in words, not a bare number) is then taken as the status,
  whatever question is open, and never as a rating;
- any other question gives a hint after the first miss and moves on after ``MAX_MISSES``;
- a workplace or business must name one: laughter, emoji, a single letter, a job title alone
  or a bare generic word ("pabrik", "di rumah") get one follow-up ("Pabrik apa, di mana?"),
  and whatever comes then is kept.

Each miss is recorded for the learning page (``bot.learning``), and meanings staff taught
there are read before the rules. Keywords, job interest and media are handled by the router,
which then asks the open question again (``ask_again``). An open check-in older than
``scheduler.checkin_expires_after_days`` times out (``TIMEOUT``) and the reply is treated as if
no check-in were open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.catalog import text
from bot.config import Settings
from bot.conversations.turn import CHECKIN_FLOW, Turn
from bot.learning import learned_meanings, record_unplaced
from bot.models import (
    READ_BUTTON,
    READ_FOLLOWUP,
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
from bot.understand import (
    CHOICE,
    EMPLOYED,
    GUESS,
    SEEKING,
    SELF_EMPLOYED,
    STATUS_BY_CHOICE,
    WORDS,
    Reading,
    is_greeting,
    is_nonsense,
    is_ping,
    is_unsure,
    means_nothing,
    read_job_alerts_aside,
    read_place,
    read_rating,
    read_skill_use_aside,
    read_status,
    read_yes_no,
)

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
FOLLOW_UP = "follow_up"  # an answer function's "ask the narrower question first"

MAX_MISSES = 2
STATUS_BUTTONS_AFTER = 2  # misses of the status question before it comes as buttons
STATUS_GIVE_UP_AFTER = 3  # misses before the graduate goes on the call list
BUTTONS_KIND = "status_buttons"  # the outbox kind (and twilio.templates key) of the buttons


@dataclass
class Context:
    """What an answer function may use besides the reply: meanings staff taught Kabar
    ({reading: {phrase: meaning}}), the conversation's notes (``data``, changed in place) and
    whether the reply was a tapped button."""

    learned: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    button: bool = False

    def how(self, reading: Reading) -> str:
        return READ_BUTTON if self.button and reading.how == CHOICE else reading.how


Answer = Callable[[ProgressReport, str, Context], str | None]


def _set(report: ProgressReport, column: str, value: Any, how: str) -> None:
    """Store one answer and how it was read."""
    setattr(report, column, value)
    report.readings = {**(report.readings or {}), column: how}
    if column == "employment_status":
        report.status_guessed = how == GUESS


def _answered(report: ProgressReport, column: str) -> bool:
    readings = report.readings or {}
    return column in readings or getattr(report, column) is not None


# --- one function per state -----------------------------------------------------------------

def _after_status(report: ProgressReport, reading: Reading, how: str,
                  reply: str | None = None) -> str:
    """Store a status (and what it names); the state that comes next."""
    status = reading.value
    _set(report, "employment_status", status, how)
    report.not_understood = False
    if status == EMPLOYED and reply is not None and \
            (aside := read_skill_use_aside(reply)) is not None:
        # "kerja di garmen, tp ga sesuai jurusan": two answers in one message.
        _set(report, "uses_training_skill", aside.value, aside.how)
    if status == SEEKING and reply is not None and \
            (aside := read_job_alerts_aside(reply)) is not None:
        _set(report, "wants_job_alerts", aside.value, aside.how)
    if status == EMPLOYED:
        if reading.title and not report.job_title:
            report.job_title = reading.title
        place = read_place(reading.detail) if reading.detail else None
        if place is not None and place.specific:
            _set(report, "employer", place.name or reading.detail, how)
            return ASK_USES_SKILL
        return ASK_EMPLOYER
    if status == SELF_EMPLOYED:
        if reading.detail and read_place(reading.detail, business=True).specific:
            _set(report, "employer", reading.detail, how)
            return ASK_RATING
        return ASK_BUSINESS
    if status == SEEKING:
        return ASK_JOB_ALERTS
    return ASK_RATING


def answer_status(report: ProgressReport, reply: str, ctx: Context) -> str | None:
    """Stores the employment status; asks where, what business or about job alerts next."""
    reading = read_status(reply, ctx.learned.get("status"))
    if reading is None:
        return None
    return _after_status(report, reading, ctx.how(reading), reply)


def _answer_place(report: ProgressReport, reply: str, ctx: Context, *, business: bool,
                  then: str) -> str | None:
    if is_ping(reply):
        return None  # asked again as a greeting, the follow-up still to come
    place = read_place(reply, business=business)
    if place.title and not business and not report.job_title:
        report.job_title = place.title
    if place.specific:
        how = READ_FOLLOWUP if ctx.data.pop("follow_up", None) else WORDS
        _set(report, "employer", place.name, how)
        return then
    if not ctx.data.get("follow_up"):
        ctx.data["follow_up"] = _clean(reply) if _has_letters(reply) else ""
        return FOLLOW_UP
    # Asked once more: whatever they give is kept (the first answer when this one is empty);
    # laughter or an emoji is no answer yet.
    if is_nonsense(reply):
        return None
    first = ctx.data.pop("follow_up", "") or ""
    kept = _clean(reply) if _has_letters(reply) else first
    if place.title and kept == place.title and first:
        kept = first
    _set(report, "employer", kept or None, READ_FOLLOWUP)
    return then


def answer_employer(report: ProgressReport, reply: str, ctx: Context) -> str | None:
    """Stores where the graduate works (a job title apart); asks about the trained skill."""
    return _answer_place(report, reply, ctx, business=False, then=ASK_USES_SKILL)


def answer_uses_skill(report: ProgressReport, reply: str, ctx: Context) -> str | None:
    """Stores whether the job uses the trained skill; asks for the skill rating."""
    reading = read_yes_no(reply, ctx.learned.get("yes_no"))
    if reading is None:
        return None
    _set(report, "uses_training_skill", reading.value, ctx.how(reading))
    return ASK_RATING


def answer_business(report: ProgressReport, reply: str, ctx: Context) -> str | None:
    """Stores what business the graduate runs; asks for the skill rating."""
    return _answer_place(report, reply, ctx, business=True, then=ASK_RATING)


def answer_job_alerts(report: ProgressReport, reply: str, ctx: Context) -> str | None:
    """Stores whether the graduate wants job alerts; asks for the skill rating."""
    reading = read_yes_no(reply, ctx.learned.get("yes_no"))
    if reading is None:
        return None
    _set(report, "wants_job_alerts", reading.value, ctx.how(reading))
    return ASK_RATING


def answer_rating(report: ProgressReport, reply: str, ctx: Context) -> str | None:
    """Stores the 1–5 skill self-rating; asks about obstacles and help needed."""
    reading = read_rating(reply, ctx.learned.get("rating"))
    if reading is None:
        return None
    _set(report, "skill_rating", reading.value, ctx.how(reading))
    return ASK_HELP


def answer_help(report: ProgressReport, reply: str, ctx: Context) -> str | None:
    """Stores the obstacle or help needed (None for "tidak ada"); ends the check-in."""
    if means_nothing(reply, ctx.learned.get("nothing")):
        _set(report, "needs_help", None, WORDS)
        return END
    if not _has_letters(reply) or is_greeting(reply) or is_unsure(reply) or is_nonsense(reply):
        return None
    _set(report, "needs_help", _clean(reply), WORDS)
    return END


# --- the table ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    """One state: the raw-answer key, the column it fills, the catalog texts, the answer
    function and where a skip goes."""

    key: str  # raw_answers[key]
    column: str  # the ProgressReport column it fills
    ask: str  # catalog key of the question (sent when the flow arrives here)
    again: str  # catalog key of the question asked again after an interruption
    hint: str  # catalog key of the hint, which repeats the question
    answer: Answer
    skip_to: str  # the next state after MAX_MISSES replies it could not place
    follow_up: str | None = None  # catalog key of the narrower question (FOLLOW_UP)


STATES: dict[str, Question] = {
    ASK_STATUS: Question("status", "employment_status", "checkin.prompt", "checkin.ask_status",
                         "checkin.hint_status", answer_status, skip_to=ASK_RATING),
    ASK_EMPLOYER: Question("employer", "employer", "checkin.ask_employer",
                           "checkin.again_employer", "checkin.hint_employer", answer_employer,
                           skip_to=ASK_USES_SKILL, follow_up="checkin.follow_up_employer"),
    ASK_USES_SKILL: Question("uses_skill", "uses_training_skill", "checkin.ask_uses_skill",
                             "checkin.ask_uses_skill", "checkin.hint_uses_skill",
                             answer_uses_skill, skip_to=ASK_RATING),
    ASK_BUSINESS: Question("business", "employer", "checkin.ask_business",
                           "checkin.again_business", "checkin.hint_business", answer_business,
                           skip_to=ASK_RATING, follow_up="checkin.follow_up_business"),
    ASK_JOB_ALERTS: Question("job_alerts", "wants_job_alerts", "checkin.ask_job_alerts",
                             "checkin.again_job_alerts", "checkin.hint_job_alerts",
                             answer_job_alerts, skip_to=ASK_RATING),
    ASK_RATING: Question("rating", "skill_rating", "checkin.ask_rating", "checkin.ask_rating",
                         "checkin.hint_rating", answer_rating, skip_to=ASK_HELP),
    ASK_HELP: Question("help", "needs_help", "checkin.ask_help", "checkin.ask_help",
                       "checkin.hint_help", answer_help, skip_to=END),
}
# After a state is answered or skipped, the states that may come next, in order; the first
# one whose column is still empty is asked.
_AFTER: dict[str, tuple[str, ...]] = {
    ASK_EMPLOYER: (ASK_EMPLOYER, ASK_USES_SKILL, ASK_RATING, ASK_HELP),
    ASK_USES_SKILL: (ASK_USES_SKILL, ASK_RATING, ASK_HELP),
    ASK_BUSINESS: (ASK_BUSINESS, ASK_RATING, ASK_HELP),
    ASK_JOB_ALERTS: (ASK_JOB_ALERTS, ASK_RATING, ASK_HELP),
    ASK_RATING: (ASK_RATING, ASK_HELP),
    ASK_HELP: (ASK_HELP,),
}


def _check_table(states: dict[str, Question]) -> None:
    """Refuse a table whose skips lead nowhere or whose texts are missing, at import time."""
    for name, question in states.items():
        if question.skip_to not in states and question.skip_to != END:
            raise ValueError(f"check-in state {name!r} skips to unknown state "
                             f"{question.skip_to!r}")
        for key in (question.ask, question.again, question.hint, question.follow_up):
            if key is not None:
                text("id", key, name="", cohort="")  # raises CatalogError naming the key
    for key in ("checkin.status_buttons", "checkin.status_later", "checkin.again"):
        text("id", key, name="", cohort="", question="")


_check_table(STATES)


def _next_state(report: ProgressReport, state: str) -> str:
    """``state``, or the first state after it whose question is still open (END if none)."""
    if state == END or state not in _AFTER:
        return state
    for candidate in _AFTER[state]:
        if not _answered(report, STATES[candidate].column):
            return candidate
    return END


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


def is_open(turn: Turn) -> bool:
    """Whether the graduate is in the middle of a check-in."""
    return _open_question(turn) is not None


def ask_again(turn: Turn, *, interrupted: bool = False) -> bool:
    """Say the open check-in's current question again: after CEK in the middle of one, or
    (``interrupted``) after the menu, a voice note, LOWONGAN or MINAT answered in between.
    False when no check-in is open."""
    found = _open_question(turn)
    if found is None:
        return False
    report, question = found
    data = (turn.conversation.data or {}) if turn.conversation else {}
    key = question.follow_up if data.get("follow_up") is not None and question.follow_up \
        else question.again
    if interrupted:
        turn.say("checkin.again", question=turn.say_text(key, name=turn.graduate.name))
    else:
        turn.say(key, name=turn.graduate.name)
    return True


def _record_miss(turn: Turn, report: ProgressReport, question: Question) -> None:
    record_unplaced(turn.session, graduate_id=turn.graduate.id, report_id=report.id,
                    message_id=turn.inbound.id if turn.inbound is not None else None,
                    question=question.key, text=turn.text, now=turn.now)


def _late_status(report: ProgressReport, reply: str, ctx: Context) -> Reading | None:
    """A status told in words while another question is open and the status is missing."""
    if report.employment_status is not None:
        return None
    reading = read_status(reply, ctx.learned.get("status"))
    if reading is None or reading.how == CHOICE:
        return None  # a bare number answers the open question
    return reading


def handle_reply(turn: Turn) -> bool:
    """Take one reply in the graduate's open check-in; False if it is no longer open."""
    conversation = turn.conversation
    assert conversation is not None and conversation.flow == CHECKIN_FLOW
    found = _open_question(turn)
    if found is None:
        return False
    report, question = found
    if conversation.state in _AFTER and _answered(report, question.column):
        # Answered meanwhile (staff re-read the reply with a meaning they taught): this reply
        # answers the next open question.
        state = _next_state(report, conversation.state)
        if state == END:
            _finish(turn, report)
            return True
        conversation.state, conversation.misses = state, 0
        question = STATES[state]
    ctx = Context(learned=learned_meanings(turn.session), data=dict(conversation.data or {}),
                  button=bool(turn.inbound is not None and (turn.inbound.meta or {}).get(
                      "button_payload")))

    _keep_raw(report, question.key, turn.text)
    if report.responded_at is None:
        report.responded_at = turn.now
    state = conversation.state
    late = _late_status(report, turn.text, ctx) if state != ASK_STATUS else None
    if late is not None:
        # "blm dpt kerja kak" while the rating is asked: the status it was missing, never a
        # rating. The branch the status opens comes next, then what is still unanswered.
        _keep_raw(report, "status", turn.text)
        next_state = _after_status(report, late, GUESS if late.how == WORDS else late.how,
                                   turn.text)
    else:
        next_state = question.answer(report, turn.text, ctx)
    if next_state == FOLLOW_UP:
        conversation.data = ctx.data
        conversation.misses = 0
        turn.say(question.follow_up or question.hint, name=turn.graduate.name)
        return True
    if next_state is None:
        if is_greeting(turn.text):
            conversation.data = ctx.data
            turn.say(question.again, name=turn.graduate.name)
            return True
        _record_miss(turn, report, question)
        conversation.misses = (conversation.misses or 0) + 1
        if state == ASK_STATUS:
            return _missed_status(turn, report, conversation)
        if conversation.misses < MAX_MISSES:
            turn.say(question.hint, name=turn.graduate.name)
            return True
        # The reply itself is not logged (personal data): it is in the report's raw answers.
        log.info("check-in %s: a reply of %d characters not understood twice, moving on "
                 "from %s", report.id, len(turn.text or ""), state)
        next_state = question.skip_to
    _go_to(turn, report, conversation, _next_state(report, next_state), ctx)
    return True


def _missed_status(turn: Turn, report: ProgressReport, conversation: Conversation) -> bool:
    misses = conversation.misses or 0
    if misses < STATUS_BUTTONS_AFTER:
        turn.say(STATES[ASK_STATUS].hint, name=turn.graduate.name)
        return True
    if misses < STATUS_GIVE_UP_AFTER:
        send_status_buttons(turn)
        return True
    log.info("check-in %s: status not understood %s times; on the call list", report.id, misses)
    report.not_understood = True
    conversation.misses = 0
    conversation.state = _next_state(report, ASK_RATING)
    if conversation.state == END:
        _finish(turn, report)
        return True
    turn.say("checkin.status_later",
             question=turn.say_text(STATES[conversation.state].again, name=turn.graduate.name))
    return True


def _go_to(turn: Turn, report: ProgressReport, conversation: Conversation, state: str,
           ctx: Context) -> None:
    conversation.misses = 0
    conversation.state = state
    ctx.data.pop("follow_up", None)
    conversation.data = ctx.data
    if state == END:
        _finish(turn, report)
    else:
        turn.say(STATES[state].ask, name=turn.graduate.name)


def _finish(turn: Turn, report: ProgressReport) -> None:
    _close(report, REPORT_COMPLETED, turn)
    turn.end_conversation()
    turn.say("checkin.thanks", name=turn.graduate.name)


def status_buttons(language: str) -> list[dict[str, str]]:
    """The four status options as quick-reply buttons: {"id": "1", "title": "Sudah bekerja"}."""
    return [{"id": str(number), "title": text(language, f"checkin.button_{status}")}
            for number, status in STATUS_BY_CHOICE.items()]


def send_status_buttons(turn: Turn) -> Message | None:
    """The status question as WhatsApp quick-reply buttons (Twilio Content API
    ``twilio/quick-reply`` with the Content SID in ``twilio.templates.status_buttons``; its
    four buttons' ids are 1-4). Without that SID the same question goes as numbered text; the
    simulator shows the buttons either way (``meta["buttons"]``)."""
    buttons = status_buttons(turn.language)
    body = turn.say_text("checkin.status_buttons", name=turn.graduate.name)
    message = enqueue(turn.session, graduate=turn.graduate, kind=BUTTONS_KIND, body=body,
                      content_variables={"1": turn.graduate.name})
    if message is not None:
        message.meta = {"buttons": buttons}
        sid = turn.settings.twilio.templates.get(BUTTONS_KIND)
        if sid:
            message.content_sid = sid
    return message


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


def begin_checkins(session: Session, settings: Settings, round_: CheckInRound,
                   not_before: datetime | None = None) -> int:
    """``begin_checkin`` for every graduate of the round's cohort who can receive messages, as
    sets (``bot.fanout.fan_out_rounds``): their other open reports closed as unanswered, one
    report each, their conversations set at ASK_STATUS, and one prompt each in the outbox
    (rendered per language and name, held until ``not_before``). Returns how many prompts
    were queued. The round must be new (``open_round`` created it)."""
    from bot.fanout import fan_out_rounds

    return fan_out_rounds(session, settings.app.language, [round_], not_before)[round_.id]


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


def _has_letters(reply: str) -> bool:
    return any(ch.isalnum() for ch in reply)


def _clean(reply: str) -> str:
    return " ".join(reply.split())


# --- meanings staff taught Kabar ------------------------------------------------------------

_FIELD_OF_QUESTION = {question.key: question.column for question in STATES.values()}


def reread_answer(session: Session, settings: Settings, report: ProgressReport, question: str,
                  meaning: str) -> bool:
    """Apply a meaning staff gave to a reply Kabar could not place (the learning page) to one
    report: the field of ``question`` is set when it is still empty, read as "learned".
    Returns whether the report changed. The graduate's conversation goes on from where it is
    (the question already answered is passed over)."""
    column = _FIELD_OF_QUESTION.get(question)
    if column is None or column == "employer" or _answered(report, column):
        return False
    value: object
    if question in ("uses_skill", "job_alerts"):
        value = meaning == "yes"
    elif question == "rating":
        value = int(meaning)
    elif question == "help":
        if meaning != "nothing":
            return False
        value = None
    else:
        value = meaning
    _set(report, column, value, "learned")
    if column == "employment_status":
        report.not_understood = False
    return True
