"""Fan-out as sets (bot.fanout): the same rows and texts as one graduate at a time, once each.

Each comparison writes the rows with the set-based fan-out inside a savepoint, reads them,
rolls back, and writes them again the way Kabar wrote them before, one ``enqueue`` per
graduate with the text rendered by ``bot.catalog.text``; both must be the same rows, byte for
byte, for a cohort mixing languages, awkward names and graduates who cannot be messaged.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from bot import catalog, fanout
from bot.broadcasts import (
    JobDraft,
    announcement_message,
    broadcast_job,
    create_announcement,
    create_job,
    deadline_text,
    job_message,
    target_recipients,
)
from bot.checkins import open_round, send_reminders, start_rounds_now
from bot.models import (
    MSG_PENDING,
    MSG_SUPPRESSED,
    REPORT_OPEN,
    REPORT_UNANSWERED,
    Broadcast,
    CheckInRound,
    Cohort,
    Conversation,
    Graduate,
    Message,
    ProgressReport,
)
from bot.outbox import enqueue
from tests.factories import make_cohort

NAMES = ["Siti Aminah", "O'Brien", 'Dewi "Ani" Lestari', "100% {name} {{cohort}}", "Rina 🌸🇮🇩",
         "", "Back\\slash", "Ñoño Çelik", "Budi; DROP TABLE messages;--", "Agus  Salim "]
LANGUAGES = ["id", "en", "", "jv", "id", "en", "jv", "", "en", "id"]

MESSAGE_FIELDS = ("graduate_id", "cohort_id", "phone", "kind", "body", "content_variables",
                  "dedupe_key", "status", "round_id", "broadcast_id", "attempts", "direction")


def _mixed_cohort(session, name="Menjahit 1", first_phone=6281300000001) -> Cohort:
    """Ten graduates who can be messaged, in every language and with awkward names, plus one
    who opted out and one who left (inactive)."""
    cohort = make_cohort(session, name=name)
    for i, (who, language) in enumerate(zip(NAMES, LANGUAGES, strict=True)):
        session.add(Graduate(cohort_id=cohort.id, name=who, phone=f"+{first_phone + i}",
                             language=language, skill="menjahit"))
    session.add(Graduate(cohort_id=cohort.id, name="Opted Out", phone=f"+{first_phone + 20}",
                         language="id", opted_out=True))
    session.add(Graduate(cohort_id=cohort.id, name="Left", phone=f"+{first_phone + 21}",
                         language="en", active=False))
    session.flush()
    return cohort


def _messages(session) -> list[tuple]:
    rows = session.scalars(select(Message).order_by(Message.dedupe_key)).all()
    return [tuple(getattr(m, f) for f in MESSAGE_FIELDS) for m in rows]


def _round_state(session, round_id) -> tuple:
    reports = session.execute(select(ProgressReport.graduate_id, ProgressReport.status)
                              .where(ProgressReport.round_id == round_id)
                              .order_by(ProgressReport.graduate_id)).all()
    conversations = session.execute(
        select(Conversation.graduate_id, Conversation.flow, Conversation.state,
               Conversation.misses, Conversation.data, ProgressReport.round_id)
        .join(ProgressReport, ProgressReport.id == Conversation.report_id)
        .order_by(Conversation.graduate_id)).all()
    closed = session.execute(select(ProgressReport.graduate_id, ProgressReport.status)
                             .where(ProgressReport.round_id != round_id)
                             .order_by(ProgressReport.graduate_id)).all()
    return [tuple(r) for r in reports], [tuple(c) for c in conversations], \
        [tuple(r) for r in closed]


def _old_round(session, settings, round_, cohort, not_before):
    """The prompts as Kabar wrote them one graduate at a time."""
    for graduate in session.scalars(select(Graduate).where(
            Graduate.cohort_id == cohort.id, Graduate.active.is_(True),
            Graduate.opted_out.is_(False)).order_by(Graduate.id)):
        language = graduate.language or settings.app.language
        enqueue(session, graduate=graduate, kind="checkin",
                body=catalog.text(language, "checkin.prompt", name=graduate.name,
                                  cohort=cohort.name),
                dedupe_key=f"checkin:{round_.id}:{graduate.id}", round_id=round_.id,
                content_variables={"1": graduate.name, "2": cohort.name},
                not_before=not_before)


@pytest.mark.parametrize("app_language", ["id", "en"])
def test_round_prompts_are_the_rows_and_texts_of_one_by_one(db, settings, app_language):
    settings = settings.with_overrides(app={"language": app_language})
    held = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    with db.session() as session:
        cohort = _mixed_cohort(session)
        round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=held, trigger="manual")
        session.add(round_)
        session.flush()
        savepoint = session.begin_nested()
        counts = fanout.fan_out_rounds(session, settings.app.language, [round_], held)
        new = _messages(session)
        savepoint.rollback()
        _old_round(session, settings, round_, cohort, held)
        session.flush()
        old = _messages(session)
        assert counts == {round_.id: 10}
        assert new == old
        assert len(new) == 10
        bodies = {row[2]: row[4] for row in new}
        # Spot checks a reader can follow: the fallback language and the name kept as written.
        assert bodies["+6281300000008"] == catalog.text(app_language, "checkin.prompt",
                                                        name="Ñoño Çelik", cohort="Menjahit 1")
        assert bodies["+6281300000006"] == catalog.text("en", "checkin.prompt", name="",
                                                        cohort="Menjahit 1")
        assert "100% {name} {{cohort}}" in bodies["+6281300000004"]
        assert all(row[7] == MSG_PENDING for row in new)
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.next_attempt_at != held)) == 0


def test_a_round_opens_one_report_and_conversation_each_and_closes_the_last(db, settings):
    with db.session() as session:
        cohort = _mixed_cohort(session)
        first = open_round(session, settings, cohort, datetime(2026, 12, 1, tzinfo=UTC))
        second = open_round(session, settings, cohort, datetime(2026, 12, 8, tzinfo=UTC))
        assert (first.prompts, second.prompts) == (10, 10)
        reports, conversations, closed = _round_state(session, second.round.id)
        graduates = sorted(g for g, _ in reports)
        assert len(graduates) == 10 and all(s == REPORT_OPEN for _, s in reports)
        assert [c[0] for c in conversations] == graduates
        assert all(c[1:] == ("checkin", "ask_status", 0, {}, second.round.id)
                   for c in conversations)
        assert [g for g, _ in closed] == graduates
        assert {s for _, s in closed} == {REPORT_UNANSWERED}
        session.refresh(second.round)
        assert second.round.prompted == 10


def test_reminders_are_the_rows_and_texts_of_one_by_one(db, settings):
    started = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    with db.session() as session:
        cohort = _mixed_cohort(session)
        round_ = open_round(session, settings, cohort, started).round
        session.execute(ProgressReport.__table__.update().values(created_at=started))
        later = started + timedelta(days=3)
        savepoint = session.begin_nested()
        assert send_reminders(session, settings, later) == 10
        new = [row for row in _messages(session) if row[3] == "reminder"]
        reminded = session.scalars(select(ProgressReport.reminded_at)
                                   .where(ProgressReport.round_id == round_.id)).all()
        savepoint.rollback()
        for report in session.scalars(select(ProgressReport).where(
                ProgressReport.round_id == round_.id).order_by(ProgressReport.id)):
            graduate = session.get(Graduate, report.graduate_id)
            language = graduate.language or settings.app.language
            enqueue(session, graduate=graduate, kind="reminder",
                    body=catalog.text(language, "checkin.reminder", name=graduate.name,
                                      cohort=cohort.name),
                    dedupe_key=f"reminder:{report.id}", round_id=report.round_id,
                    content_variables={"1": graduate.name, "2": cohort.name})
        session.flush()
        old = [row for row in _messages(session) if row[3] == "reminder"]
        assert new == old
        assert reminded == [later] * 10
    with db.session() as session:  # reports not marked, reminders queued: nothing more
        assert send_reminders(session, settings, started + timedelta(days=3)) == 0
        assert session.scalar(select(func.count(Message.id))
                              .where(Message.kind == "reminder")) == 10
    with db.session() as session:
        assert send_reminders(session, settings, started + timedelta(days=4)) == 0


def test_broadcast_messages_are_the_rows_and_texts_of_one_by_one(db, settings):
    with db.session() as session:
        one = _mixed_cohort(session, "Menjahit 1")
        two = _mixed_cohort(session, "Tata Boga 'A' 100%", first_phone=6281300000101)
        job = create_job(session, settings, JobDraft(
            title="Operator jahit {title} 50%", employer="PT Sandang \"Jaya\" 🧵",
            location="Bandung", deadline=None), actor="staff")
        recipients = target_recipients(session, [one.id, two.id], job=job)
        assert len(recipients) == 20
        for kind in ("job_opening", "announcement"):
            bc = Broadcast(kind=kind, job_id=job.id, body="", target={})
            session.add(bc)
            session.flush()
            ids = [g.id for g in recipients]
            text = "Pelatihan lanjutan {cohort} 100% 🎉\nBesok jam 9, di 'aula'."
            savepoint = session.begin_nested()
            if kind == "job_opening":
                fanout.fan_out_job(
                    session, bc.id, ids, title=job.title, employer=job.employer,
                    location=job.location, code=job.code,
                    deadline={lang: deadline_text(lang, job.deadline)
                              for lang in catalog.LANGUAGES})
            else:
                fanout.fan_out_announcement(session, bc.id, ids, text)
            new = _messages(session)
            new_order = session.scalars(select(Message.graduate_id).order_by(Message.id)).all()
            savepoint.rollback()
            names = {one.id: one.name, two.id: two.name}
            for graduate in recipients:  # the code before, verbatim
                if kind == "job_opening":
                    enqueue(session, graduate=graduate, kind="job_opening",
                            body=job_message(graduate.language, job),
                            dedupe_key=f"broadcast:{bc.id}:{graduate.id}", broadcast_id=bc.id,
                            content_variables={
                                "1": job.title, "2": job.employer, "3": job.location,
                                "4": deadline_text(graduate.language, job.deadline),
                                "5": job.code})
                else:
                    cohort = names[graduate.cohort_id]
                    enqueue(session, graduate=graduate, kind="announcement",
                            body=announcement_message(graduate.language, text, cohort),
                            dedupe_key=f"broadcast:{bc.id}:{graduate.id}", broadcast_id=bc.id,
                            content_variables={"1": cohort, "2": text})
            session.flush()
            old = _messages(session)
            old_order = session.scalars(select(Message.graduate_id).order_by(Message.id)).all()
            assert new == old
            assert new_order == old_order  # the outbox sends them in the same order
            session.execute(Message.__table__.delete())


def test_a_job_sent_twice_reaches_nobody_twice(db, settings):
    with db.session() as session:
        cohort = _mixed_cohort(session)
        job = create_job(session, settings, JobDraft(title="Penjahit", employer="CV Maju",
                                                     location="Solo"), actor="staff")
        bc = broadcast_job(session, settings, job, [cohort.id], actor="staff")
        assert bc.recipient_count == 10
        # The same broadcast written again (a second process, a retry) to everyone, the two
        # who cannot be messaged included: the ten keep their one row each, the other two get
        # a suppressed row, as enqueue writes it for an opted-out or inactive graduate.
        fanout.fan_out_job(session, bc.id, [g.id for g in session.scalars(select(Graduate))],
                           title=job.title, employer=job.employer, location=job.location,
                           code=job.code, deadline={lang: "x" for lang in catalog.LANGUAGES})
        statuses = session.execute(select(Message.status, func.count())
                                   .group_by(Message.status)).all()
        assert sorted(statuses) == [(MSG_PENDING, 10), (MSG_SUPPRESSED, 2)]
        assert target_recipients(session, [cohort.id], job=job) == []


def _bulk_cohorts(session, sizes: list[int]) -> list[Cohort]:
    """Cohorts of the given sizes, graduates interleaved by id across the cohorts, every tenth
    one opted out (not counted in the size)."""
    cohorts = [make_cohort(session, name=f"Paket {i}", join_code=f"PKT{i}")
               for i in range(len(sizes))]
    rows, phone = [], 6285000000000
    remaining = list(sizes)
    while any(remaining):
        for index, cohort in enumerate(cohorts):
            if remaining[index]:
                phone += 1
                rows.append({"cohort_id": cohort.id, "name": f"Lulusan {phone}",
                             "phone": f"+{phone}", "language": ("id", "en")[phone % 2],
                             "active": True, "opted_out": False})
                remaining[index] -= 1
                if phone % 10 == 0:
                    phone += 1
                    rows.append({"cohort_id": cohort.id, "name": "Tidak", "phone": f"+{phone}",
                                 "language": "id", "active": True, "opted_out": True})
    session.execute(insert(Graduate), rows)
    return cohorts


def test_chunk_boundaries_every_graduate_once(db, settings, monkeypatch):
    """2,501 graduates: chunks of 1,000 across two cohorts whose ids interleave."""
    monkeypatch.setattr(fanout, "FAN_OUT_CHUNK", 1000)
    monkeypatch.setattr(fanout, "FAN_OUT_CHUNK_POSTGRESQL", 1000)
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    with db.session() as session:
        cohorts = _bulk_cohorts(session, [1300, 1201])
        results = start_rounds_now(session, settings, None, now=now)
        assert [r.prompts for _line, r in results] == [1300, 1201]
        bc = create_announcement(session, settings, None, "Info", actor="staff")
    with db.session() as session:
        eligible = select(Graduate.id).where(Graduate.opted_out.is_(False))
        for kind in ("checkin", "announcement"):
            got = session.execute(select(Message.graduate_id, func.count())
                                  .where(Message.kind == kind)
                                  .group_by(Message.graduate_id)).all()
            assert sorted(g for g, _ in got) == sorted(session.scalars(eligible))
            assert {n for _, n in got} == {1}
        assert session.scalar(select(func.count(ProgressReport.id))) == 2501
        assert session.scalar(select(func.count(Conversation.graduate_id))) == 2501
        assert bc.recipient_count == 2501
        rounds = session.scalars(select(CheckInRound).order_by(CheckInRound.cohort_id)).all()
        assert [r.prompted for r in rounds] == [1300, 1201]
        assert [r.cohort_id for r in rounds] == [c.id for c in cohorts]
        # Each prompt is in its graduate's own round.
        assert session.scalar(
            select(func.count(Message.id))
            .join(Graduate, Graduate.id == Message.graduate_id)
            .join(CheckInRound, CheckInRound.id == Message.round_id)
            .where(CheckInRound.cohort_id != Graduate.cohort_id)) == 0
    with db.session() as session:  # the same minute again: nothing added
        again = start_rounds_now(session, settings, None, now=now, force=True)
        assert [r for _line, r in again] == [None, None]
        assert session.scalar(select(func.count(Message.id))) == 2 * 2501
    later = datetime.now(UTC) + timedelta(days=3)
    with db.session() as session:
        assert send_reminders(session, settings, later) == 2501
    with db.session() as session:
        assert send_reminders(session, settings, later) == 0


def test_two_processes_starting_the_same_rounds_prompt_each_graduate_once(db, settings):
    with db.session() as session:
        _bulk_cohorts(session, [1100, 400])
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def start():
        # A connection of its own, as another process would have.
        from bot.db import Database

        other = Database(settings.database.url)
        try:
            barrier.wait(timeout=10)
            with other.session() as session:
                outcomes.append([r.prompts if r else None for _line, r in start_rounds_now(
                    session, settings, None, now=now, force=True)])
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)
        finally:
            other.dispose()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(outcomes, key=str) == sorted([[1100, 400], [None, None]], key=str)
    with db.session() as session:
        assert session.scalar(select(func.count(CheckInRound.id))) == 2
        assert session.scalar(select(func.count(Message.id))) == 1500
        assert session.scalar(select(func.count(func.distinct(Message.graduate_id)))) == 1500
        assert session.scalar(select(func.count(ProgressReport.id))) == 1500


@pytest.mark.parametrize("template", ["Halo {name!r}", "Halo {name:>20}", "Halo {name.upper}",
                                      "Halo {phone}", "Halo {0}", "Halo {name"])
def test_a_catalog_text_the_sql_cannot_render_stops_the_start(monkeypatch, template):
    real = catalog.load

    def load(language):
        return {**real(language), "checkin.prompt": template}

    monkeypatch.setattr(fanout.catalog, "load", load)
    with pytest.raises(catalog.CatalogError, match="checkin.prompt"):
        fanout.check_catalog()


def test_the_shipped_catalog_passes_the_check():
    fanout.check_catalog()
