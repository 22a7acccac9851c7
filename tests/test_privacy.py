"""UU PDP 27/2022: erase one graduate, copy their data, retention, and logs without numbers."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.checkins import start_round
from bot.cli import main
from bot.models import (
    AuditLog,
    CheckInRound,
    Cohort,
    ErasedNumber,
    Graduate,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
    utcnow,
)
from bot.privacy import apply_retention, mask_log_line, mask_phone
from bot.roster import import_roster
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client
from tests.test_webhook import post_signed
from tests.test_webhook import twilio_form as inbound_form

SITI = "+6281234567565"


@pytest.fixture
def siti(db, settings):
    """A graduate who answered a check-in, asked for help and is on a shortlist."""
    with db.session() as session:
        cohort = make_cohort(session)
        make_graduates(session, cohort, 3)
        graduate = Graduate(cohort_id=cohort.id, name="Siti Nurhaliza", phone=SITI,
                            skill="menjahit")
        session.add(graduate)
        session.flush()
        start_round(session, settings, cohort, datetime(2026, 5, 1, 2, tzinfo=UTC),
                    ignore_quiet_hours=True)
        job = JobOpening(code="JHT01", title="Penjahit", employer="PT Garmen",
                         location="Bandung")
        session.add(job)
        session.flush()
        session.add(Interest(job_id=job.id, graduate_id=graduate.id))
        return graduate.id


def _answer(client, settings, *bodies):
    for body in bodies:
        assert post_signed(client, settings, inbound_form(SITI, body)).status_code == 200


def _round_figures(db):
    with db.session() as session:
        return [(r.prompted, r.responded, r.rating_sum, r.ratings)
                for r in session.scalars(select(CheckInRound).order_by(CheckInRound.id))]


def test_an_admin_erases_a_graduate_and_only_anonymous_figures_remain(app, db, settings, siti):
    client = app.test_client()
    _answer(client, settings, "sudah kerja di PT Sepatu Bata", "ya", "4",
            "tolong bantu cari kerja lain")
    before = _round_figures(db)
    admin = signed_in_client(app, db)
    page = admin.get(f"/staff/graduates/{siti}").get_data(as_text=True)
    assert "Hapus peserta" in page

    # Without the confirmation nothing happens.
    admin.post(f"/staff/graduates/{siti}/erase", data={"csrf_token": csrf_from(page)})
    with db.session() as session:
        assert session.get(Graduate, siti).name == "Siti Nurhaliza"

    answer = admin.post(f"/staff/graduates/{siti}/erase",
                        data={"csrf_token": csrf_from(page), "confirm": "yes"})
    assert answer.status_code == 302
    with db.session() as session:
        graduate = session.get(Graduate, siti)
        assert "Siti" not in graduate.name and graduate.phone != SITI
        assert not graduate.can_receive
        bodies = session.scalars(select(Message.body).where(
            Message.graduate_id == siti)).all()
        assert bodies and all(b == "" for b in bodies)
        assert not session.scalar(select(func.count()).select_from(Message)
                                  .where(Message.phone == SITI))
        report = session.scalar(select(ProgressReport).where(
            ProgressReport.graduate_id == siti))
        assert report.raw_answers == {} and "Bata" not in (report.employer or "")
        assert "bantu" not in (report.needs_help or "")
        assert not session.scalar(select(func.count()).select_from(Interest)
                                  .where(Interest.graduate_id == siti))
        assert session.scalar(select(func.count()).select_from(ErasedNumber)) == 1
        entries = session.scalars(select(AuditLog.detail)).all()
        assert not any(SITI in json.dumps(e) or "Nurhaliza" in json.dumps(e) for e in entries)
        assert session.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == "graduate.erase")) == 1
    assert _round_figures(db) == before  # the round's counts stay


def test_only_admins_may_erase_or_copy(app, db, siti):
    staff = signed_in_client(app, db, name="sari", role="staff")
    token = csrf_from(staff.get("/staff/roster").get_data(as_text=True))
    assert staff.post(f"/staff/graduates/{siti}/erase",
                      data={"csrf_token": token, "confirm": "yes"}).status_code == 403
    assert staff.get(f"/staff/graduates/{siti}/data.json").status_code == 403


def test_an_erased_number_is_not_imported_again_unless_allowed(app, db, settings, siti,
                                                              tmp_path):
    admin = signed_in_client(app, db)
    page = admin.get(f"/staff/graduates/{siti}").get_data(as_text=True)
    admin.post(f"/staff/graduates/{siti}/erase",
               data={"csrf_token": csrf_from(page), "confirm": "yes"})
    roster = tmp_path / "roster.csv"
    roster.write_text("lpks,paket,nama,no_wa\nLPKS A'nur,Menjahit 1,Siti Nurhaliza,"
                      "0812-3456-7565\n", encoding="utf-8")
    with db.session() as session:
        report = import_roster(session, roster)
    assert report.created == 0 and "erased on request" in report.rejected[0].reason
    assert SITI not in report.rejected[0].reason  # masked
    with db.session() as session:
        assert import_roster(session, roster, allow_erased=True).created == 1


def test_a_copy_of_one_graduates_data_from_the_console_and_the_cli(app, db, settings, siti,
                                                                  tmp_path):
    _answer(app.test_client(), settings, "sudah kerja di PT Sepatu Bata")
    admin = signed_in_client(app, db)
    answer = admin.get(f"/staff/graduates/{siti}/data.json")
    assert answer.status_code == 200
    data = json.loads(answer.get_data())
    assert data["graduate"]["phone"] == SITI
    assert any("Sepatu Bata" in m["body"] for m in data["messages"])
    assert data["job_interests"][0]["job_code"] == "JHT01"

    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n",
                      encoding="utf-8")
    runner = CliRunner(env={"KABAR_CONFIG": None, "KABAR_DATABASE_URL": None})
    output = tmp_path / "siti.json"
    done = runner.invoke(main, ["--config", str(config), "graduate", "export", "0812 3456 7565",
                                "--output", str(output)])
    assert done.exit_code == 0, done.output
    assert json.loads(output.read_text(encoding="utf-8"))["graduate"]["name"] == \
        "Siti Nurhaliza"
    done = runner.invoke(main, ["--config", str(config), "graduate", "erase", SITI, "--yes"])
    assert done.exit_code == 0, done.output
    assert "+62812****565" in done.output
    with db.session() as session:
        assert session.get(Graduate, siti).name != "Siti Nurhaliza"
        actions = session.scalars(select(AuditLog.action)).all()
    assert actions.count("graduate.data_copy") == 2


def test_retention_empties_old_bodies_and_deletes_old_messages_of_unknown_numbers(
        client, db, settings, siti):
    _answer(client, settings, "sudah kerja")
    assert post_signed(client, settings, inbound_form("+6289999999999", "halo")).status_code \
        == 200
    later = utcnow() + timedelta(days=40)
    with db.session() as session:
        done = apply_retention(session, settings.with_overrides(
            privacy={"message_body_days": 730, "unknown_number_days": 30}), now=later)
    assert done["unknown_deleted"] >= 1 and done["bodies_emptied"] == 0
    with db.session() as session:
        assert not session.scalar(select(func.count()).select_from(Message)
                                  .where(Message.phone == "+6289999999999"))
        assert session.scalar(select(func.count()).select_from(Message)
                              .where(Message.phone == SITI, Message.body != ""))
        done = apply_retention(session, settings, now=utcnow() + timedelta(days=731))
    assert done["bodies_emptied"] >= 1
    with db.session() as session:
        assert not session.scalar(select(func.count()).select_from(Message)
                                  .where(Message.body != ""))


def test_logs_hold_no_numbers_message_text_or_sql_parameters(client, db, settings, caplog):
    caplog.set_level(logging.DEBUG)
    form = inbound_form("+6289876543210", "rahasia pribadi saya")
    assert post_signed(client, settings, form).status_code == 200
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "+6289876543210" not in text and "6289876543210" not in text
    assert "rahasia" not in text
    assert db.engine.hide_parameters
    assert mask_phone("to whatsapp:+6281234567565 now") == "to whatsapp:+62812****565 now"
    assert mask_log_line('127.0.0.1 - - "GET /staff/roster?q=0812345678 HTTP/1.1" 200') == \
        '127.0.0.1 - - "GET /staff/roster HTTP/1.1" 200'


def test_an_erased_number_is_not_added_again_from_the_console_unless_the_person_asked(
        app, db, siti):
    admin = signed_in_client(app, db)
    page = admin.get(f"/staff/graduates/{siti}").get_data(as_text=True)
    admin.post(f"/staff/graduates/{siti}/erase",
               data={"csrf_token": csrf_from(page), "confirm": "yes"})
    with db.session() as session:
        cohort_id = session.scalar(select(Cohort.id))
    form = {"csrf_token": csrf_from(admin.get("/staff/roster/new").get_data(as_text=True)),
            "name": "Siti Nurhaliza", "phone": "0812-3456-7565", "cohort_id": str(cohort_id),
            "language": "id"}
    refused = admin.post("/staff/roster/new", data=form)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "dihapus atas permintaannya" in html
    assert 'name="returning"' in html  # staff can say the person asked to return
    with db.session() as session:
        assert session.scalar(select(func.count(Graduate.id)).where(
            Graduate.phone == SITI)) == 0
    added = admin.post("/staff/roster/new", data={**form, "returning": "y"})
    assert added.status_code == 302
    with db.session() as session:
        assert session.scalar(select(Graduate.name).where(Graduate.phone == SITI)) == \
            "Siti Nurhaliza"
