"""The data model: institutions, cohorts, graduates, check-ins, messages, jobs, staff, audit.

Message lifecycle (outbound)::

    PENDING > SENDING > QUEUED/SENT > DELIVERED > READ
                      \\> (retry: back to PENDING with next_attempt_at) > FAILED
                                                    > UNDELIVERED / FAILED

Inbound messages are RECEIVED when recorded, then HANDLED by the inbox worker (or ERROR, kept
for staff, when handling failed repeatedly; see ``bot.inbox``). Every outbound message is a row
before it is a request; the row's id is the idempotency key, and ``dedupe_key`` keeps one row per
purpose (for example one check-in prompt per round and graduate).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from werkzeug.security import check_password_hash, generate_password_hash


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware datetimes on every backend; stored as UTC (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timezone-aware column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    # Named constraints, so later migrations can alter them (SQLite batch mode needs names).
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


# Employment status codes, as exported and as understood from replies.
EMPLOYMENT_STATUSES = ("employed", "self_employed", "seeking", "studying")


class Institution(Base):
    """A training institution (LPKS)."""

    __tablename__ = "institutions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    cohorts: Mapped[list[Cohort]] = relationship(back_populates="institution")


class Cohort(Base):
    """A training package ("paket"): the group a check-in round and a group post go to."""

    __tablename__ = "cohorts"
    __table_args__ = (UniqueConstraint("institution_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"))
    name: Mapped[str] = mapped_column(String(200))
    skill: Mapped[str | None] = mapped_column(String(200))
    join_code: Mapped[str] = mapped_column(String(32), unique=True)
    # Cron expression (minute hour day month weekday); None means scheduler.default_checkin.
    checkin_schedule: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Jakarta")
    training_start: Mapped[date | None] = mapped_column(Date)
    training_end: Mapped[date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    institution: Mapped[Institution] = relationship(back_populates="cohorts")
    graduates: Mapped[list[Graduate]] = relationship(back_populates="cohort")


class Graduate(Base):
    """One alumnus, reachable on WhatsApp at ``phone`` (E.164)."""

    __tablename__ = "graduates"
    __table_args__ = (
        # The dashboard's needs-help list, newest request first, reads only those asking.
        Index("ix_graduates_help_report", "help_report_id",
              sqlite_where=text("help_report_id IS NOT NULL"),
              postgresql_where=text("help_report_id IS NOT NULL")),
        # The few nobody calls (opted out or left): the dashboard's opted-out list and its
        # count of their unanswered prompts. The predicate is the one the queries write.
        Index("ix_graduates_unreachable", "id",
              sqlite_where=text("opted_out IS 1 OR active IS 0"),
              postgresql_where=text("opted_out IS true OR active IS false")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    skill: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="id")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # "pending": joined by GABUNG and waits for staff approval (inactive until approved).
    join_status: Mapped[str | None] = mapped_column(String(16), index=True)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    last_menu_at: Mapped[datetime | None]
    # Kept by bot.summaries: the answered report of the latest round and what it says, and
    # the report of a standing help request (plain ids: the reports already point here).
    answer_report_id: Mapped[int | None] = mapped_column(Integer)
    answer_status: Mapped[str | None] = mapped_column(String(16))
    answer_uses_skill: Mapped[bool | None] = mapped_column(Boolean)
    help_report_id: Mapped[int | None] = mapped_column(Integer)
    answer_guessed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    cohort: Mapped[Cohort | None] = relationship(back_populates="graduates")

    @property
    def can_receive(self) -> bool:
        return self.active and not self.opted_out


# Consent events.
CONSENT_OPT_OUT = "opt_out"  # the graduate sent BERHENTI/STOP
CONSENT_OPT_IN = "opt_in"  # the graduate sent MULAI/START
CONSENT_BLOCKED = "blocked"  # Twilio answered 21610: the number blocked the sender


class ConsentEvent(Base):
    """The consent history of a graduate: every opt-out and opt-in, with what caused it."""

    __tablename__ = "consent_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    graduate_id: Mapped[int] = mapped_column(ForeignKey("graduates.id"), index=True)
    event: Mapped[str] = mapped_column(String(16))
    # The inbound message that asked for it, or the outbound one Twilio refused with 21610.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckInRound(Base):
    """One scheduled (or manual) prompt to every active graduate of a cohort."""

    __tablename__ = "checkin_rounds"
    __table_args__ = (UniqueConstraint("cohort_id", "scheduled_for"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id"), index=True)
    scheduled_for: Mapped[datetime]
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")  # schedule | manual
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Counts of the round's reports, kept by bot.summaries.
    prompted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    responded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    rating_sum: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    ratings: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    cohort: Mapped[Cohort] = relationship()


# Progress report states.
REPORT_OPEN = "open"  # prompt sent or queued, the graduate is answering
REPORT_COMPLETED = "completed"  # every question answered (or skipped after two misses)
REPORT_UNANSWERED = "unanswered"  # closed by a newer round or by expiry before completion

# How a report field was read (ProgressReport.readings): a numbered choice, a tapped button,
# clear words, a guess (a typo-tolerant match, a bare "sudah", a status given out of turn),
# the answer to a follow-up question, a staff correction, or a meaning staff taught Kabar.
READ_CHOICE, READ_BUTTON, READ_WORDS, READ_GUESS = "choice", "button", "words", "guess"
READ_FOLLOWUP, READ_STAFF, READ_LEARNED = "followup", "staff", "learned"
READ_HOW = (READ_CHOICE, READ_BUTTON, READ_WORDS, READ_GUESS, READ_FOLLOWUP, READ_STAFF,
            READ_LEARNED)


class ProgressReport(Base):
    """A graduate's answers to one round: interpreted values beside the raw text."""

    __tablename__ = "progress_reports"
    __table_args__ = (
        UniqueConstraint("round_id", "graduate_id"),
        # Each graduate's latest answered report (dashboard, job targeting by status).
        Index("ix_progress_reports_answered", "graduate_id", "id",
              sqlite_where=text("employment_status IS NOT NULL"),
              postgresql_where=text("employment_status IS NOT NULL")),
        # Response rates and ratings per round.
        Index("ix_progress_reports_round_answers", "round_id", "responded_at", "skill_rating"),
        # The dashboard's call list of replies not understood reads only these few.
        Index("ix_progress_reports_not_understood", "graduate_id",
              sqlite_where=text("not_understood = 1"),
              postgresql_where=text("not_understood = true")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("checkin_rounds.id"))
    graduate_id: Mapped[int] = mapped_column(ForeignKey("graduates.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=REPORT_OPEN)
    employment_status: Mapped[str | None] = mapped_column(String(16))
    employer: Mapped[str | None] = mapped_column(Text)
    uses_training_skill: Mapped[bool | None] = mapped_column(Boolean)
    wants_job_alerts: Mapped[bool | None] = mapped_column(Boolean)
    skill_rating: Mapped[int | None] = mapped_column(Integer)
    needs_help: Mapped[str | None] = mapped_column(Text)
    job_title: Mapped[str | None] = mapped_column(Text)  # "operator jahit", beside the employer
    # How each field was read: {"employment_status": "choice", "employer": "followup", ...};
    # one of READ_HOW.
    readings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The status was guessed (readings: "guess"); the dashboard can leave these out.
    status_guessed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Three replies to the status question could not be placed: staff should call.
    not_understood: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # {"status": ["blm dpt", "3"], "rating": ["4"], ...}: every raw reply per question.
    raw_answers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    responded_at: Mapped[datetime | None]  # first reply
    completed_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    round: Mapped[CheckInRound] = relationship()
    graduate: Mapped[Graduate] = relationship()


class Conversation(Base):
    """Where a graduate is in a multi-step exchange; one row per graduate at most.

    Kept in the database so any web worker can take the next message; the row is locked while a
    message of that graduate is handled.
    """

    __tablename__ = "conversations"
    graduate_id: Mapped[int] = mapped_column(ForeignKey("graduates.id"), primary_key=True)
    flow: Mapped[str] = mapped_column(String(32))  # checkin | join
    state: Mapped[str] = mapped_column(String(32))
    report_id: Mapped[int | None] = mapped_column(ForeignKey("progress_reports.id"))
    misses: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# Message directions and statuses.
INBOUND, OUTBOUND = "in", "out"
MSG_RECEIVED = "received"  # inbound, recorded, waiting to be handled
MSG_HANDLED = "handled"  # inbound, handled: the answer (if any) is in the outbox
MSG_ERROR = "error"  # inbound, handling failed repeatedly; error_message says why
MSG_PENDING = "pending"  # outbound, waiting in the outbox (maybe for next_attempt_at)
MSG_SENDING = "sending"  # claimed by a dispatcher, request in flight
MSG_QUEUED = "queued"  # accepted by Twilio
MSG_SENT = "sent"  # handed to WhatsApp
MSG_DELIVERED = "delivered"  # on the phone
MSG_READ = "read"  # opened
MSG_UNDELIVERED = "undelivered"  # WhatsApp could not deliver
MSG_FAILED = "failed"  # permanent error or out of attempts; error_code says why
MSG_SUPPRESSED = "suppressed"  # not sent: the graduate opted out before it went out


class Message(Base):
    """Every inbound and outbound message, and the outbox itself."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_outbox", "status", "next_attempt_at"),
        # Pages page by id (keyset): a graduate's history, a cohort's timeline, the reply log.
        Index("ix_messages_graduate_id", "graduate_id", "id"),
        Index("ix_messages_cohort_created", "cohort_id", "id"),
        Index("ix_messages_cohort_time", "cohort_id", "created_at", "id"),
        Index("ix_messages_created_at", "created_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))
    graduate_id: Mapped[int | None] = mapped_column(ForeignKey("graduates.id"))
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id"))
    phone: Mapped[str] = mapped_column(String(20), index=True)
    # checkin, reminder, reply, job_opening, announcement, inbound ...
    kind: Mapped[str] = mapped_column(String(24))
    body: Mapped[str] = mapped_column(Text, default="")
    media_url: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str | None] = mapped_column(String(100))
    # Inbound: what Twilio sent beside the body (profile name, button payload, every media).
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    content_sid: Mapped[str | None] = mapped_column(String(64))
    content_variables: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    twilio_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("checkin_rounds.id"), index=True)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    graduate: Mapped[Graduate | None] = relationship()


class DeliveryEvent(Base):
    """One status callback from Twilio, exactly as it came (``bot.delivery``).

    Kept even when no message has the SID yet: the callback can arrive before the dispatcher has
    stored the SID on the row, and ``bot.delivery.catch_up`` applies it once the SID is there.
    """

    __tablename__ = "delivery_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobOpening(Base):
    """A vacancy from an employer; graduates answer ``MINAT <code>``."""

    __tablename__ = "job_openings"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    employer: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200))
    skill: Mapped[str | None] = mapped_column(String(200))
    deadline: Mapped[date | None] = mapped_column(Date)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def is_open(self, today: date) -> bool:
        return not self.closed and (self.deadline is None or self.deadline >= today)


class Broadcast(Base):
    """A fan-out of one post (job opening or announcement) to chosen cohorts."""

    __tablename__ = "broadcasts"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))  # job_opening | announcement
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job_openings.id"))
    body: Mapped[str] = mapped_column(Text)
    # {"cohort_ids": [...], "skill": ..., "status": ...}
    target: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[JobOpening | None] = relationship()


class Interest(Base):
    """A graduate who answered ``MINAT <code>`` for a job opening."""

    __tablename__ = "interests"
    __table_args__ = (UniqueConstraint("job_id", "graduate_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job_openings.id"), index=True)
    graduate_id: Mapped[int] = mapped_column(ForeignKey("graduates.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[JobOpening] = relationship()
    graduate: Mapped[Graduate] = relationship()


STAFF_ROLES = ("admin", "staff", "viewer")


class StaffUser(Base):
    """A person who signs in to the console (and may command Kabar from WhatsApp)."""

    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by sign-out, a password change and (de)activation: a console session carries the
    # version it was signed in with and ends when they differ (bot.staff.sessions).
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A WhatsApp command waiting for confirmation, e.g. {"action": "broadcast", ...} until YA.
    pending_action: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pending_since: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    institution: Mapped[Institution | None] = relationship()

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def end_sessions(self) -> None:
        """Every console session of this user ends at its next request."""
        self.session_version = (self.session_version or 0) + 1

    @validates("active")
    def _active_changed(self, key: str, value: bool) -> bool:
        if self.active is not None and bool(value) != bool(self.active):
            self.end_sessions()  # deactivation ends sessions; reactivation revives none
        return value

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class AuditLog(Base):
    """Who did what, when: broadcasts, exports, imports, changes."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_id", "action", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# --- replies Kabar could not place, and the meanings staff taught it (bot.learning) ---------

# The readings a taught phrase belongs to (bot.learning.QUESTION_READING maps questions to them).
VOCABULARY_READINGS = ("status", "yes_no", "rating", "nothing")


class VocabularyEntry(Base):
    """A phrase staff taught Kabar: what it means when it answers a question of ``reading``."""

    __tablename__ = "vocabulary_entries"
    __table_args__ = (UniqueConstraint("reading", "phrase"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    reading: Mapped[str] = mapped_column(String(16))  # one of VOCABULARY_READINGS
    phrase: Mapped[str] = mapped_column(String(200))  # bot.learning.phrase_key of the reply
    meaning: Mapped[str] = mapped_column(String(32))  # one of bot.learning.MEANINGS[reading]
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnplacedReply(Base):
    """A graduate's reply the check-in could not place, kept until staff give it a meaning."""

    __tablename__ = "unplaced_replies"
    __table_args__ = (
        # The page groups the unresolved replies by question and phrase (and counts graduates).
        Index("ix_unplaced_replies_open", "question", "phrase", "graduate_id",
              sqlite_where=text("resolved_at IS NULL"),
              postgresql_where=text("resolved_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    graduate_id: Mapped[int] = mapped_column(ForeignKey("graduates.id"), index=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("progress_reports.id"))
    question: Mapped[str] = mapped_column(String(16))  # status, uses_skill, job_alerts, ...
    phrase: Mapped[str] = mapped_column(String(200))  # bot.learning.phrase_key(text)
    text: Mapped[str] = mapped_column(Text)  # the reply as the graduate wrote it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("vocabulary_entries.id"))


class RosterUpload(Base):
    """A roster file uploaded in the console, kept between its preview and its confirmation.

    ``plan_digest`` is the digest of the previewed changes (``bot.roster_plan``): confirming
    applies the file only while it still plans exactly those changes. ``applied_at`` is set
    when it was imported, so a second confirmation imports nothing.

    While it is applied, ``worker`` names the process writing it (``host:pid``), which
    stores ``rows_done`` of ``rows_total`` and ``progress_at`` with every chunk it commits;
    ``finished_at`` and ``outcome`` (the import's counts, or the error that stopped it) come
    last. An upload applied but neither finished nor progressing was interrupted.
    """

    __tablename__ = "roster_uploads"
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    plan_digest: Mapped[str] = mapped_column(String(64))
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    applied_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(120))
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int | None] = mapped_column(Integer)
    progress_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Throttle(Base):
    """Failed attempts per key ("ip:<address>", "name:<login name>", "join:<phone>") in the
    current window, and until when the key is refused (bot.throttle)."""

    __tablename__ = "throttles"
    key: Mapped[str] = mapped_column(String(240), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(default=utcnow)
    blocked_until: Mapped[datetime | None]
    # Failures already written to the audit log in this window (a flood writes a few rows).
    audited: Mapped[int] = mapped_column(Integer, default=0)


class ErasedNumber(Base):
    """A number whose graduate was erased on request (UU PDP 27/2022), kept only as a hash.

    A roster import meets it and refuses to bring the person back silently (``bot.privacy``).
    """

    __tablename__ = "erased_numbers"
    phone_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_by: Mapped[str] = mapped_column(String(200))


class Process(Base):
    """A running Kabar process that reports itself: a dispatcher or a scheduler (``bot.processes``).

    Each writes ``beat_at`` every few seconds; ``role`` says what it does now ("leader" or
    "standby" for a scheduler, "sending" or "idle" for a dispatcher) and ``detail`` carries its
    figures (messages sent, in flight). Rows not beaten for long are old and are pruned.
    """

    __tablename__ = "processes"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)  # host:pid:random
    kind: Mapped[str] = mapped_column(String(20), index=True)  # dispatcher, scheduler
    host: Mapped[str] = mapped_column(String(100))
    pid: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20), default="")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class DispatchBudget(Base):
    """The sending rate shared by every dispatcher of a deployment (``bot.pacing``): one row.

    ``next_slot`` is the first moment (seconds since the epoch) no dispatcher has reserved yet.
    A dispatcher takes k sends at once by moving it k/rate on in one atomic UPDATE; a 429 from
    Twilio moves it to after Twilio's Retry-After, so every dispatcher pauses.
    """

    __tablename__ = "dispatch_budget"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_slot: Mapped[float] = mapped_column(Float, default=0.0)


def audit(session, actor: str, action: str, **detail: Any) -> AuditLog:
    """Add an audit entry to ``session`` (committed with the change it records)."""
    entry = AuditLog(actor=actor, action=action, detail=detail)
    session.add(entry)
    return entry


# The stored summaries (bot.summaries) recompute themselves on every flush that needs it.
from bot import summaries as _summaries  # noqa: E402, F401
