"""Fan-out: the rows a check-in round, a reminder pass or a broadcast creates, as sets.

A round for a province is a prompt, an open progress report and a conversation for each of
hundreds of thousands of graduates. Creating them one ORM object at a time costs more in Python
than in the database, so they are written with ``INSERT … SELECT … FROM graduates`` in chunks of
``FAN_OUT_CHUNK`` graduates (``FAN_OUT_CHUNK_POSTGRESQL`` on PostgreSQL): the database reads
the graduates and writes the rows itself, and nothing per graduate travels between Python and
the database.

The texts are rendered in SQL, from the catalog: each text's literal parts are bound
parameters, each per-graduate value (the name, the cohort's name) is a column, joined with
``||``, and the graduate's language picks the text with ``CASE``. The result is byte for byte
what ``bot.catalog.text`` renders (``str.format`` of a string is that string), as long as a text
uses only plain placeholders the SQL fills in; ``check_catalog`` checks that when this module is
imported and refuses to start otherwise. ``content_variables`` are built with the database's
JSON function (``json_object`` / ``json_build_object``): the same JSON value as before, possibly
spaced or escaped differently.

Every row is written as ``bot.outbox.enqueue`` writes it: SUPPRESSED when its graduate cannot
receive messages when the row is written (opted out or inactive), otherwise PENDING and due at
``not_before`` (the end of quiet hours) or now. Message inserts are ``ON CONFLICT (dedupe_key) DO
NOTHING``: a second process writing the same purpose adds nothing. Everything runs in the
caller's transaction: a round, a reminder pass or a broadcast is committed whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from string import Formatter

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from bot import catalog
from bot.models import (
    MSG_PENDING,
    MSG_SUPPRESSED,
    OUTBOUND,
    REPORT_OPEN,
    REPORT_UNANSWERED,
    CheckInRound,
    Cohort,
    Conversation,
    Graduate,
    Message,
    ProgressReport,
    utcnow,
)

FAN_OUT_CHUNK = 1000  # graduates per set of statements
# PostgreSQL plans and sends each statement for more: bigger chunks save about 15% there.
FAN_OUT_CHUNK_POSTGRESQL = 5000

# The catalog texts rendered in SQL and the placeholders each may use.
SQL_TEXTS: dict[str, tuple[str, ...]] = {
    "checkin.prompt": ("name", "cohort"),
    "checkin.reminder": ("name", "cohort"),
    "announcement": ("text", "cohort"),
    "job.opening": ("title", "employer", "location", "deadline", "code"),
    "jobs.no_deadline": (),
}

_MESSAGES = Message.__table__
_REPORTS = ProgressReport.__table__
_CONVERSATIONS = Conversation.__table__


# --- texts --------------------------------------------------------------------------------

def _template(language: str, key: str) -> str:
    """The text ``bot.catalog.text`` would format for ``language`` and ``key``."""
    lang = language if language in catalog.LANGUAGES else "id"
    texts = catalog.load(lang)
    if key not in texts:
        texts = catalog.load("id")
        if key not in texts:
            raise catalog.CatalogError(f"catalog has no text {key!r} (bot/catalog/id.toml)")
    return texts[key]


def check_catalog() -> None:
    """Fail loudly if a text rendered in SQL uses anything but its plain placeholders.

    ``{name}`` is fine; ``{name!r}``, ``{name:>10}``, ``{name.upper}`` or a placeholder the
    fan-out does not fill would render differently in SQL (or not at all), so they are refused
    here, at start, rather than halfway through a round."""
    for key, allowed in SQL_TEXTS.items():
        for language in catalog.LANGUAGES:
            template = _template(language, key)
            try:
                parts = list(Formatter().parse(template))
            except ValueError as exc:
                raise catalog.CatalogError(
                    f"catalog text {key!r} ({language}) is not a valid template: {exc}") from None
            for _literal, field, spec, conversion in parts:
                if field is None:
                    continue
                if field not in allowed or spec or conversion:
                    raise catalog.CatalogError(
                        f"catalog text {key!r} ({language}) uses {{{field}"
                        f"{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}; "
                        f"only plain {', '.join('{' + a + '}' for a in allowed) or 'text'} "
                        "can be used there (bot/catalog)")


def _is_sql(value: object) -> bool:
    return isinstance(value, ColumnElement) or hasattr(value, "__clause_element__")


def _render(key: str, language: str, values: Mapping[str, object]) -> ColumnElement:
    """The text as an SQL expression: literals as parameters, columns where ``values`` has
    SQL expressions, other values formatted as ``str.format`` does."""
    pieces: list[str | ColumnElement] = []
    for literal_text, field, _spec, _conversion in Formatter().parse(_template(language, key)):
        if literal_text:
            pieces.append(literal_text)
        if field is None:
            continue
        value = values[field]
        pieces.append(value if _is_sql(value) else format(value, ""))
    merged: list[str | ColumnElement] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    expression: ColumnElement | None = None
    for piece in merged:
        part = literal(piece, Text()) if isinstance(piece, str) else piece
        expression = part if expression is None else expression + part
    return expression if expression is not None else literal("", Text())


def text_by_language(key: str, language: ColumnElement, values: Mapping[str, object],
                     default_language: str) -> ColumnElement:
    """``catalog.text(graduate.language or default_language, key, **values)`` for each row.

    ``values`` maps each placeholder to a Python value (the same for every row) or to a column
    (the graduate's name, the cohort's name)."""
    return case(
        (or_(language.is_(None), language == ""), _render(key, default_language, values)),
        *((language == lang, _render(key, lang, values)) for lang in catalog.LANGUAGES),
        else_=_render(key, "id", values))


def _json_object(session: Session, values: Mapping[str, object]) -> ColumnElement:
    """A JSON object built by the database from constants and columns (string values)."""
    args: list[object] = []
    for name, value in values.items():
        args.append(literal_column(f"'{int(name)}'") if name.isdigit() else literal(name))
        args.append(value if _is_sql(value) else literal(value, String()))
    if _dialect(session) == "postgresql":
        return func.json_build_object(*args, type_=JSON)
    return func.json_object(*args, type_=JSON)


# --- helpers ------------------------------------------------------------------------------

def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _insert(session: Session, table):
    return (postgresql.insert(table) if _dialect(session) == "postgresql"
            else sqlite.insert(table))


def _among(session: Session, column, ids: Sequence[int]) -> ColumnElement:
    """``column IN ids`` with one parameter whatever the number of ids."""
    ids = [int(i) for i in ids]
    if _dialect(session) == "postgresql":
        return column == any_(cast(literal(ids, ARRAY(Integer)), ARRAY(Integer)))
    listed = select(literal_column("value")).select_from(func.json_each(json.dumps(ids)))
    return column.in_(listed.scalar_subquery())


def _status(graduate=Graduate) -> ColumnElement:
    """What ``enqueue`` decides per row: PENDING if the graduate can receive, else SUPPRESSED."""
    return case((and_(graduate.active.is_(True), graduate.opted_out.is_(False)), MSG_PENDING),
                else_=MSG_SUPPRESSED)


def _message_rows(session: Session, select_stmt, *, count: bool = False) -> int | None:
    """Insert the outbox rows ``select_stmt`` yields (the columns of ``_MESSAGE_COLUMNS``),
    skipping purposes already queued; with ``count``, how many were written (their ids come
    back: not every driver reports a row count for ``INSERT … SELECT``)."""
    stmt = (_insert(session, _MESSAGES)
            .from_select(_MESSAGE_COLUMNS, select_stmt)
            .on_conflict_do_nothing(index_elements=["dedupe_key"]))
    if not count:
        session.execute(stmt)
        return None
    return len(session.execute(stmt.returning(_MESSAGES.c.id)).all())


_MESSAGE_COLUMNS = ["direction", "graduate_id", "cohort_id", "phone", "kind", "body",
                    "content_variables", "dedupe_key", "status", "round_id", "broadcast_id",
                    "next_attempt_at", "attempts", "created_at", "updated_at"]


def _message_select(*, graduate, kind: str, body, variables, dedupe_key, round_id,
                    broadcast_id, due: datetime, now: datetime):
    return select(
        literal(OUTBOUND, String()), graduate.id, graduate.cohort_id, graduate.phone,
        literal(kind, String()), body, variables, dedupe_key, _status(graduate), round_id,
        broadcast_id, literal(due, Message.next_attempt_at.type),
        literal(0, Integer()), literal(now, Message.created_at.type),
        literal(now, Message.updated_at.type))


def _key(prefix: str, *columns) -> ColumnElement:
    expression: ColumnElement = literal(prefix, String())
    for index, column in enumerate(columns):
        if index:
            expression = expression + literal(":", String())
        expression = expression + cast(column, String())
    return expression


def _chunks(session: Session, ids: Sequence):
    size = FAN_OUT_CHUNK_POSTGRESQL if _dialect(session) == "postgresql" else FAN_OUT_CHUNK
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


# --- check-in rounds ----------------------------------------------------------------------

def fan_out_rounds(session: Session, default_language: str, rounds: Sequence[CheckInRound],
                   not_before: datetime | None = None) -> dict[int, int]:
    """Prompt every graduate of the rounds' cohorts who can receive messages; prompts per round.

    ``rounds`` are new (no reports yet), flushed, at most one per cohort, and share
    ``not_before`` (the end of quiet hours, or None: due now). For each graduate, as
    ``bot.conversations.checkin.begin_checkin`` does one at a time: their other open reports
    are closed as unanswered, one open report in the round is added, their conversation is set
    at ASK_STATUS on it, and one prompt goes into the outbox (``checkin:<round>:<graduate>``).

    The graduates are locked first, in id order (``FOR UPDATE`` on PostgreSQL), as the inbox
    locks a graduate before their reports and conversation, so neither waits on the other in a
    circle and no reply is handled halfway through. The chunks are ranges of graduate ids
    across all the rounds' cohorts, each naming only its own graduates' rounds, so a command
    starting the rounds of 5,000 cohorts of 200 runs 200 to 1,000 chunks of statements, not
    5,000.
    """
    from bot.conversations.checkin import ASK_STATUS
    from bot.conversations.turn import CHECKIN_FLOW

    if not rounds:
        return {}
    now = utcnow()  # as begin_checkin stamps its rows (reminders and expiry count from it)
    due = not_before or now
    round_ids = [r.id for r in rounds]
    in_rounds = _among(session, CheckInRound.id, round_ids)
    eligible = and_(Graduate.active.is_(True), Graduate.opted_out.is_(False))
    listed = session.execute(
        select(Graduate.id, CheckInRound.id)
        .join(CheckInRound, and_(CheckInRound.cohort_id == Graduate.cohort_id, in_rounds))
        .where(eligible)
        .order_by(Graduate.id)
        .with_for_update(of=Graduate)).all()
    counts = {rid: 0 for rid in round_ids}
    for _graduate_id, round_id in listed:
        counts[round_id] += 1

    for chunk in _chunks(session, listed):
        low, high = chunk[0][0], chunk[-1][0]
        # Only the rounds of this chunk's graduates: a filter on 5,000 round ids in every
        # statement would cost more than the rows themselves.
        in_rounds = _among(session, CheckInRound.id, sorted({r for _g, r in chunk}))

        def base(*columns, low=low, high=high, in_rounds=in_rounds):
            return (select(*columns)
                    .select_from(Graduate)
                    .join(CheckInRound, and_(CheckInRound.cohort_id == Graduate.cohort_id,
                                             in_rounds))
                    .where(Graduate.id.between(low, high), eligible))

        chosen = base(Graduate.id).scalar_subquery()
        # Their other open check-ins end: a new round replaces them.
        session.execute(
            update(ProgressReport)
            .where(ProgressReport.graduate_id.between(low, high),
                   ProgressReport.graduate_id.in_(chosen),
                   ProgressReport.status == REPORT_OPEN)
            .values(status=REPORT_UNANSWERED, closed_at=now)
            .execution_options(synchronize_session=False))
        session.execute(
            _REPORTS.insert().from_select(
                ["round_id", "graduate_id", "status", "raw_answers", "created_at",
                 "status_guessed", "not_understood"],
                base(CheckInRound.id, Graduate.id, literal(REPORT_OPEN, String()),
                     literal({}, JSON()), literal(now, ProgressReport.created_at.type),
                     literal(False), literal(False)).order_by(Graduate.id)))
        session.execute(
            delete(Conversation)
            .where(Conversation.graduate_id.between(low, high),
                   Conversation.graduate_id.in_(chosen))
            .execution_options(synchronize_session=False))
        session.execute(
            _CONVERSATIONS.insert().from_select(
                ["graduate_id", "flow", "state", "report_id", "misses", "data", "updated_at"],
                base(Graduate.id, literal(CHECKIN_FLOW, String()), literal(ASK_STATUS, String()),
                     ProgressReport.id, literal(0), literal({}, JSON()),
                     literal(now, Conversation.updated_at.type))
                .join(ProgressReport, and_(ProgressReport.round_id == CheckInRound.id,
                                           ProgressReport.graduate_id == Graduate.id))
                .order_by(Graduate.id)))
        body = text_by_language("checkin.prompt", Graduate.language,
                                {"name": Graduate.name, "cohort": Cohort.name},
                                default_language)
        _message_rows(session, _message_select(
            graduate=Graduate, kind="checkin", body=body,
            variables=_json_object(session, {"1": Graduate.name, "2": Cohort.name}),
            dedupe_key=_key("checkin:", CheckInRound.id, Graduate.id),
            round_id=CheckInRound.id, broadcast_id=literal(None, Integer()), due=due, now=now)
            .select_from(Graduate)
            .join(CheckInRound, and_(CheckInRound.cohort_id == Graduate.cohort_id, in_rounds))
            .join(Cohort, Cohort.id == CheckInRound.cohort_id)
            .where(Graduate.id.between(low, high), eligible)
            .order_by(Graduate.id))

    # The reports went in without the ORM's flush, so the rounds' counts are added here
    # (bot.summaries keeps them for reports the ORM writes).
    prompted = [{"rid": rid, "n": n} for rid, n in counts.items() if n]
    if prompted:
        session.connection().execute(
            update(CheckInRound.__table__)
            .where(CheckInRound.__table__.c.id == bindparam("rid"))
            .values(prompted=CheckInRound.__table__.c.prompted + bindparam("n")),
            prompted)
    for round_ in rounds:
        session.expire(round_)
    return counts


# --- reminders ----------------------------------------------------------------------------

def fan_out_reminders(session: Session, default_language: str, report_ids: Sequence[int],
                      not_before: datetime | None, reminded_at: datetime) -> int:
    """One reminder per report (``reminder:<report>``), marked reminded at ``reminded_at``;
    held until ``not_before`` (None: due now). Returns how many reminders were queued."""
    now = utcnow()
    due = not_before or now
    queued = 0
    for chunk in _chunks(session, list(report_ids)):
        session.execute(
            update(ProgressReport).where(_among(session, ProgressReport.id, chunk))
            .values(reminded_at=reminded_at).execution_options(synchronize_session=False))
        body = text_by_language("checkin.reminder", Graduate.language,
                                {"name": Graduate.name, "cohort": Cohort.name},
                                default_language)
        queued += _message_rows(session, _message_select(
            graduate=Graduate, kind="reminder", body=body,
            variables=_json_object(session, {"1": Graduate.name, "2": Cohort.name}),
            dedupe_key=_key("reminder:", ProgressReport.id), round_id=ProgressReport.round_id,
            broadcast_id=literal(None, Integer()), due=due, now=now)
            .select_from(ProgressReport)
            .join(Graduate, Graduate.id == ProgressReport.graduate_id)
            .join(CheckInRound, CheckInRound.id == ProgressReport.round_id)
            .join(Cohort, Cohort.id == CheckInRound.cohort_id)
            .where(_among(session, ProgressReport.id, chunk))
            .order_by(ProgressReport.id), count=True)
    return queued


# --- broadcasts ---------------------------------------------------------------------------

def fan_out_job(session: Session, broadcast_id: int, graduate_ids: Sequence[int], *,
                title: str, employer: str, location: str, code: str,
                deadline: Mapping[str, str]) -> None:
    """One job opening per graduate (``broadcast:<broadcast>:<graduate>``), in the order of
    ``graduate_ids``; ``deadline`` is the deadline's text per language (and "" for the
    default)."""
    now = utcnow()
    values = {"title": title, "employer": employer, "location": location, "code": code}

    def per_language(language: str) -> ColumnElement:
        return _render("job.opening", language, {**values, "deadline": deadline[language]})

    body = case((or_(Graduate.language.is_(None), Graduate.language == ""), per_language("id")),
                *((Graduate.language == lang, per_language(lang))
                  for lang in catalog.LANGUAGES),
                else_=per_language("id"))
    deadline_column = case(
        *((Graduate.language == lang, literal(deadline[lang], String()))
          for lang in catalog.LANGUAGES if lang != "id"),
        else_=literal(deadline["id"], String()))
    variables = _json_object(session, {"1": title, "2": employer, "3": location,
                                       "4": deadline_column, "5": code})
    _broadcast_rows(session, broadcast_id, graduate_ids, "job_opening", body, variables,
                           now)


def fan_out_announcement(session: Session, broadcast_id: int, graduate_ids: Sequence[int],
                         text: str) -> None:
    """One announcement per graduate, with the name of the graduate's cohort, in the order of
    ``graduate_ids``."""
    now = utcnow()
    body = text_by_language("announcement", Graduate.language,
                            {"text": text, "cohort": Cohort.name}, "id")
    variables = _json_object(session, {"1": Cohort.name, "2": text})
    _broadcast_rows(session, broadcast_id, graduate_ids, "announcement", body, variables,
                           now)


def _broadcast_rows(session: Session, broadcast_id: int, graduate_ids: Sequence[int], kind: str,
                    body, variables, now: datetime) -> None:
    """Write the rows chunk by chunk; ``graduate_ids`` come in the recipients' order (cohort
    name, graduate name, id: ``bot.broadcasts._recipients``), which each chunk keeps, so the
    outbox sends them in that order as before."""
    for chunk in _chunks(session, list(graduate_ids)):
        _message_rows(session, _message_select(
            graduate=Graduate, kind=kind, body=body, variables=variables,
            dedupe_key=_key(f"broadcast:{broadcast_id}:", Graduate.id),
            round_id=literal(None, Integer()), broadcast_id=literal(broadcast_id, Integer()),
            due=now, now=now)
            .select_from(Graduate)
            .join(Cohort, Cohort.id == Graduate.cohort_id)
            .where(_among(session, Graduate.id, chunk))
            .order_by(Cohort.name, Graduate.name, Graduate.id))


check_catalog()
