"""The CLI names cohorts as WhatsApp does, reads dd/mm/yyyy dates, and says what it will send."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import main
from bot.db import Database
from bot.models import JobOpening, Message
from tests.factories import make_cohort, make_graduates


@pytest.fixture
def cli(tmp_path, settings):
    """``kabar`` with a config file naming the test database; two cohorts with join codes."""
    url = settings.database.url
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(url)}\n[app]\ntimezone = \"Asia/Jakarta\"\n",
                      encoding="utf-8")
    runner = CliRunner(env={"KABAR_CONFIG": None, "KABAR_DATABASE_URL": None})
    database = Database(url)
    with database.session() as session:
        make_graduates(session, make_cohort(session, "Menjahit 1", join_code="JAHIT1"), 2)
        make_graduates(session, make_cohort(session, "Kosong", join_code="KOSONG"), 0)

    def run(*args: str, input: str | None = None):
        return runner.invoke(main, ["--config", str(config), *args], input=input)

    run.db = database
    yield run
    database.dispose()


def outbox(db, kind: str) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Message.id)).where(Message.kind == kind))


def test_a_checkin_by_join_code_as_on_whatsapp(cli):
    result = cli("checkin", "send", "--cohort", "jahit1", "--now")
    assert result.exit_code == 0, result.output
    assert "Menjahit 1: 2 prompts queued" in result.output
    assert "prompts are in the outbox" in result.output
    assert outbox(cli.db, "checkin") == 2


def test_no_outbox_line_when_nothing_was_queued(cli):
    result = cli("checkin", "send", "--cohort", "KOSONG", "--now")
    assert result.exit_code == 0, result.output
    assert "Kosong: 0 prompts queued" in result.output
    assert "prompts are in the outbox" not in result.output
    assert "nothing was queued" in result.output


def test_an_unknown_cohort_names_the_known_ones(cli):
    result = cli("checkin", "send", "--cohort", "JAHIT9")
    assert result.exit_code == 1
    assert "cohort 'JAHIT9' not found" in result.output and "Menjahit 1" in result.output


def test_a_job_shows_its_message_before_sending_and_takes_a_day_first_deadline(cli):
    deadline = date.today() + timedelta(days=20)
    args = ("broadcast", "job", "--title", "Operator jahit", "--employer", "PT Sepatu KITB",
            "--location", "Batang", "--cohort", "jahit1", "--deadline", f"{deadline:%d/%m/%Y}")
    declined = cli(*args, input="n\n")
    assert declined.exit_code == 1
    assert "2 graduates will receive this job opening" in declined.output
    assert "Operator jahit" in declined.output and "PT Sepatu KITB" in declined.output
    assert f"{deadline:%d/%m/%Y}" in declined.output and "MINAT" in declined.output
    assert outbox(cli.db, "job_opening") == 0  # nothing recorded, nothing sent
    with cli.db.session() as session:
        assert session.scalar(select(func.count(JobOpening.id))) == 0

    sent = cli(*args, input="y\n")
    assert sent.exit_code == 0, sent.output
    with cli.db.session() as session:
        job = session.scalar(select(JobOpening))
        assert job.deadline == deadline
        bodies = session.scalars(select(Message.body).where(Message.kind == "job_opening")).all()
    # The message shown is the message sent, job code included.
    assert f"MINAT {job.code}" in sent.output
    assert len(bodies) == 2 and all(f"MINAT {job.code}" in body for body in bodies)
    shown = [line.strip() for line in sent.output.splitlines() if line.startswith("    ")]
    assert [line.strip() for line in bodies[0].splitlines() if line.strip()] == [
        line for line in shown if line]


@pytest.mark.parametrize(("deadline", "message"), [
    ("2030-12-31", None), ("31/12/2030", None), ("12/31/2030", "not a date on the calendar"),
    ("besok", "use dd/mm/yyyy")])
def test_deadlines_in_either_form(cli, deadline, message):
    result = cli("broadcast", "job", "--title", "Penjahit", "--employer", "CV Maju",
                 "--location", "Batang", "--all", "--deadline", deadline, input="n\n")
    if message is None:
        assert "31/12/2030" in result.output
    else:
        assert result.exit_code == 2 and message in result.output
        assert "--deadline" in result.output


@pytest.mark.parametrize("name", ["LPKS A'nur/menjahit 1", "  Menjahit   1 ", "jahit1"])
def test_every_way_whatsapp_names_a_cohort(cli, name):
    result = cli("checkin", "send", "--cohort", name, "--now")
    assert result.exit_code == 0, result.output
    assert "Menjahit 1: 2 prompts queued" in result.output
