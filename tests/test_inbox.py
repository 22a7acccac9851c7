"""The inbox: the webhook records, a worker handles in arrival order per sender."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from bot.conversations.checkin import begin_checkin
from bot.dispatcher import Dispatcher
from bot.inbox import backlog, handle_waiting
from bot.models import INBOUND, OUTBOUND, CheckInRound, Message, ProgressReport, utcnow
from tests.factories import make_cohort, make_graduates
from tests.live import wait_for
from tests.test_webhook import post_signed, twilio_form


def mid_checkin(db, settings) -> str:
    with db.session() as session:
        cohort = make_cohort(session)
        graduate = make_graduates(session, cohort, count=1)[0]
        round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=utcnow(), trigger="manual")
        session.add(round_)
        session.flush()
        begin_checkin(session, settings, graduate, round_)
        return graduate.phone


def test_the_webhook_only_records_and_answers_at_once(queued_app, settings, db):
    phone = mid_checkin(db, settings)
    client = queued_app.test_client()
    for body in ("1", "konveksi Bu Siti", "iya"):
        assert post_signed(client, settings, twilio_form(phone, body)).status_code == 200
    assert backlog(db.engine) == 3
    assert client.get("/healthz").get_json()["inbox_waiting"] == 3
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(
            Message.direction == OUTBOUND, Message.kind == "reply")) == 0


def test_the_worker_handles_one_senders_messages_in_order(queued_app, settings, db):
    phone = mid_checkin(db, settings)
    client = queued_app.test_client()
    for body in ("1", "konveksi Bu Siti", "iya", "4", "tidak ada"):
        post_signed(client, settings, twilio_form(phone, body))
    assert handle_waiting(db, settings) == 5
    assert backlog(db.engine) == 0
    with db.session() as s:
        report = s.scalar(select(ProgressReport))
        assert (report.status, report.employment_status, report.employer,
                report.uses_training_skill, report.skill_rating, report.needs_help) == (
            "completed", "employed", "konveksi Bu Siti", True, 4, None)
        assert set(s.scalars(select(Message.status).where(Message.direction == INBOUND))) \
            == {"handled"}


def test_the_dispatcher_loop_handles_the_inbox(queued_app, settings, db):
    phone = mid_checkin(db, settings)
    post_signed(queued_app.test_client(), settings, twilio_form(phone, "3"))
    stop = threading.Event()
    worker = threading.Thread(target=Dispatcher(settings, db).run_forever, args=(stop,))
    worker.start()
    try:
        wait_for(lambda: backlog(db.engine) == 0, message="the inbox to be handled")

        def replied() -> bool:
            with db.session() as s:
                return s.scalar(select(func.count()).select_from(Message).where(
                    Message.kind == "reply", Message.twilio_sid.is_not(None))) == 1
        wait_for(replied, message="the reply to be sent")
    finally:
        stop.set()
        worker.join(timeout=10)
