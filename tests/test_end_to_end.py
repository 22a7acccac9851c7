"""The core loop as one whole: a scheduled round for a 20-person cohort, prompts sent through the
real twilio Client to the loopback fake of Twilio, informal replies posted as signed webhooks over
real HTTP, replies dispatched, progress recorded, and the progress export read back as CSV."""

from __future__ import annotations

import csv
import threading
from datetime import UTC, datetime
from urllib.parse import urlencode

import requests
from click.testing import CliRunner
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot import create_app
from bot.cli import main
from bot.dispatcher import Dispatcher
from bot.models import (
    INBOUND,
    MSG_QUEUED,
    OUTBOUND,
    CheckInRound,
    Conversation,
    Message,
    ProgressReport,
)
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates
from tests.live import serve, wait_for

# Five ways graduates answer, as they would type them: the replies, then what must be recorded
# (employment_status, employer, uses_training_skill, skill_rating, needs_help).
SCRIPTS = [
    (["1", "PT Sepatu KITB", "iya", "4", "tidak ada"],
     ("employed", "PT Sepatu KITB", "true", "4", "")),
    (["sudah kerja di pabrik garmen Batang", "ya pakai", "5", "gak ada kak"],
     ("employed", "pabrik garmen Batang", "true", "5", "")),
    (["2", "jahit permak di rumah", "3", "butuh modal buat mesin jahit"],
     ("self_employed", "jahit permak di rumah", "", "3", "butuh modal buat mesin jahit")),
    (["blm dpt kerja kak", "iya mau", "dua", "susah cari lowongan yg dekat"],
     ("seeking", "", "", "2", "susah cari lowongan yg dekat")),
    (["4️⃣", "3️⃣", "tdk"],
     ("studying", "", "", "3", "")),
]


def signed_post(base_url: str, public_url: str, params: dict[str, str]) -> requests.Response:
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        public_url + "/twilio/inbound", params)
    return requests.post(base_url + "/twilio/inbound", data=urlencode(params),
                         headers={"X-Twilio-Signature": signature,
                                  "Content-Type": "application/x-www-form-urlencoded"},
                         timeout=10)


def test_twenty_graduates_from_scheduled_prompt_to_exported_csv(
        twilio_settings, db, twilio_fake, tmp_path):
    from scheduler import jobs
    from scheduler.service import build_scheduler, checkin_job_id, reconcile_jobs

    settings = twilio_settings
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 3", schedule="0 9 1 * *")
        graduates = make_graduates(session, cohort, count=20)
        cohort_id = cohort.id
        phones = [g.phone for g in graduates]

    # The scheduler fires the cohort's cron job (moved to now, as if the 1st at 09:00 came).
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = build_scheduler(settings, db, scheduler_cls=BackgroundScheduler)
    jobs.configure(settings, db, scheduler)
    scheduler.start(paused=True)
    reconcile_jobs(scheduler, settings, db)
    scheduler.resume()
    try:
        scheduler.modify_job(checkin_job_id(cohort_id), next_run_time=datetime.now(UTC))

        def prompts() -> int:
            with db.session() as s:
                return s.scalar(select(func.count()).select_from(Message)
                                .where(Message.kind == "checkin"))
        wait_for(lambda: prompts() == 20, timeout=20, message="20 check-in prompts")
    finally:
        scheduler.shutdown(wait=True)
        jobs.reset()

    stop = threading.Event()
    dispatcher = Dispatcher(settings, db)
    worker = threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True)
    worker.start()
    app = create_app(settings, db)
    try:
        assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 20, timeout=20)
        sent = {m["to"].removeprefix("whatsapp:") for m in twilio_fake.accepted}
        assert sent == set(phones)

        def prompts_recorded_as_queued() -> bool:
            with db.session() as s:
                return all(m.twilio_sid and m.status == MSG_QUEUED for m in s.scalars(
                    select(Message).where(Message.kind == "checkin")))
        wait_for(prompts_recorded_as_queued, timeout=10, message="SIDs stored on the prompts")

        with serve(app) as base_url:
            # Graduates answer step by step, each waiting for the bot's question (as people do).
            # Their conversations run side by side in threads, like real traffic.
            def converse(index: int, phone: str) -> None:
                replies, _ = SCRIPTS[index % len(SCRIPTS)]
                for step, body in enumerate(replies):
                    asked = 1 + step  # the prompt, then one question per answer so far
                    wait_for(lambda n=asked: len(twilio_fake.accepted_to(phone)) >= n, timeout=20,
                             message=f"question {asked} to {phone}")
                    response = signed_post(base_url, settings.app.public_url, {
                        "MessageSid": f"SM{index:02d}{step:02d}" + "a" * 28,
                        "AccountSid": settings.twilio.account_sid,
                        "From": f"whatsapp:{phone}", "To": settings.twilio.whatsapp_from,
                        "Body": body, "NumMedia": "0", "ProfileName": f"Lulusan {index}",
                    })
                    assert response.status_code == 200, response.text

            errors: list[BaseException] = []

            def run(index: int, phone: str) -> None:
                try:
                    converse(index, phone)
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(phones)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert not errors, errors

        def all_completed() -> bool:
            with db.session() as s:
                return s.scalar(select(func.count()).select_from(ProgressReport)
                                .where(ProgressReport.status == "completed")) == 20
        wait_for(all_completed, timeout=20, message="20 completed reports")
        # Every graduate got the thanks: prompt + one message per answer.
        expected_counts = {p: len(SCRIPTS[i % len(SCRIPTS)][0]) + 1 for i, p in enumerate(phones)}
        assert twilio_fake.wait_for(
            lambda f: all(len(f.accepted_to(p)) >= n for p, n in expected_counts.items()),
            timeout=20)
    finally:
        stop.set()
        worker.join(timeout=10)

    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CheckInRound)) == 1
        assert s.scalar(select(func.count()).select_from(Conversation)) == 0
        inbound = s.scalar(select(func.count()).select_from(Message)
                           .where(Message.direction == INBOUND))
        assert inbound == sum(len(SCRIPTS[i % 5][0]) for i in range(20))
        outbound_sids = s.scalars(select(Message.twilio_sid)
                                  .where(Message.direction == OUTBOUND)).all()
        assert len(outbound_sids) == len(set(outbound_sids)) == twilio_fake.accepted_count()

    # The staff export, through the command a deployer would script.
    config = tmp_path / "kabar.toml"
    config.write_text(f'[database]\nurl = "{settings.database.url}"\n')
    output = tmp_path / "progres.csv"
    result = CliRunner().invoke(main, ["--config", str(config), "export", "progress", "--codes",
                                       "--format", "csv", "--output", str(output)])
    assert result.exit_code == 0, result.output
    with output.open(encoding="utf-8-sig", newline="") as fh:
        rows = {row["phone"]: row for row in csv.DictReader(fh)}
    assert set(rows) == set(phones)
    for i, phone in enumerate(phones):
        _, expected = SCRIPTS[i % len(SCRIPTS)]
        row = rows[phone]
        got = (row["employment_status"], row["employer"], row["uses_training_skill"],
               row["skill_rating"], row["needs_help"])
        assert got == expected, (phone, got)
        assert row["cohort"] == "Menjahit 3" and row["responded_at"]
