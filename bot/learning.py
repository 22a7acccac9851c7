"""Replies Kabar could not place, and the meanings staff teach it.

The check-in records every reply it cannot place (``record_unplaced``) under a grouping key,
``phrase_key``: the reply's words lower-cased with stretched letters squeezed, so "Blm dpt
kerjaaa!!" and "blm dpt kerja" are one phrase. The console page ``/staff/belum-dipahami``
(``bot.staff.learning``) groups these across graduates, most frequent first, and staff give a
group a meaning (``teach``): the phrase goes into ``vocabulary_entries`` for the question's
*reading* (``QUESTION_READING``: both yes/no questions share one vocabulary), the group's replies
are resolved, and, when asked, the open reports those replies left empty are re-read with the
meaning (``bot.conversations.checkin.reread_answer``). The check-in reads ``learned_meanings``
beside its built-in words, so the next graduate who writes the phrase is understood.

Every change is in the audit log (``vocabulary.taught``, ``vocabulary.forgotten``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, distinct, event, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.models import (
    REPORT_OPEN,
    Cohort,
    Graduate,
    ProgressReport,
    UnplacedReply,
    VocabularyEntry,
    audit,
)
from bot.understand import phrase_key as understood_phrase_key

# The question a reply answered -> the vocabulary its meaning belongs to.
QUESTION_READING = {"status": "status", "uses_skill": "yes_no", "job_alerts": "yes_no",
                    "rating": "rating", "help": "nothing"}
# The meanings a phrase may be given, per reading (the codes the reports store).
MEANINGS = {"status": ("employed", "self_employed", "seeking", "studying"),
            "yes_no": ("yes", "no"), "rating": ("1", "2", "3", "4", "5"),
            "nothing": ("nothing",)}
PHRASE_LIMIT = 200  # unplaced_replies.phrase, vocabulary_entries.phrase
_CACHE_KEY = "kabar.learned_meanings"


class LearningError(ValueError):
    """A meaning that cannot be taught (unknown question, meaning or empty phrase); the message
    says which value and what is allowed."""


@dataclass(frozen=True)
class TeachResult:
    """What ``teach`` did: the entry, its meaning before (None: new), replies it resolved and
    open reports whose empty field it filled."""

    entry_id: int
    reading: str
    phrase: str
    meaning: str
    old_meaning: str | None
    resolved: int
    reports_changed: int


def phrase_key(text: str) -> str:
    """The grouping key of a reply: its normalised words with stretched letters squeezed, at
    most ``PHRASE_LIMIT`` characters; "" when no word is left (such replies are not kept)."""
    return understood_phrase_key(text)[:PHRASE_LIMIT].rstrip()


def questions_of(reading: str) -> tuple[str, ...]:
    """The questions whose replies are read with ``reading``."""
    return tuple(q for q, r in QUESTION_READING.items() if r == reading)


def record_unplaced(session: Session, *, graduate_id: int, report_id: int | None,
                    message_id: int | None, question: str, text: str,
                    now: datetime) -> None:
    """Keep a reply the check-in could not place, for the console page. A question without a
    reading (employer, business: free text) and a reply without words are not kept."""
    if question not in QUESTION_READING:
        return
    phrase = phrase_key(text)
    if not phrase:
        return
    session.add(UnplacedReply(graduate_id=graduate_id, report_id=report_id,
                              message_id=message_id, question=question, phrase=phrase,
                              text=text, created_at=now))


def learned_meanings(session: Session) -> dict[str, dict[str, str]]:
    """Every taught phrase: reading -> {phrase: meaning}. One small query, kept until the
    session's transaction ends (``teach`` and ``forget`` through the same session start over),
    so every process sees a new meaning from its next transaction on."""
    cached = session.info.get(_CACHE_KEY)
    if cached is not None:
        return cached
    meanings: dict[str, dict[str, str]] = {reading: {} for reading in MEANINGS}
    rows = session.execute(select(VocabularyEntry.reading, VocabularyEntry.phrase,
                                  VocabularyEntry.meaning))
    for reading, phrase, meaning in rows:
        meanings.setdefault(reading, {})[phrase] = meaning
    session.info[_CACHE_KEY] = meanings
    return meanings


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_learned_meanings(session: Session, *_: object) -> None:
    session.info.pop(_CACHE_KEY, None)


def learned_meaning(session: Session, question: str, text: str) -> str | None:
    """The meaning staff taught for this reply to ``question``, or None."""
    reading = QUESTION_READING.get(question)
    if reading is None:
        return None
    return learned_meanings(session).get(reading, {}).get(phrase_key(text))


def check_meaning(question: str, meaning: str) -> str:
    """The reading of ``question``, when ``meaning`` is one it may be given; else LearningError."""
    reading = QUESTION_READING.get(question)
    if reading is None:
        raise LearningError(f"unknown question {question!r}: one of "
                            f"{', '.join(QUESTION_READING)}")
    if meaning not in MEANINGS[reading]:
        raise LearningError(f"{meaning!r} is not a meaning for the question {question!r}: "
                            f"one of {', '.join(MEANINGS[reading])}")
    return reading


def teach(session: Session, settings: Settings, *, question: str, phrase: str, meaning: str,
          actor: str, now: datetime, reread: bool) -> TeachResult:
    """Give ``phrase`` (as a reply to ``question``) the ``meaning``: store or change the
    vocabulary entry, resolve every unresolved reply with that phrase to a question of the same
    reading, audit it, and with ``reread`` fill the empty field of those replies' open reports.
    Raises LearningError for an unknown question, a meaning the question cannot have or a
    phrase without words."""
    from bot.conversations.checkin import reread_answer  # the check-in reads this module

    reading = check_meaning(question, meaning)
    phrase = phrase_key(phrase)
    if not phrase:
        raise LearningError("the phrase has no words to learn")
    entry, old_meaning = _store(session, reading, phrase, meaning, actor, now)
    session.info.pop(_CACHE_KEY, None)

    group = (UnplacedReply.question.in_(questions_of(reading)), UnplacedReply.phrase == phrase,
             UnplacedReply.resolved_at.is_(None))
    changed = 0
    if reread:
        of_group = select(UnplacedReply.report_id).where(*group).scalar_subquery()
        # Graduates before their reports, in id order, as the inbox locks them
        # (bot.summaries): a reply being handled finishes first and nobody deadlocks.
        session.execute(select(Graduate.id).where(Graduate.id.in_(
            select(ProgressReport.graduate_id).where(ProgressReport.id.in_(of_group))))
            .order_by(Graduate.id).with_for_update())
        reports = {r.id: r for r in session.scalars(
            select(ProgressReport).where(ProgressReport.id.in_(of_group),
                                         ProgressReport.status == REPORT_OPEN)
            .order_by(ProgressReport.id).with_for_update())}
        asked = session.execute(select(UnplacedReply.report_id, UnplacedReply.question)
                                .where(*group, UnplacedReply.report_id.in_(
                                    select(ProgressReport.id).where(
                                        ProgressReport.id.in_(of_group),
                                        ProgressReport.status == REPORT_OPEN)))
                                .distinct().order_by(UnplacedReply.report_id)).all()
        touched: set[int] = set()
        for report_id, question_asked in asked:
            report = reports.get(report_id)
            if report is not None and reread_answer(session, settings, report, question_asked,
                                                    meaning):
                touched.add(report_id)
        changed = len(touched)
    resolved = session.execute(update(UnplacedReply).where(*group)
                               .values(resolved_at=now, entry_id=entry.id)
                               .execution_options(synchronize_session=False)).rowcount

    audit(session, actor, "vocabulary.taught", question=question, phrase=phrase,
          reading=reading, meaning=meaning, old_meaning=old_meaning, resolved=resolved,
          reread=reread, reports_changed=changed)
    session.flush()
    return TeachResult(entry.id, reading, phrase, meaning, old_meaning, resolved, changed)


def _store(session: Session, reading: str, phrase: str, meaning: str, actor: str,
           now: datetime) -> tuple[VocabularyEntry, str | None]:
    """Insert or change the entry of (reading, phrase); returns it and its meaning before. Two
    people teaching the same phrase at once: the second finds the first's row and changes it."""
    def existing() -> VocabularyEntry | None:
        return session.scalar(select(VocabularyEntry).where(
            VocabularyEntry.reading == reading, VocabularyEntry.phrase == phrase)
            .with_for_update())

    entry = existing()
    if entry is None:
        try:
            with session.begin_nested():
                entry = VocabularyEntry(reading=reading, phrase=phrase, meaning=meaning,
                                        created_by=actor, created_at=now)
                session.add(entry)
            return entry, None
        except IntegrityError:
            entry = existing()
            if entry is None:  # pragma: no cover - the row that collided is gone again
                raise
    old = entry.meaning
    if old != meaning:
        entry.meaning, entry.created_by, entry.created_at = meaning, actor, now
    return entry, old


def forget(session: Session, *, entry_id: int, actor: str) -> bool:
    """Delete a taught meaning (audited); the replies it resolved stay resolved. Returns False
    when there is no such entry."""
    entry = session.get(VocabularyEntry, entry_id)
    if entry is None:
        return False
    session.execute(update(UnplacedReply).where(UnplacedReply.entry_id == entry_id)
                    .values(entry_id=None))
    audit(session, actor, "vocabulary.forgotten", phrase=entry.phrase, reading=entry.reading,
          meaning=entry.meaning, taught_by=entry.created_by,
          taught_at=entry.created_at.isoformat())
    session.delete(entry)
    session.flush()
    session.info.pop(_CACHE_KEY, None)
    return True


# --- what the console page shows ------------------------------------------------------------

# The report field a question's answer fills (as bot.conversations.checkin.reread_answer).
QUESTION_FIELD = {"status": ProgressReport.employment_status,
                  "uses_skill": ProgressReport.uses_training_skill,
                  "job_alerts": ProgressReport.wants_job_alerts,
                  "rating": ProgressReport.skill_rating, "help": ProgressReport.needs_help}


@dataclass(frozen=True)
class Group:
    """The unresolved replies with one phrase to one question, and their latest example."""

    question: str
    phrase: str
    replies: int
    graduates: int
    open_reports: int  # open reports whose field for the question is still empty
    latest: UnplacedReply
    graduate_name: str
    cohort_id: int | None
    cohort_name: str | None

    @property
    def reading(self) -> str:
        return QUESTION_READING[self.question]

    @property
    def meanings(self) -> tuple[str, ...]:
        return MEANINGS[self.reading]


def _unresolved(cohort_ids: list[int] | None):
    where = [UnplacedReply.resolved_at.is_(None)]
    if cohort_ids is not None:
        where.append(UnplacedReply.graduate_id.in_(
            select(Graduate.id).where(Graduate.cohort_id.in_(cohort_ids))))
    return where


def count_groups(session: Session, cohort_ids: list[int] | None = None) -> int:
    """How many (question, phrase) groups are unresolved (within these cohorts: None = all)."""
    groups = (select(UnplacedReply.question, UnplacedReply.phrase)
              .where(*_unresolved(cohort_ids)).distinct().subquery())
    return session.scalar(select(func.count()).select_from(groups)) or 0


def unplaced_groups(session: Session, cohort_ids: list[int] | None = None, *,
                    limit: int = 50, offset: int = 0) -> list[Group]:
    """Unresolved replies grouped by question and phrase across graduates (of these cohorts:
    None = all), most replies first, then the most recent; with each group's latest example."""
    replies = func.count(UnplacedReply.id)
    latest = func.max(UnplacedReply.id)
    # Read from the partial index alone (question, phrase, graduate_id where unresolved).
    rows = session.execute(
        select(UnplacedReply.question, UnplacedReply.phrase, replies,
               func.count(distinct(UnplacedReply.graduate_id)), latest)
        .where(*_unresolved(cohort_ids))
        .group_by(UnplacedReply.question, UnplacedReply.phrase)
        .order_by(replies.desc(), latest.desc())
        .limit(limit).offset(offset)).all()
    if not rows:
        return []
    shown = tuple_(UnplacedReply.question, UnplacedReply.phrase).in_(
        [(question, phrase) for question, phrase, *_ in rows])
    # Open reports whose field for the question is still empty: what a re-read would change.
    still_empty = or_(*(and_(UnplacedReply.question == question, field.is_(None))
                        for question, field in QUESTION_FIELD.items()))
    open_reports = dict(((question, phrase), count) for question, phrase, count in
                        session.execute(
                            select(UnplacedReply.question, UnplacedReply.phrase,
                                   func.count(distinct(ProgressReport.id)))
                            .join(ProgressReport, ProgressReport.id == UnplacedReply.report_id)
                            .where(*_unresolved(cohort_ids), shown,
                                   ProgressReport.status == REPORT_OPEN, still_empty)
                            .group_by(UnplacedReply.question, UnplacedReply.phrase)))
    examples = {reply.id: (reply, name, cohort_id, cohort_name)
                for reply, name, cohort_id, cohort_name in session.execute(
                    select(UnplacedReply, Graduate.name, Graduate.cohort_id, Cohort.name)
                    .join(Graduate, Graduate.id == UnplacedReply.graduate_id)
                    .outerjoin(Cohort, Cohort.id == Graduate.cohort_id)
                    .where(UnplacedReply.id.in_([row[4] for row in rows])))}
    return [Group(question, phrase, count, graduates,
                  open_reports.get((question, phrase), 0), *examples[latest_id])
            for question, phrase, count, graduates, latest_id in rows
            if question in QUESTION_READING]


def taught_entries(session: Session, *, limit: int = 50,
                   offset: int = 0) -> list[VocabularyEntry]:
    """Taught meanings, the most recently taught first."""
    return list(session.scalars(select(VocabularyEntry)
                                .order_by(VocabularyEntry.created_at.desc(),
                                          VocabularyEntry.id.desc())
                                .limit(limit).offset(offset)))


def count_entries(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(VocabularyEntry)) or 0
