"""The demo: sample data shaped like the seed story, and the one-process launch."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot import create_app
from bot.cli import main
from bot.db import Database
from bot.demo import prepare_demo, seed_sample_data
from bot.migrate import upgrade
from bot.models import (
    EMPLOYMENT_STATUSES,
    REPORT_COMPLETED,
    CheckInRound,
    Cohort,
    Graduate,
    Institution,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
    StaffUser,
)
from bot.phones import normalize_phone
from tests.staff_helpers import signed_in_client

TODAY = date(2026, 12, 1)
ROOT = Path(__file__).resolve().parent.parent


def seeded(session, settings, seed=7):
    return seed_sample_data(session, settings, random.Random(seed), today=TODAY)


def snapshot(session) -> list[tuple]:
    people = session.execute(select(Cohort.name, Graduate.name, Graduate.phone, Graduate.skill)
                             .join(Cohort).order_by(Graduate.phone)).all()
    answers = session.execute(select(Graduate.phone, ProgressReport.employment_status,
                                     ProgressReport.employer, ProgressReport.skill_rating,
                                     ProgressReport.raw_answers)
                              .join(Graduate).order_by(Graduate.phone)).all()
    return [tuple(r) for r in people] + [tuple(r) for r in answers]


def test_sample_data_is_shaped_like_the_seed_story(db, settings):
    with db.session() as session:
        counts = seeded(session, settings)
    assert counts["institutions"] == 2 and counts["cohorts"] == 8
    assert counts["graduates"] == 160
    with db.session() as session:
        assert sorted(session.scalars(select(Institution.name))) == ["LPKS A'nur",
                                                                     "LPKS Nisfisano"]
        per_cohort = Counter(session.scalars(select(Cohort.name).join(Graduate)))
        assert len(per_cohort) == 8 and set(per_cohort.values()) == {20}
        assert {"Menjahit 1", "Menjahit 6", "Bordir 1", "Tata Boga 1"} <= set(per_cohort)
        phones = list(session.scalars(select(Graduate.phone)))
        assert len(set(phones)) == 160
        assert all(normalize_phone(p) == p for p in phones)
        assert len(set(session.scalars(select(Graduate.name)))) == 160
        assert len(set(session.scalars(select(Cohort.join_code)))) == 8


def test_sample_data_has_a_finished_round_with_varied_answers(db, settings):
    with db.session() as session:
        seeded(session, settings)
    with db.session() as session:
        finished = session.scalars(select(Cohort.name).join(CheckInRound)).all()
        assert sorted(finished) == ["Bordir 1", "Menjahit 1"]
        reports = session.scalars(select(ProgressReport)).all()
        done = [r for r in reports if r.status == REPORT_COMPLETED]
        assert len(reports) == 39 and len(done) >= 25  # one graduate of Menjahit 1 opted out
        assert {r.employment_status for r in done} == set(EMPLOYMENT_STATUSES)
        for report in done:
            assert report.skill_rating in range(1, 6)
            assert report.raw_answers["status"] and report.raw_answers["rating"]
            assert report.completed_at is not None and report.responded_at is not None
        assert any(r.needs_help for r in done)
        # the chat of that round is there for the timeline and the messages export
        inbound = session.scalar(select(func.count()).select_from(Message)
                                 .where(Message.direction == "in"))
        assert inbound >= 4 * len(done)
        jobs = session.scalars(select(JobOpening)).all()
        assert any("KITB" in j.employer and j.skill == "menjahit" for j in jobs)
        assert all(j.is_open(TODAY) for j in jobs)


def test_the_sample_job_was_sent_and_its_shortlist_came_from_whatsapp(app, db, settings):
    """The job page of the demo shows a sent opening: delivery figures and a shortlist whose
    people answered MINAT in the chat."""
    with db.session() as session:
        seeded(session, settings)
    with db.session() as session:
        job = session.scalar(select(JobOpening).where(JobOpening.employer.contains("KITB")))
        sent = session.scalars(select(Message).where(Message.kind == "job_opening")).all()
        statuses = Counter(m.status for m in sent)
        assert len(sent) == 39 and statuses["read"] > statuses["delivered"] > 0
        interested = {i.graduate_id for i in session.scalars(select(Interest))}
        asked = {m.graduate_id for m in session.scalars(select(Message).where(
            Message.direction == "in", Message.body == f"minat {job.code.lower()}"))}
        assert len(interested) == 5 and asked == interested
        assert interested <= {m.graduate_id for m in sent}
        job_id = job.id
    page = signed_in_client(app, db).get(f"/staff/jobs/{job_id}").get_data(as_text=True)
    assert "Menjahit 1" in page and "Menjahit 5" in page
    assert 'data-interests="5"' in page  # the shortlist
    assert page.count('class="phone">') == 5


def test_sample_data_is_repeatable(db, settings, tmp_path):
    with db.session() as session:
        seeded(session, settings)
    with db.session() as session:
        first = snapshot(session)
    other_url = f"sqlite:///{tmp_path / 'again.db'}"
    upgrade(other_url)
    other = Database(other_url)
    try:
        with other.session() as session:
            seeded(session, settings)
        with other.session() as session:
            assert snapshot(session) == first
    finally:
        other.dispose()


def test_prepare_demo_seeds_once_and_starts_a_round(tmp_path):
    first = prepare_demo(tmp_path / "demo", fresh=False)
    assert first.seeded and first.fresh_round == "Menjahit 1: 19 prompts queued"
    with first.db.session() as session:
        admin = session.scalar(select(StaffUser).where(StaffUser.name == "admin"))
        assert admin.role == "admin" and admin.check_password(first.admin_password)
    first.db.dispose()

    again = prepare_demo(tmp_path / "demo", fresh=False)
    assert not again.seeded and again.fresh_round is None  # the prompts are still open
    assert again.admin_password != first.admin_password
    with again.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Graduate)) == 160
        assert session.scalar(select(StaffUser).where(StaffUser.name == "admin")) \
            .check_password(again.admin_password)
    again.db.dispose()

    fresh = prepare_demo(tmp_path / "demo", fresh=True)
    assert fresh.seeded
    fresh.db.dispose()


def test_kabar_demo_help():
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--data-dir" in result.output and "--fresh" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_demo_serves_the_simulator_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    script = textwrap.dedent(f"""
        import sys
        from bot.cli import main
        main(["demo", "--port", "{port}", "--data-dir", {str(tmp_path / 'demo')!r}])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output = []
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            output.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        text = "".join(output)
        assert f"http://127.0.0.1:{port}/simulator" in text, text
        assert "admin / " in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            assert reply.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/simulator/", timeout=10) as reply:
            assert "Menjahit 1" in reply.read().decode()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output.append(rest)
    assert proc.returncode == 0, "".join(output)
    assert "stopped." in rest


@pytest.mark.skipif(not (Path(sys.prefix) / ".kabar-installed-test").exists(),
                    reason="needs the environment `python3 run.py test` made")
def test_run_py_demo_stops_on_sigterm_and_leaves_nothing_running(tmp_path):
    """A service manager or ``kill`` stops ``python3 run.py demo`` with SIGTERM: the server
    itself must stop, not only a wrapper around it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "demo", "--port", str(port),
         "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "KABAR_VENV": sys.prefix})
    output = []
    try:
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            output.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            assert reply.status == 200, "".join(output)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped." in rest, "".join(output) + rest
    with pytest.raises(OSError):  # nobody listens on the port any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_graduate_with_sample_history_is_answered_in_the_simulator(app, db, settings):
    """The sample conversations are history, not waiting work: a new message gets its reply."""
    from bot.inbox import backlog
    from bot.models import INBOUND, OUTBOUND, Message

    with db.session() as session:
        seeded(session, settings)
    assert backlog(db.engine) == 0
    with db.session() as session:
        phone = session.scalar(select(Message.phone).where(Message.direction == INBOUND)
                               .order_by(Message.id))
        before = session.scalar(select(func.count()).select_from(Message).where(
            Message.phone == phone, Message.direction == OUTBOUND))
    demo_app = create_app(settings, db, demo=True)
    answer = demo_app.test_client().post("/simulator/api/send",
                                         json={"phone": phone, "body": "MENU"})
    assert answer.status_code == 200
    with db.session() as session:
        after = session.scalar(select(func.count()).select_from(Message).where(
            Message.phone == phone, Message.direction == OUTBOUND))
    assert after == before + 1
    assert backlog(db.engine) == 0
