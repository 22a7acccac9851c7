"""Starting a check-in by hand where the previous round is still open: warned, then --force."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.checkins import RoundStillOpen, send_rounds_now
from bot.cli import main
from bot.models import REPORT_OPEN, REPORT_UNANSWERED, CheckInRound, Message, ProgressReport
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates

WIB = ZoneInfo("Asia/Jakarta")
MONDAY_10 = datetime(2026, 3, 9, 10, 0, tzinfo=WIB).astimezone(UTC)


@pytest.fixture
def two_cohorts(db):
    with db.session() as session:
        make_graduates(session, make_cohort(session, "Menjahit 1"), 5)
        make_graduates(session, make_cohort(session, "Bordir 1", skill="bordir"), 3,
                       first_phone=6281200000101)


def prompts(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Message)
                              .where(Message.kind == "checkin"))


def answer(client, settings, phone: str, body: str) -> None:
    """The graduate writes, through the signed webhook."""
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{phone}",
            "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0"}
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        settings.app.public_url + "/twilio/inbound", form)
    response = client.post("/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 200, response.data


def test_open_round_names_unfinished_and_mid_answer_and_sends_nothing(db, client, settings,
                                                                       two_cohorts):
    with db.session() as session:
        send_rounds_now(session, settings, ["Menjahit 1"], now=MONDAY_10)
    answer(client, settings, "+6281200000001", "sudah kerja")  # first question answered
    answer(client, settings, "+6281200000002", "belum dapat kerja")
    later = MONDAY_10 + timedelta(days=1)
    with db.session() as session, pytest.raises(RoundStillOpen) as caught:
        send_rounds_now(session, settings, None, now=later)
    (still_open,) = caught.value.rounds  # Bordir 1 has no round yet
    assert still_open.describe() == (
        "Menjahit 1: the round of 2026-03-09 10:00 WIB is still open: 5 graduates have not "
        "finished it, 2 of them mid-answer")
    assert prompts(db) == 5  # neither cohort got anything
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(CheckInRound)) == 1


def test_force_starts_the_round_and_closes_the_open_check_ins(db, client, settings, two_cohorts):
    with db.session() as session:
        send_rounds_now(session, settings, ["Menjahit 1"], now=MONDAY_10)
    answer(client, settings, "+6281200000001", "sudah kerja")
    with db.session() as session:
        lines = send_rounds_now(session, settings, None, now=MONDAY_10 + timedelta(days=1),
                                force=True)
    assert sorted(lines) == ["Bordir 1: 3 prompts queued", "Menjahit 1: 5 prompts queued"]
    with db.session() as session:
        statuses = session.execute(
            select(ProgressReport.status, func.count()).join(CheckInRound)
            .where(CheckInRound.scheduled_for == MONDAY_10).group_by(ProgressReport.status))
        assert dict(statuses.all()) == {REPORT_UNANSWERED: 5}


def test_a_finished_round_needs_no_force(db, client, settings, two_cohorts):
    with db.session() as session:
        send_rounds_now(session, settings, ["Bordir 1"], now=MONDAY_10)
        for report in session.scalars(select(ProgressReport)):
            report.status = "completed"
    with db.session() as session:
        assert send_rounds_now(session, settings, ["Bordir 1"],
                               now=MONDAY_10 + timedelta(days=7)) == ["Bordir 1: 3 prompts queued"]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ProgressReport)
                              .where(ProgressReport.status == REPORT_OPEN)) == 3


def test_cli_warns_and_refuses_then_force_sends(db, client, settings, two_cohorts, tmp_path):
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n"
                      "[scheduler]\nquiet_hours = \"\"\n", encoding="utf-8")
    runner = CliRunner(env={"KABAR_CONFIG": None, "KABAR_DATABASE_URL": None})

    def kabar(*args):
        return runner.invoke(main, ["--config", str(config), "checkin", "send", *args])

    first = kabar("--cohort", "Menjahit 1", "--now")
    assert first.exit_code == 0, first.output
    assert "Menjahit 1: 5 prompts queued" in first.stdout
    answer(client, settings, "+6281200000003", "sdh kerja")
    with db.session() as session:  # the round was started yesterday
        for round_ in session.scalars(select(CheckInRound)):
            round_.scheduled_for -= timedelta(days=1)

    refused = kabar("--all", "--now")
    assert refused.exit_code == 1
    assert "warning: Menjahit 1: the round of" in refused.stderr
    assert "5 graduates have not finished it, 1 of them mid-answer" in refused.stderr
    assert "nothing sent" in refused.stderr and "--force" in refused.stderr
    assert prompts(db) == 5

    forced = kabar("--all", "--now", "--force")
    assert forced.exit_code == 0, forced.output
    assert "Bordir 1: 3 prompts queued" in forced.stdout
    assert "Menjahit 1: 5 prompts queued" in forced.stdout
    assert prompts(db) == 5 + 8
