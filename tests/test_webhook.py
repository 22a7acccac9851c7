"""POST /twilio/inbound: signatures, dedupe, malformed input, TwiML, concurrent deliveries."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot import create_app
from bot.catalog import text
from bot.conversations.checkin import begin_checkin
from bot.inbox import handle_waiting
from bot.models import (
    INBOUND,
    OUTBOUND,
    CheckInRound,
    Conversation,
    Graduate,
    Message,
    ProgressReport,
    utcnow,
)
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates
from tests.live import serve

PHONE = "+6281200000001"


def twilio_form(phone: str = PHONE, body: str = "halo", sid: str | None = None,
                **extra: str) -> dict[str, str]:
    """The form Twilio posts for an incoming WhatsApp message."""
    return {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
            "From": f"whatsapp:{phone}", "To": "whatsapp:+14155238886", "Body": body,
            "NumMedia": "0", "ProfileName": "Siti", "WaId": phone.lstrip("+"), **extra}


def sign(settings, form: dict[str, str], path: str = "/twilio/inbound") -> str:
    return RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        settings.app.public_url + path, form)


def post_signed(client, settings, form: dict[str, str]):
    return client.post("/twilio/inbound", data=form,
                       headers={"X-Twilio-Signature": sign(settings, form)})


def count(db, *where) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Message.id)).where(*where))


@pytest.fixture
def graduate_id(db) -> int:
    with db.session() as session:
        cohort = make_cohort(session)
        return make_graduates(session, cohort, count=1)[0].id


def test_signed_message_is_stored_and_answered_with_empty_twiml(client, settings, db,
                                                                graduate_id):
    form = twilio_form(body="halo")
    answer = post_signed(client, settings, form)
    assert answer.status_code == 200
    assert answer.mimetype == "text/xml"
    root = ET.fromstring(answer.data)
    assert root.tag == "Response" and len(root) == 0
    with db.session() as session:
        message = session.scalar(select(Message).where(Message.direction == INBOUND))
        assert message.twilio_sid == form["MessageSid"]
        assert message.graduate_id == graduate_id
        assert message.body == "halo" and message.status == "handled"
        assert session.get(Graduate, graduate_id).last_inbound_at is not None
    assert count(db, Message.direction == OUTBOUND) == 1  # the menu


def test_forged_signature_is_refused_and_nothing_is_stored(client, settings, db, graduate_id):
    form = twilio_form()
    forged = RequestValidator("not-the-auth-token").compute_signature(
        settings.app.public_url + "/twilio/inbound", form)
    answer = client.post("/twilio/inbound", data=form, headers={"X-Twilio-Signature": forged})
    assert answer.status_code == 403
    assert count(db) == 0


def test_missing_signature_is_refused(client, db, graduate_id):
    assert client.post("/twilio/inbound", data=twilio_form()).status_code == 403
    assert count(db) == 0


def test_signature_over_other_params_is_refused(client, settings, db, graduate_id):
    form = twilio_form(body="halo")
    signature = sign(settings, form)
    tampered = {**form, "Body": "BERHENTI"}
    answer = client.post("/twilio/inbound", data=tampered,
                         headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 403
    with db.session() as session:
        assert session.get(Graduate, graduate_id).opted_out is False
    assert count(db) == 0


def test_query_string_is_part_of_the_signed_url(client, settings, db, graduate_id):
    form = twilio_form()
    path = "/twilio/inbound?source=wa"
    signature = {"X-Twilio-Signature": sign(settings, form, path)}
    assert client.post(path, data=form, headers=signature).status_code == 200
    other_query = client.post("/twilio/inbound?source=other", data=form, headers=signature)
    assert other_query.status_code == 403


def test_signatures_can_be_switched_off(settings, db, graduate_id):
    app = create_app(settings.with_overrides(twilio={"validate_signatures": False}), db)
    answer = app.test_client().post("/twilio/inbound", data=twilio_form())
    assert answer.status_code == 200
    assert count(db, Message.direction == INBOUND) == 1


def test_repeated_message_sid_is_handled_once(client, settings, db, graduate_id):
    form = twilio_form(body="halo")
    assert post_signed(client, settings, form).status_code == 200
    again = post_signed(client, settings, form)
    assert again.status_code == 200
    assert ET.fromstring(again.data).tag == "Response"
    assert count(db, Message.direction == INBOUND) == 1
    assert count(db, Message.direction == OUTBOUND) == 1


@pytest.mark.parametrize("change", [
    {"From": ""},
    {"From": "whatsapp:hello"},
    {"From": "whatsapp:+1"},
    {"MessageSid": ""},
    {"MessageSid": "SM" + "x" * 100},
    {"NumMedia": "two"},
])
def test_malformed_form_gets_400_not_500(client, settings, db, graduate_id, change, caplog):
    form = {**twilio_form(), **change}
    answer = post_signed(client, settings, form)
    assert answer.status_code == 400
    assert count(db) == 0
    assert any("bad request" in r.getMessage() for r in caplog.records)


def test_form_without_fields_gets_400(client, settings, db):
    answer = post_signed(client, settings, {})
    assert answer.status_code == 400


def test_a_failing_handler_loses_nothing(queued_app, settings, db, graduate_id,
                                          monkeypatch):
    """The webhook only records; when handling fails the message is kept, retried, then parked
    as an error for staff, and the next message of the same graduate still gets through."""
    from bot.inbox import MAX_ATTEMPTS, handle_waiting

    client = queued_app.test_client()
    form = twilio_form()
    assert post_signed(client, settings, form).status_code == 200
    assert post_signed(client, settings, form).status_code == 200  # a redelivery
    assert count(db, Message.direction == INBOUND) == 1

    def broken(session, settings, message):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("bot.conversations.router.handle_recorded", broken)
    clock = [utcnow()]
    for _ in range(MAX_ATTEMPTS):
        assert handle_waiting(db, settings, clock=lambda: clock[0]) == 0
        clock[0] += timedelta(minutes=5)
    with db.session() as session:
        message = session.scalar(select(Message).where(Message.direction == INBOUND))
        assert message.status == "error" and "disk on fire" in message.error_message
        assert message.attempts == MAX_ATTEMPTS
    monkeypatch.undo()
    later = twilio_form(body="MENU", sid="SM" + "e" * 32)
    assert post_signed(client, settings, later).status_code == 200
    assert handle_waiting(db, settings) == 1
    assert count(db, Message.direction == OUTBOUND) == 1


def test_burst_of_concurrent_messages_keeps_the_conversation_consistent(app, settings, db):
    """Eight "3"s at once, two of them redeliveries: handled one at a time, each once.

    Whatever the order, the same text walks the check-in the same way: status 3 (seeking),
    job alerts (two misses, moves on), rating 3, help "3", then outside the conversation the
    menu once.
    """
    with db.session() as session:
        cohort = make_cohort(session)
        graduate = make_graduates(session, cohort, count=1)[0]
        round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=utcnow(), trigger="manual")
        session.add(round_)
        session.flush()
        begin_checkin(session, settings, graduate, round_)
        graduate_id = graduate.id
    forms = [twilio_form(body="3") for _ in range(6)]
    forms += [dict(forms[0]), dict(forms[1])]  # Twilio delivering two of them twice
    url_path = "/twilio/inbound"
    start = threading.Barrier(len(forms))

    with serve(app) as base:
        def deliver(form: dict[str, str]) -> int:
            request = urllib.request.Request(
                base + url_path, data=urllib.parse.urlencode(form).encode(),
                headers={"X-Twilio-Signature": sign(settings, form),
                         "Content-Type": "application/x-www-form-urlencoded"})
            start.wait(timeout=10)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    return answer.status
            except urllib.error.HTTPError as exc:
                return exc.code

        with ThreadPoolExecutor(max_workers=len(forms)) as pool:
            statuses = list(pool.map(deliver, forms))

    assert statuses == [200] * len(forms)
    # Handling passes that met a message another pass held skipped it; the worker's next pass
    # (here, this one) takes what is left, in order.
    handle_waiting(db, settings)
    with db.session() as session:
        inbound = session.scalars(select(Message).where(Message.direction == INBOUND)).all()
        assert len(inbound) == 6
        replies = session.scalars(select(Message.body).where(
            Message.direction == OUTBOUND, Message.kind != "checkin").order_by(Message.id)).all()
        report = session.scalar(select(ProgressReport))
        assert session.get(Conversation, graduate_id) is None
    assert replies == [text("id", "checkin.ask_job_alerts"), text("id", "checkin.hint_job_alerts"),
                       text("id", "checkin.ask_rating"), text("id", "checkin.ask_help"),
                       text("id", "checkin.hint_help"),  # a lone digit names no need
                       text("id", "checkin.thanks", name="Lulusan Menjahit 1 1")]
    assert report.status == "completed"
    assert report.employment_status == "seeking"
    assert report.wants_job_alerts is None
    assert report.skill_rating == 3
    assert report.needs_help is None
    assert report.raw_answers == {"status": ["3"], "job_alerts": ["3", "3"], "rating": ["3"],
                                  "help": ["3", "3"]}

