"""Stored summaries the console reads instead of aggregating every report on each view.

Two summaries, each a function of the progress reports and rewritten in the same transaction
as any change to them, so they are never stale:

- **a graduate's latest answer**: ``graduates.answer_report_id`` is the graduate's answered
  report (one with an employment status) of the latest round (by round time, then report id),
  and ``answer_status`` and ``answer_uses_skill`` copy what it says. ``help_report_id`` is the
  graduate's latest word on help (a completed check-in, whose last question is help, or any
  report with a help request) when that word asks for help, else NULL. The dashboard, job
  targeting by status and the reply log's "needs help" all read these.
- **a round's counts**: ``checkin_rounds.prompted`` (reports), ``responded`` (with a first
  reply), ``rating_sum`` and ``ratings`` (skill ratings given).

A flush that creates or changes progress reports (through the ORM: the conversation, a staff
correction, a new round, the demo) brings the summaries it touched up to date. A new report
adds itself to its round's counts, and a reply or rating adds the difference it makes; a report
whose earlier values are not known, or that moved to another round, has its rounds recounted.
A graduate whose answers changed is recomputed from their reports, so a summary is right even
after a change made some other way once ``refresh`` or ``rebuild`` has run. On PostgreSQL a
recomputed row is locked first (``FOR UPDATE``) so that two transactions answering in the
same round count each other's committed answers; SQLite has one writer at a time anyway.
Whoever changes a graduate's reports locks the graduate first (as the inbox does), so the
locks are always taken in the same order.

Statements that change reports in bulk (``update(ProgressReport)``) bypass the flush. They
may change only columns no summary reads (``status``, ``closed_at``, ``reminded_at``), or they
must call ``refresh`` themselves. ``rebuild`` recomputes everything (migrations, bulk loads);
``kabar db summaries`` checks and repairs them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, event, func, inspect, or_, select, update
from sqlalchemy.orm import Session, aliased

from bot.models import CheckInRound, Graduate, ProgressReport

# Report columns each summary is computed from.
ANSWER_FIELDS = ("employment_status", "uses_training_skill", "status_guessed", "needs_help",
                 "completed_at", "round_id", "graduate_id")
ROUND_FIELDS = ("responded_at", "skill_rating", "round_id")
GRADUATE_SUMMARY = ("answer_report_id", "answer_status", "answer_uses_skill", "answer_guessed",
                    "help_report_id")
ROUND_SUMMARY = ("prompted", "responded", "rating_sum", "ratings")
CHUNK = 500  # ids per statement, far below every backend's parameter limit

_report = aliased(ProgressReport, name="report")
_round = aliased(CheckInRound, name="report_round")
_said = aliased(ProgressReport, name="said")
_said_round = aliased(CheckInRound, name="said_round")


def asks_for_help(column):
    """A report's ``needs_help`` says something (not empty, not only spaces)."""
    return func.trim(func.coalesce(column, "")) != ""


def latest_answer_id(graduate_id):
    """The id of the graduate's answered report of the latest round (a correlated subquery)."""
    return (select(_report.id)
            .join(_round, _round.id == _report.round_id)
            .where(_report.graduate_id == graduate_id, _report.employment_status.is_not(None))
            .order_by(_round.scheduled_for.desc(), _report.id.desc())
            .limit(1).scalar_subquery())


def help_request_id(graduate_id):
    """The id of the graduate's latest word on help when it asks for help, else NULL."""
    latest_word = (select(_said.id)
                   .join(_said_round, _said_round.id == _said.round_id)
                   .where(_said.graduate_id == graduate_id,
                          or_(_said.completed_at.is_not(None), asks_for_help(_said.needs_help)))
                   .order_by(_said_round.scheduled_for.desc(), _said.id.desc())
                   .limit(1).correlate(Graduate).scalar_subquery())
    return (select(_report.id)
            .where(_report.id == latest_word, asks_for_help(_report.needs_help))
            .scalar_subquery())


def _answer(column, report_id):
    return select(column).where(_report.id == report_id).scalar_subquery()


def _round_count(aggregate):
    return (select(aggregate).where(_report.round_id == CheckInRound.id)
            .correlate(CheckInRound).scalar_subquery())


def _graduate_updates(where) -> tuple:
    """Two statements: find each graduate's latest answer, then copy what it says."""
    # updated_at stays: it records edits of the graduate, and a summary is not one.
    find = update(Graduate).where(where).values(
        answer_report_id=latest_answer_id(Graduate.id),
        help_report_id=help_request_id(Graduate.id), updated_at=Graduate.updated_at)
    said = Graduate.answer_report_id
    copy = update(Graduate).where(where).values(
        answer_status=_answer(_report.employment_status, said),
        answer_uses_skill=_answer(_report.uses_training_skill, said),
        answer_guessed=func.coalesce(_answer(_report.status_guessed, said), False),
        updated_at=Graduate.updated_at)
    return find, copy


def _round_update(where):
    return update(CheckInRound).where(where).values(
        prompted=_round_count(func.count(_report.id)),
        responded=_round_count(func.count(_report.responded_at)),
        rating_sum=_round_count(func.coalesce(func.sum(_report.skill_rating), 0)),
        ratings=_round_count(func.count(_report.skill_rating)))


def refresh(connection: Connection, graduate_ids: Iterable[int] = (),
            round_ids: Iterable[int] = ()) -> None:
    """Recompute the summaries of these graduates and rounds from their reports."""
    for ids, table, statements in (
            (sorted(set(round_ids)), CheckInRound,
             lambda chunk: (_round_update(CheckInRound.id.in_(chunk)),)),
            (sorted(set(graduate_ids)), Graduate,
             lambda chunk: _graduate_updates(Graduate.id.in_(chunk)))):
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            if connection.dialect.name != "sqlite":  # SQLite: one writer at a time anyway
                # Wait for any other transaction changing these rows, so that the statements
                # below (each with a new snapshot on PostgreSQL) count what it committed.
                connection.execute(select(table.id).where(table.id.in_(chunk))
                                   .order_by(table.id).with_for_update())
            for statement in statements(chunk):
                connection.execute(statement)


def rebuild(connection: Connection) -> None:
    """Recompute every summary (after a bulk load; the migration that adds them does this)."""
    connection.execute(_round_update(CheckInRound.id.is_not(None)))
    for statement in _graduate_updates(Graduate.id.is_not(None)):
        connection.execute(statement)


def stale(connection: Connection) -> dict[str, list[int]]:
    """Graduates and rounds whose stored summary differs from their reports (for checks)."""
    answer = aliased(ProgressReport, name="latest_answer")
    expected = (select(Graduate.id, Graduate.answer_report_id, Graduate.answer_status,
                       Graduate.answer_uses_skill, Graduate.answer_guessed,
                       Graduate.help_report_id,
                       answer.id.label("want_id"), answer.employment_status,
                       answer.uses_training_skill, answer.status_guessed,
                       help_request_id(Graduate.id).label("want_help"))
                .outerjoin(answer, answer.id == latest_answer_id(Graduate.id)))
    graduates = [row.id for row in connection.execute(expected)
                 if (row.answer_report_id, row.answer_status, row.answer_uses_skill,
                     bool(row.answer_guessed), row.help_report_id)
                 != (row.want_id, row.employment_status, row.uses_training_skill,
                     bool(row.status_guessed), row.want_help)]
    counts = (select(_report.round_id.label("id"), func.count(_report.id).label("prompted"),
                     func.count(_report.responded_at).label("responded"),
                     func.coalesce(func.sum(_report.skill_rating), 0).label("rating_sum"),
                     func.count(_report.skill_rating).label("ratings"))
              .group_by(_report.round_id).subquery("counts"))
    rounds = [row.id for row in connection.execute(
        select(CheckInRound.id, *(getattr(CheckInRound, c) for c in ROUND_SUMMARY),
               *(func.coalesce(getattr(counts.c, c), 0).label(f"want_{c}")
                 for c in ROUND_SUMMARY))
        .outerjoin(counts, counts.c.id == CheckInRound.id))
        if tuple(getattr(row, c) for c in ROUND_SUMMARY)
        != tuple(getattr(row, f"want_{c}") for c in ROUND_SUMMARY)]
    return {"graduates": graduates, "rounds": rounds}


# --- keeping them current -------------------------------------------------------------------

def _changed(obj, fields: tuple[str, ...]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def _old(obj, name: str):
    """The value ``name`` had before this flush (the current one when unchanged)."""
    history = inspect(obj).attrs[name].history
    return history.deleted[0] if history.deleted else getattr(obj, name)


def _says_something(report: ProgressReport) -> bool:
    return (report.employment_status is not None or report.completed_at is not None
            or bool((report.needs_help or "").strip()))


def _counted(responded_at, skill_rating) -> tuple[int, int, int]:
    """What one report adds to its round's responded, rating_sum and ratings."""
    return (responded_at is not None, skill_rating or 0, skill_rating is not None)


def _known_before(obj, fields: tuple[str, ...]) -> bool:
    """Whether every field's value before this flush is known (loaded, not expired)."""
    state = inspect(obj)
    return all(state.attrs[name].history.deleted or not state.attrs[name].history.added
               for name in fields)


def _add_to_rounds(connection: Connection, deltas: dict[int, list[int]]) -> None:
    """Add to rounds' counts without recounting (a round of 400 prompts is 400 inserts, and
    each reply changes one report). ``UPDATE … SET n = n + k`` is safe beside other writers
    on PostgreSQL: it applies to the row as the last writer committed it."""
    for round_id, (prompted, responded, rating_sum, ratings) in sorted(deltas.items()):
        if prompted or responded or rating_sum or ratings:
            connection.execute(update(CheckInRound).where(CheckInRound.id == round_id).values(
                prompted=CheckInRound.prompted + prompted,
                responded=CheckInRound.responded + responded,
                rating_sum=CheckInRound.rating_sum + rating_sum,
                ratings=CheckInRound.ratings + ratings))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context) -> None:
    # After the flush ids are assigned, while new/dirty/deleted and attribute histories still
    # show what this flush changed.
    graduates: set[int] = set()
    recount: set[int] = set()
    deltas: dict[int, list[int]] = {}  # round id -> prompted, responded, rating sum, ratings
    moved_rounds: list[int] = []
    for obj in session.new:
        if isinstance(obj, ProgressReport):
            delta = deltas.setdefault(obj.round_id, [0, 0, 0, 0])
            for i, value in enumerate((1, *_counted(obj.responded_at, obj.skill_rating))):
                delta[i] += value
            if _says_something(obj):
                graduates.add(obj.graduate_id)
    for obj in session.dirty:
        if isinstance(obj, ProgressReport):
            if _changed(obj, ROUND_FIELDS):
                if _changed(obj, ("round_id",)) or not _known_before(obj, ROUND_FIELDS):
                    recount.update((obj.round_id, _old(obj, "round_id")))
                else:  # a reply or a rating: the difference it makes
                    delta = deltas.setdefault(obj.round_id, [0, 0, 0, 0])
                    now = _counted(obj.responded_at, obj.skill_rating)
                    before = _counted(_old(obj, "responded_at"), _old(obj, "skill_rating"))
                    for i in range(3):
                        delta[i + 1] += now[i] - before[i]
            if _changed(obj, ANSWER_FIELDS):
                graduates.update((obj.graduate_id, _old(obj, "graduate_id")))
        elif isinstance(obj, CheckInRound) and _changed(obj, ("scheduled_for",)):
            moved_rounds.append(obj.id)  # which answer is the latest may change
    for obj in session.deleted:
        if isinstance(obj, ProgressReport):
            recount.add(_old(obj, "round_id"))
            graduates.add(_old(obj, "graduate_id"))
    if not (graduates or recount or deltas or moved_rounds):
        return
    connection = session.connection()
    if moved_rounds:
        graduates.update(connection.scalars(select(ProgressReport.graduate_id).where(
            ProgressReport.round_id.in_(moved_rounds))))
    # A round recounted below already counts everything this flush did to it.
    _add_to_rounds(connection, {k: v for k, v in deltas.items() if k not in recount})
    refresh(connection, graduates, recount)
    rounds = recount | set(deltas)
    session.info.setdefault("kabar.summaries", []).append((graduates, rounds))


@event.listens_for(Session, "after_flush_postexec")
def _expire_summaries(session: Session, _context) -> None:
    """Loaded graduates and rounds show the recomputed summaries on their next read."""
    for graduates, rounds in session.info.pop("kabar.summaries", ()):
        for cls, ids, fields in ((Graduate, graduates, GRADUATE_SUMMARY),
                                 (CheckInRound, rounds, ROUND_SUMMARY)):
            for pk in ids:
                obj = session.identity_map.get(session.identity_key(cls, pk))
                if obj is not None:
                    session.expire(obj, fields)

