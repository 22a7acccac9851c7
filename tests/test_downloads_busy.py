"""Downloads while the bot is busy: every export succeeds beside real concurrent writers.

The web app runs under gunicorn with several worker processes (real processes on SQLite's
file, or on PostgreSQL). While a burst of signed replies arrives over HTTP, an inbox worker
handles them and check-in rounds start, staff download the reply log (CSV and XLSX) and a
shortlist, and ``kabar export`` runs; each download answers 200 and is audited exactly once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.checkins import send_rounds_now
from bot.inbox import handle_waiting
from bot.models import AuditLog, Interest, JobOpening, Message
from bot.staffusers import add_staff
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates
from tests.live import gunicorn_running, wait_for
from tests.staff_helpers import PASSWORD, csrf_from

VENV_BIN = Path(sys.executable).parent
PUBLIC_URL = "http://kabar.test"
GRADUATES = 40



@pytest.fixture
def world(db):
    with db.session() as session:
        cohorts = [make_cohort(session, name=f"Menjahit {n}") for n in (1, 2)]
        grads = [g for i, c in enumerate(cohorts)
                 for g in make_graduates(session, c, GRADUATES // 2,
                                         first_phone=6281200000001 + i * 1000)]
        job = JobOpening(code="JHT01", title="Penjahit", employer="PT Garmen",
                         location="Bandung")
        session.add(job)
        session.flush()
        for g in grads[:10]:
            session.add(Interest(job_id=job.id, graduate_id=g.id,
                                 created_at=datetime(2026, 5, 2, tzinfo=UTC)
                                 + timedelta(minutes=g.id)))
        add_staff(session, name="rina", role="admin", password=PASSWORD)
        return {"phones": [g.phone for g in grads], "job_id": job.id}


@pytest.fixture
def gunicorn(settings, tmp_path):
    """``gunicorn -w 3 "bot:create_app()"`` on a free loopback port; yields its base URL."""
    env = {**os.environ, "KABAR_DATABASE_URL": settings.database.url,
           "KABAR_SECRET_KEY": "test-secret", "KABAR_PUBLIC_URL": PUBLIC_URL,
           "KABAR_TRANSPORT": "simulator", "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
           "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID, "KABAR_CONFIG": ""}
    with gunicorn_running(env, tmp_path, workers=3, timeout=60) as url:
        yield url


def _inbound(phone: str, body: str) -> tuple[dict[str, str], dict[str, str]]:
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": TEST_ACCOUNT_SID,
            "From": f"whatsapp:{phone}", "To": "whatsapp:+14155238886", "Body": body,
            "NumMedia": "0"}
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        PUBLIC_URL + "/twilio/inbound", form)
    return form, {"X-Twilio-Signature": signature}


def _audited_exports(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == "export"))


def test_every_download_succeeds_while_the_bot_writes(db, settings, world, gunicorn, tmp_path):
    stop = threading.Event()
    errors: list[BaseException] = []
    sent: list[int] = []

    def guarded(work):
        def run():
            try:
                work()
            except BaseException as exc:  # reported by the test below
                errors.append(exc)
                stop.set()
        return threading.Thread(target=run, daemon=True)

    def replies():  # a burst of graduates answering, over HTTP
        with requests.Session() as http:
            n = 0
            while not stop.is_set():
                phone = world["phones"][n % len(world["phones"])]
                form, headers = _inbound(phone, ["sudah kerja", "belum", "4", "iya"][n % 4])
                answer = http.post(gunicorn + "/twilio/inbound", data=form, headers=headers,
                                   timeout=30)
                assert answer.status_code == 200, answer.text
                sent.append(1)
                n += 1

    def inbox():  # the dispatcher's inbox pass
        while not stop.is_set():
            if not handle_waiting(db, settings, limit=20):
                stop.wait(settings.dispatch.poll_interval_seconds)

    def rounds():  # check-in rounds started while everything else runs
        minute = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
        while not stop.is_set():
            with db.session() as session:
                send_rounds_now(session, settings, None, ignore_quiet_hours=True, now=minute,
                                force=True)
            minute += timedelta(minutes=1)
            stop.wait(0.5)

    writers = [guarded(replies), guarded(replies), guarded(inbox), guarded(rounds)]
    for thread in writers:
        thread.start()
    downloads = 0
    try:
        wait_for(lambda: len(sent) >= 20 or errors, timeout=60, message="replies to flow")
        staff = requests.Session()
        page = staff.get(gunicorn + "/staff/login", timeout=30).text
        answer = staff.post(gunicorn + "/staff/login", timeout=30, allow_redirects=False,
                            data={"name": "rina", "password": PASSWORD,
                                  "csrf_token": csrf_from(page)})
        assert answer.status_code == 302
        paths = ["/staff/log/export.csv", "/staff/log/export.xlsx",
                 f"/staff/jobs/{world['job_id']}/shortlist.csv",
                 f"/staff/jobs/{world['job_id']}/shortlist.xlsx"]
        for _ in range(5):
            for path in paths:
                answer = staff.get(gunicorn + path, timeout=60)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
                assert answer.content
                downloads += 1
        env = {**os.environ, "KABAR_DATABASE_URL": settings.database.url,
               "KABAR_SECRET_KEY": "test-secret", "KABAR_CONFIG": ""}
        for fmt in ("csv", "xlsx"):
            output = tmp_path / f"messages.{fmt}"
            done = subprocess.run(
                [str(VENV_BIN / "kabar"), "export", "messages", "--format", fmt,
                 "--output", str(output)], env=env, cwd=tmp_path, capture_output=True,
                text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert re.search(r"wrote \d+ messages rows", done.stdout)
            downloads += 1
        assert not errors, errors
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=60)
    assert not errors, errors
    assert _audited_exports(db) == downloads == 22
    with db.session() as session:
        recorded = session.scalar(select(func.count()).select_from(Message)
                                  .where(Message.direction == "in"))
    assert recorded == len(sent)
    print(f"\ndownloads while busy: {downloads} of {downloads} succeeded; "
          f"{len(sent)} replies recorded meanwhile ({db.engine.dialect.name})")
