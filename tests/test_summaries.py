"""The stored summaries (bot.summaries) always say what the progress reports say.

The dashboard, job targeting by status and the reply log's "needs help" read a graduate's
latest answer and a round's counts from stored columns; these tests change reports every way
Kabar does (the WhatsApp conversation, a staff correction, rounds run late, random edits) and
check the stored values against the reports, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from bot import summaries
from bot.broadcasts import JobDraft, preview_recipients
from bot.cli import main
from bot.db import Database
from bot.migrate import upgrade
from bot.models import (
    EMPLOYMENT_STATUSES,
    REPORT_COMPLETED,
    CheckInRound,
    Graduate,
    ProgressReport,
    utcnow,
)
from tests.conftest import PG_URL
from tests.factories import make_cohort, make_graduates
from tests.live import wait_for
from tests.staff_helpers import csrf_from, signed_in_client
from tests.test_checkin_flow import GraduateChat

NOW = utcnow().replace(microsecond=0)


def stored(db, graduate_id: int) -> tuple:
    with db.session() as s:
        g = s.get(Graduate, graduate_id)
        return g.answer_report_id, g.answer_status, g.answer_uses_skill, g.help_report_id


def counts(db, round_id: int) -> tuple:
    with db.session() as s:
        r = s.get(CheckInRound, round_id)
        return r.prompted, r.responded, r.rating_sum, r.ratings


def nothing_stale(db) -> dict:
    with db.engine.connect() as conn:
        return summaries.stale(conn)


def a_round(s, cohort, at, trigger="schedule") -> CheckInRound:
    round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=at, trigger=trigger)
    s.add(round_)
    s.flush()
    return round_


def answered(s, round_, graduate, status, uses=None, rating=None, help_text=None):
    report = ProgressReport(round_id=round_.id, graduate_id=graduate.id, raw_answers={},
                            status=REPORT_COMPLETED, employment_status=status,
                            uses_training_skill=uses, skill_rating=rating, needs_help=help_text,
                            responded_at=round_.scheduled_for + timedelta(hours=1),
                            completed_at=round_.scheduled_for + timedelta(hours=1, minutes=3))
    s.add(report)
    s.flush()
    return report


def test_a_checkin_on_whatsapp_updates_the_graduate_and_the_round(client, settings, db):
    """Prompted, answered, rated and asked for help: each shows up in the stored figures."""
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
    chat = GraduateChat(client, settings, db, graduate)
    round_id = chat.begin()
    assert counts(db, round_id) == (1, 0, 0, 0)
    assert stored(db, chat.id) == (None, None, None, None)

    chat.send("sdh kerja di pabrik garmen")
    chat.send("PT Maju Jaya")
    chat.send("iya pakai jahit")
    chat.send("4")
    chat.send("butuh mesin obras")

    report = chat.report()
    assert report.employment_status == "employed" and report.skill_rating == 4
    assert stored(db, chat.id) == (report.id, "employed", report.uses_training_skill, report.id)
    assert counts(db, round_id) == (1, 1, 4, 1)
    assert nothing_stale(db) == {"graduates": [], "rounds": []}


def test_a_round_run_late_does_not_hide_the_newer_answer(db):
    """A missed September round run in November is older than October's: October counts."""
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
        october = answered(s, a_round(s, cohort, NOW - timedelta(days=30)), graduate,
                           "employed", uses=True)
        answered(s, a_round(s, cohort, NOW - timedelta(days=60)), graduate, "seeking",
                 help_text="butuh kerja")
        job = JobDraft(title="Operator jahit", employer="PT Garmen", location="Bekasi",
                       cohort_names=[cohort.name], statuses=["employed"])
        targeted = [g.id for g in preview_recipients(s, job)]
    assert stored(db, graduate.id) == (october.id, "employed", True, None)
    assert targeted == [graduate.id]  # job targeting by latest status reads the same answer


def test_a_help_request_without_a_status_is_still_a_help_request(app, client, settings, db):
    """Three replies Kabar cannot read skip the status question; the help asked for counts."""
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
    chat = GraduateChat(client, settings, db, graduate)
    chat.begin()
    for reply in ("qwerty", "zzz", "xkcd", "4", "butuh modal usaha jahit"):
        chat.send(reply)
    report = chat.report()
    assert (report.employment_status, report.needs_help) == (None, "butuh modal usaha jahit")
    assert stored(db, chat.id) == (None, None, None, report.id)
    staff = signed_in_client(app, db)
    log = staff.get("/staff/log?needs_help=1").get_data(as_text=True)
    assert "butuh modal usaha jahit" in log
    dashboard = staff.get("/staff/dashboard").get_data(as_text=True)
    assert "butuh modal usaha jahit" in dashboard


def test_moving_a_round_in_time_changes_which_answer_is_latest(db):
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
        first = answered(s, a_round(s, cohort, NOW - timedelta(days=30)), graduate, "seeking")
        second = answered(s, a_round(s, cohort, NOW - timedelta(days=20)), graduate, "employed")
        ids = graduate.id, first.id, first.round_id
    assert stored(db, ids[0])[:2] == (second.id, "employed")
    with db.session() as s:
        s.get(CheckInRound, ids[2]).scheduled_for = NOW - timedelta(days=10)
    assert stored(db, ids[0])[:2] == (ids[1], "seeking")
    assert nothing_stale(db) == {"graduates": [], "rounds": []}


def test_a_round_without_a_status_keeps_the_last_answer(db):
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
        first = answered(s, a_round(s, cohort, NOW - timedelta(days=30)), graduate,
                         "self_employed", help_text="modal usaha")
        later = a_round(s, cohort, NOW)
        s.add(ProgressReport(round_id=later.id, graduate_id=graduate.id, raw_answers={}))
    assert stored(db, graduate.id) == (first.id, "self_employed", None, first.id)
    assert counts(db, later.id) == (1, 0, 0, 0)


def correct(client, graduate_id, report_id, **fields):
    page = client.get(f"/staff/graduates/{graduate_id}").get_data(as_text=True)
    data = {"csrf_token": csrf_from(page), "employment_status": "seeking", "employer": "",
            "uses_training_skill": "", "skill_rating": "", "needs_help": "", **fields}
    response = client.post(f"/staff/graduates/{graduate_id}/reports/{report_id}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)


def test_staff_corrections_reach_the_dashboard(app, db):
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
        old = answered(s, a_round(s, cohort, NOW - timedelta(days=30)), graduate, "seeking",
                       rating=2)
        new = answered(s, a_round(s, cohort, NOW), graduate, "seeking", rating=3,
                       help_text="butuh info lowongan")
        ids = graduate.id, old.id, new.id, old.round_id, new.round_id
    graduate_id, old_id, new_id, old_round, new_round = ids
    admin = signed_in_client(app, db)

    correct(admin, graduate_id, old_id, employment_status="employed", skill_rating="5")
    assert stored(db, graduate_id) == (new_id, "seeking", None, new_id)  # not the latest
    assert counts(db, old_round) == (1, 1, 5, 1)

    correct(admin, graduate_id, new_id, employment_status="employed",
            uses_training_skill="yes", skill_rating="4", needs_help="")
    assert stored(db, graduate_id) == (new_id, "employed", True, None)
    assert counts(db, new_round) == (1, 1, 4, 1)
    html = admin.get("/staff/dashboard").get_data(as_text=True)
    assert "butuh info lowongan" not in html  # no longer on the needs-help list
    assert nothing_stale(db) == {"graduates": [], "rounds": []}


def test_random_changes_leave_nothing_stale(db):
    """Many graduates, rounds and edits in random order: every stored value still matches."""
    rng = random.Random(7)
    with db.session() as s:
        cohorts = [make_cohort(s, name=f"Menjahit {i}") for i in range(3)]
        graduates = [g for i, c in enumerate(cohorts)
                     for g in make_graduates(s, c, 8, first_phone=6281300000000 + 100 * i)]
        rounds = [a_round(s, c, NOW - timedelta(days=30 * k)) for c in cohorts for k in range(4)]
    for step in range(300):
        with db.session() as s:
            action = rng.random()
            graduate = s.get(Graduate, rng.choice(graduates).id)
            mine = [r for r in rounds if r.cohort_id == graduate.cohort_id]
            round_ = rng.choice(mine)
            report = s.scalar(select(ProgressReport).where(
                ProgressReport.round_id == round_.id,
                ProgressReport.graduate_id == graduate.id))
            if report is None:
                report = ProgressReport(round_id=round_.id, graduate_id=graduate.id,
                                        raw_answers={})
                s.add(report)
            if action < 0.5:  # answer (or change) part of a check-in
                report.responded_at = report.responded_at or NOW - timedelta(minutes=step)
                report.employment_status = rng.choice((*EMPLOYMENT_STATUSES, None))
                report.uses_training_skill = rng.choice((True, False, None))
                report.skill_rating = rng.choice((1, 2, 3, 4, 5, None))
                report.needs_help = rng.choice((None, "", "  ", "butuh mesin"))
            elif action < 0.8:  # a staff correction of one field
                field = rng.choice(("employment_status", "needs_help", "skill_rating"))
                value = {"employment_status": rng.choice(EMPLOYMENT_STATUSES),
                         "needs_help": rng.choice((None, "modal")),
                         "skill_rating": rng.choice((None, 3))}[field]
                setattr(report, field, value)
            else:  # the report moves to another of the cohort's rounds, if that one is free
                other = rng.choice(mine)
                taken = s.scalar(select(ProgressReport.id).where(
                    ProgressReport.round_id == other.id,
                    ProgressReport.graduate_id == graduate.id))
                if taken is None:
                    report.round_id = other.id
    assert nothing_stale(db) == {"graduates": [], "rounds": []}
    with db.session() as s:
        answered_count = s.scalar(select(ProgressReport.id).where(
            ProgressReport.employment_status.is_not(None)).limit(1))
        assert answered_count is not None  # the walk did answer something


def test_stale_finds_a_summary_that_was_changed_behind_its_back(db):
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
        round_ = a_round(s, cohort, NOW)
        answered(s, round_, graduate, "studying", rating=4)
        ids = graduate.id, round_.id
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE graduates SET answer_status = 'seeking'"))
        conn.execute(text("UPDATE checkin_rounds SET responded = 0"))
    assert nothing_stale(db) == {"graduates": [ids[0]], "rounds": [ids[1]]}
    with db.engine.begin() as conn:
        summaries.rebuild(conn)
    assert nothing_stale(db) == {"graduates": [], "rounds": []}
    assert stored(db, ids[0])[1] == "studying"


# --- the migration's backfill -----------------------------------------------------------------

@pytest.fixture
def empty_url(tmp_path):
    """A database with nothing in it, of the kind under test."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'backfill.db'}"
        return
    name = "kabar_backfill_" + uuid.uuid4().hex[:8]
    admin = Database(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = PG_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def test_upgrading_an_existing_database_fills_the_summaries(empty_url):
    upgrade(empty_url, "0006")
    database = Database(empty_url)
    try:
        with database.engine.begin() as conn:
            for statement in (
                "INSERT INTO institutions (id, name, created_at) VALUES (1, 'LPKS', :t)",
                "INSERT INTO cohorts (id, institution_id, name, join_code, timezone, active,"
                " created_at, updated_at) VALUES (1, 1, 'Menjahit 1', 'MJ1', 'Asia/Jakarta',"
                " true, :t, :t)",
                "INSERT INTO graduates (id, cohort_id, name, phone, language, active, opted_out,"
                " created_at, updated_at) VALUES (1, 1, 'Siti', '+6281200000001', 'id', true,"
                " false, :t, :t), (2, 1, 'Budi', '+6281200000002', 'id', true, false, :t, :t)",
                "INSERT INTO checkin_rounds (id, cohort_id, scheduled_for, trigger, created_at)"
                " VALUES (1, 1, :early, 'schedule', :t), (2, 1, :t, 'schedule', :t)",
                "INSERT INTO progress_reports (id, round_id, graduate_id, status,"
                " employment_status, uses_training_skill, skill_rating, needs_help,"
                " raw_answers, created_at, responded_at) VALUES"
                " (1, 1, 1, 'completed', 'seeking', NULL, 2, 'butuh kerja', '{}', :t, :t),"
                " (2, 2, 1, 'completed', 'employed', true, 4, '  ', '{}', :t, :t),"
                " (3, 1, 2, 'completed', NULL, NULL, 3, 'butuh modal', '{}', :t, :t),"
                " (4, 2, 2, 'open', NULL, NULL, NULL, NULL, '{}', :t, NULL)",
                "UPDATE progress_reports SET completed_at = responded_at"
                " WHERE status = 'completed'",
            ):
                conn.execute(text(statement), {"t": NOW, "early": NOW - timedelta(days=30)})
        upgrade(empty_url)
        assert stored(database, 1) == (2, "employed", True, None)  # no help any more
        assert stored(database, 2) == (None, None, None, 3)  # help, though no status
        assert counts(database, 1) == (2, 2, 5, 2)
        assert counts(database, 2) == (2, 1, 4, 1)
        assert nothing_stale(database) == {"graduates": [], "rounds": []}
    finally:
        database.dispose()


# --- two writers at once (PostgreSQL; SQLite has one writer at a time) ------------------------

def wait_for_a_lock_wait(db, what: str) -> None:
    """Until some session of this database waits on a row lock (PostgreSQL)."""
    def waiting() -> bool:
        with db.engine.connect() as conn:
            return bool(conn.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")))
    wait_for(waiting, timeout=10, message=what)


@pytest.mark.skipif(not PG_URL, reason="concurrent writers need PostgreSQL")
def test_two_answers_in_one_round_committed_at_once_are_both_counted(db):
    with db.session() as s:
        cohort = make_cohort(s)
        siti, budi = make_graduates(s, cohort, 2)
        round_ = a_round(s, cohort, NOW)
        for graduate in (siti, budi):
            s.add(ProgressReport(round_id=round_.id, graduate_id=graduate.id, raw_answers={}))
        ids = round_.id, siti.id, budi.id
    round_id = ids[0]

    def answer(session, graduate_id):
        report = session.scalar(select(ProgressReport).where(
            ProgressReport.graduate_id == graduate_id))
        report.responded_at, report.skill_rating = utcnow(), 3
        report.employment_status = "employed"
        session.flush()

    first = db.sessions()
    answer(first, ids[1])  # holds the round until it commits
    errors: list[BaseException] = []

    def second():
        try:
            with db.session() as session:
                answer(session, ids[2])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=second)
    worker.start()
    wait_for_a_lock_wait(db, "the second writer to wait for the first")
    first.commit()
    first.close()
    worker.join(10)
    assert not worker.is_alive() and not errors
    assert counts(db, round_id) == (2, 2, 6, 2)
    assert nothing_stale(db) == {"graduates": [], "rounds": []}


@pytest.mark.skipif(not PG_URL, reason="concurrent writers need PostgreSQL")
def test_a_correction_while_a_reply_is_handled_waits_for_it(app, db):
    """The inbox holds the graduate while it handles a reply; a staff correction of the same
    report waits for it and then applies, rather than deadlocking."""
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
        report = answered(s, a_round(s, cohort, NOW), graduate, "seeking", rating=2)
        ids = graduate.id, report.id
    admin = signed_in_client(app, db)
    page = admin.get(f"/staff/graduates/{ids[0]}").get_data(as_text=True)
    inbox = db.sessions()
    inbox.scalar(select(Graduate).where(Graduate.id == ids[0]).with_for_update())
    answers: list = []

    def staff_correction():
        answers.append(admin.post(f"/staff/graduates/{ids[0]}/reports/{ids[1]}", data={
            "csrf_token": csrf_from(page), "employment_status": "employed", "employer": "",
            "uses_training_skill": "yes", "skill_rating": "4", "needs_help": ""}))

    worker = threading.Thread(target=staff_correction)
    worker.start()
    wait_for_a_lock_wait(db, "the correction to wait for the reply")
    # The reply being handled changes the same report, then commits.
    inbox.get(ProgressReport, ids[1]).needs_help = "butuh info lowongan"
    inbox.commit()
    inbox.close()
    worker.join(10)
    assert not worker.is_alive() and answers[0].status_code == 302
    with db.session() as s:
        done = s.get(ProgressReport, ids[1])
        assert (done.employment_status, done.needs_help) == ("employed", None)
    assert stored(db, ids[0]) == (ids[1], "employed", True, None)
    assert nothing_stale(db) == {"graduates": [], "rounds": []}


def test_the_summaries_command_finds_and_repairs_stale_rows(tmp_path, settings, db):
    with db.session() as s:
        cohort = make_cohort(s)
        graduate = make_graduates(s, cohort, 1)[0]
        answered(s, a_round(s, cohort, NOW), graduate, "employed", rating=5)
    with db.engine.begin() as conn:  # someone edits the database by hand
        conn.execute(text("UPDATE graduates SET answer_status = NULL"))
    config = tmp_path / "kabar.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    runner = CliRunner()
    checked = runner.invoke(main, ["--config", str(config), "db", "summaries", "--check"])
    assert checked.exit_code == 1 and "stale: 1 graduates, 0 rounds" in checked.output
    repaired = runner.invoke(main, ["--config", str(config), "db", "summaries"])
    assert repaired.exit_code == 0, repaired.output
    assert nothing_stale(db) == {"graduates": [], "rounds": []}
    again = runner.invoke(main, ["--config", str(config), "db", "summaries", "--check"])
    assert again.exit_code == 0 and "stale: 0 graduates, 0 rounds" in again.output
