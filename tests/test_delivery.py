"""Delivery tracking: signed status callbacks on POST /twilio/status, in any order, any number of
times, even before the dispatcher has stored the SID; delivery counts per broadcast and round."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.broadcasts import JobDraft, create_job_broadcast
from bot.checkins import start_round
from bot.db import Database
from bot.delivery import apply_status, delivery_counts
from bot.dispatcher import Dispatcher
from bot.models import (
    MSG_DELIVERED,
    MSG_FAILED,
    MSG_QUEUED,
    MSG_READ,
    MSG_SENDING,
    MSG_SENT,
    MSG_UNDELIVERED,
    DeliveryEvent,
    Graduate,
    Message,
    utcnow,
)
from bot.outbox import enqueue, mark_sent
from bot.transports import OutboundRequest, SendResult
from bot.transports.twilio import TwilioTransport
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates

STATUS_PATH = "/twilio/status"


def callback_form(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    """The form Twilio posts to the status callback of a WhatsApp message."""
    form = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": "AC" + "0" * 32, "From": "whatsapp:+14155238886",
            "To": "whatsapp:+6281200000001", "ApiVersion": "2010-04-01", "ChannelPrefix":
            "whatsapp"}
    if error_code is not None:
        form["ErrorCode"] = error_code
    return form


def signature(settings, form: dict[str, str], token: str = TEST_AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(settings.app.public_url + STATUS_PATH, form)


def post_status(client, settings, sid: str, status: str, error_code: str | None = None):
    form = callback_form(sid, status, error_code)
    return client.post(STATUS_PATH, data=form,
                       headers={"X-Twilio-Signature": signature(settings, form)})


def sent_message(db: Database, status: str = MSG_QUEUED, kind: str = "announcement") -> int:
    """An outbound message Twilio has accepted (SID stored); returns its id."""
    with db.session() as session:
        cohort = make_cohort(session)
        [graduate] = make_graduates(session, cohort, 1)
        message = enqueue(session, graduate=graduate, kind=kind, body="Info pelatihan")
        message.twilio_sid = "SM" + uuid.uuid4().hex
        message.status = status
        message.sent_at = utcnow()
        return message.id


def row(db: Database, message_id: int) -> Message:
    with db.session() as session:
        return session.get(Message, message_id)


def events(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(DeliveryEvent))


# --- callbacks over HTTP ----------------------------------------------------------------------

def test_callbacks_in_order_move_the_message_to_read(client, settings, db):
    message_id = sent_message(db)
    sid = row(db, message_id).twilio_sid

    seen = []
    for status in ("sent", "delivered", "read"):
        assert post_status(client, settings, sid, status).status_code == 200
        seen.append(row(db, message_id).status)

    assert seen == [MSG_SENT, MSG_DELIVERED, MSG_READ]
    assert row(db, message_id).error_code is None


def test_read_then_a_late_sent_stays_read(client, settings, db):
    message_id = sent_message(db)
    sid = row(db, message_id).twilio_sid

    assert post_status(client, settings, sid, "read").status_code == 200
    assert post_status(client, settings, sid, "sent").status_code == 200
    assert post_status(client, settings, sid, "delivered").status_code == 200
    assert post_status(client, settings, sid, "queued").status_code == 200

    assert row(db, message_id).status == MSG_READ


def test_a_repeated_callback_changes_nothing(client, settings, db):
    message_id = sent_message(db)
    sid = row(db, message_id).twilio_sid

    assert post_status(client, settings, sid, "delivered").status_code == 200
    first = row(db, message_id)
    assert post_status(client, settings, sid, "delivered").status_code == 200
    again = row(db, message_id)

    assert (again.status, again.updated_at, again.error_code) == (
        MSG_DELIVERED, first.updated_at, None)
    assert events(db) == 1  # the same callback twice is kept once


def test_failed_callback_shows_twilios_error_code_on_the_message(client, settings, db):
    message_id = sent_message(db)
    sid = row(db, message_id).twilio_sid

    assert post_status(client, settings, sid, "sent").status_code == 200
    assert post_status(client, settings, sid, "failed", error_code="63016").status_code == 200

    failed = row(db, message_id)
    assert (failed.status, failed.error_code) == (MSG_FAILED, "63016")
    assert "63016" in failed.error_message and "template" in failed.error_message
    # A late "sent" does not undo the failure.
    assert post_status(client, settings, sid, "sent").status_code == 200
    assert row(db, message_id).status == MSG_FAILED


def test_a_failure_never_replaces_delivered_or_read(client, settings, db):
    delivered_id = sent_message(db, status=MSG_DELIVERED)
    with db.session() as session:
        read = session.get(Message, delivered_id)
        other = enqueue(session, graduate=read.graduate, kind="reply", body="Terima kasih")
        other.twilio_sid, other.status = "SM" + uuid.uuid4().hex, MSG_READ
        read_id = other.id

    for message_id in (delivered_id, read_id):
        sid = row(db, message_id).twilio_sid
        assert post_status(client, settings, sid, "undelivered", "63024").status_code == 200

    assert row(db, delivered_id).status == MSG_DELIVERED
    assert row(db, read_id).status == MSG_READ
    assert row(db, delivered_id).error_code is None


@pytest.mark.parametrize(("statuses", "final"), [
    (["queued", "sent", "delivered", "read"], MSG_READ),
    (["read", "delivered", "sent", "queued"], MSG_READ),
    (["delivered", "sent"], MSG_DELIVERED),
    (["sent", "undelivered"], MSG_UNDELIVERED),
    (["undelivered", "sent", "queued"], MSG_UNDELIVERED),
    (["failed", "undelivered"], MSG_FAILED),
    (["delivered", "failed"], MSG_DELIVERED),
    (["sent", "sent", "sent"], MSG_SENT),
])
def test_any_order_ends_at_the_furthest_status(db, statuses, final):
    message_id = sent_message(db)
    sid = row(db, message_id).twilio_sid
    for status in statuses:
        with db.session() as session:
            apply_status(session, sid, status, "30008" if status in ("failed",
                                                                     "undelivered") else None)
    assert row(db, message_id).status == final


def test_callback_before_the_sid_is_stored_is_caught_up(client, settings, twilio_settings, db,
                                                        twilio_fake):
    """Twilio's callbacks come while the dispatcher is still waiting to record the SID."""
    with db.session() as session:
        cohort = make_cohort(session)
        [graduate] = make_graduates(session, cohort, 1)
        message_id = enqueue(session, graduate=graduate, kind="reply", body="Terima kasih").id

    seen_before_recording = []

    class CallbacksFirst:
        """The real Twilio transport; Twilio's callbacks arrive before send() returns."""

        name = "twilio"

        def __init__(self) -> None:
            self.inner = TwilioTransport(twilio_settings)

        def send(self, req: OutboundRequest) -> SendResult:
            result = self.inner.send(req)
            seen_before_recording.append(row(db, req.message_id).twilio_sid)
            for status in ("sent", "delivered"):
                answer = post_status(client, settings, result.sid, status)
                assert answer.status_code == 200
            return result

    assert Dispatcher(twilio_settings, db, transport=CallbacksFirst()).run_once() == 1

    [accepted] = twilio_fake.accepted
    assert seen_before_recording == [None]  # the callbacks really came first
    message = row(db, message_id)
    assert message.twilio_sid == accepted["sid"]
    assert message.status == MSG_DELIVERED  # not left at the "queued" Twilio answered with
    assert accepted["status_callback"] == "http://kabar.test/twilio/status"


def test_callback_racing_the_dispatcher_is_never_lost(db):
    """The dispatcher records the SID while the callback for it is being stored, 25 times over;
    every message ends delivered, whichever transaction went first."""
    with db.session() as session:
        cohort = make_cohort(session)
        graduates = make_graduates(session, cohort, 25)
        messages = [enqueue(session, graduate=g, kind="reply", body="Halo") for g in graduates]
        for message in messages:
            message.status = MSG_SENDING
        ids = [m.id for m in messages]

    def race(message_id: int) -> None:
        sid = "SM" + uuid.uuid4().hex
        start = threading.Barrier(2, timeout=10)

        def record() -> None:
            start.wait()
            with db.session() as session:
                mark_sent(session, message_id, sid, MSG_QUEUED)

        def callback() -> None:
            start.wait()
            with db.session() as session:
                apply_status(session, sid, "delivered")

        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(record), pool.submit(callback)]:
                future.result(timeout=30)

    for message_id in ids:
        race(message_id)

    with db.session() as session:
        statuses = session.scalars(select(Message.status).where(Message.id.in_(ids))).all()
    assert statuses == [MSG_DELIVERED] * len(ids)


def test_every_message_sent_through_twilio_asks_for_status_callbacks(twilio_settings, db,
                                                                     twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session)
        graduates = make_graduates(session, cohort, 2)
        enqueue(session, graduate=graduates[0], kind="reply", body="Halo")
        enqueue(session, graduate=graduates[1], kind="checkin", body="Apa kabar?",
                content_variables={"1": graduates[1].name, "2": cohort.name})

    assert Dispatcher(twilio_settings, db).run_once() == 2

    assert [m["status_callback"] for m in twilio_fake.accepted] == [
        "http://kabar.test/twilio/status"] * 2


def test_forged_callback_gets_403_and_changes_nothing(client, settings, db):
    message_id = sent_message(db)
    sid = row(db, message_id).twilio_sid
    form = callback_form(sid, "failed", "30008")

    wrong = client.post(STATUS_PATH, data=form,
                        headers={"X-Twilio-Signature": signature(settings, form, token="x" * 32)})
    missing = client.post(STATUS_PATH, data=form)
    tampered = client.post(STATUS_PATH, data={**form, "MessageStatus": "read"},
                           headers={"X-Twilio-Signature": signature(settings, form)})

    assert [wrong.status_code, missing.status_code, tampered.status_code] == [403, 403, 403]
    assert row(db, message_id).status == MSG_QUEUED
    assert events(db) == 0


@pytest.mark.parametrize("form", [
    {},
    {"MessageStatus": "delivered"},
    {"MessageSid": "SM" + "1" * 32},
    {"MessageSid": "SM" + "1" * 32, "MessageStatus": "   "},
    {"MessageSid": "SM" + "1" * 100, "MessageStatus": "delivered"},
    {"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered" * 10},
    {"MessageSid": "SM" + "1" * 32, "MessageStatus": "failed", "ErrorCode": "9" * 40},
], ids=["empty", "no-sid", "no-status", "blank-status", "long-sid", "long-status",
        "long-error"])
def test_malformed_callback_gets_400_and_changes_nothing(client, settings, db, form):
    answer = client.post(STATUS_PATH, data=form,
                         headers={"X-Twilio-Signature": signature(settings, form)})

    assert answer.status_code == 400
    assert events(db) == 0


def test_a_status_kabar_does_not_track_is_answered_and_ignored(client, settings, db):
    message_id = sent_message(db)
    sid = row(db, message_id).twilio_sid

    assert post_status(client, settings, sid, "receiving").status_code == 200

    assert row(db, message_id).status == MSG_QUEUED
    assert events(db) == 0


def test_callback_for_an_inbound_sid_does_not_touch_it(client, settings, db):
    with db.session() as session:
        inbound = Message(direction="in", kind="inbound", phone="+6281200000001",
                          twilio_sid="SM" + "2" * 32, status="received", body="halo")
        session.add(inbound)
        session.flush()
        inbound_id = inbound.id

    assert post_status(client, settings, "SM" + "2" * 32, "read").status_code == 200

    assert row(db, inbound_id).status == "received"


# --- counts -----------------------------------------------------------------------------------

def _callbacks(client, settings, db, outcomes: dict[str, tuple[str, str | None]]) -> None:
    """Post one callback per phone: ``{phone: (status, error_code)}``."""
    with db.session() as session:
        sids = dict(session.execute(select(Message.phone, Message.twilio_sid)
                                    .where(Message.twilio_sid.is_not(None),
                                           Message.direction == "out")).all())
    for phone, (status, code) in outcomes.items():
        assert post_status(client, settings, sids[phone], status, code).status_code == 200


def test_delivery_counts_of_a_job_broadcast(client, settings, twilio_settings, db, twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session)
        phones = [g.phone for g in make_graduates(session, cohort, 8)]
        _, broadcast = create_job_broadcast(
            session, settings, JobDraft(title="Operator jahit", employer="PT Sepatu KITB",
                                        location="Batang", cohort_names=["Menjahit 1"]),
            actor="ani")
        broadcast_id = broadcast.id
    with db.session() as session:  # opts out after the broadcast was recorded
        session.scalar(select(Graduate).where(Graduate.phone == phones[7])).opted_out = True
    with db.session() as session:
        assert delivery_counts(session, broadcast_id=broadcast_id) == {
            "queued": 8, "sent": 0, "delivered": 0, "read": 0, "failed": 0, "suppressed": 0}

    assert Dispatcher(twilio_settings, db).run_once() == 7
    _callbacks(client, settings, db, {
        phones[0]: ("delivered", None), phones[1]: ("read", None),
        phones[2]: ("failed", "63016"), phones[3]: ("undelivered", "63024"),
        phones[4]: ("sent", None), phones[5]: ("read", None),
    })  # phones[6] has no callback yet: still queued at Twilio

    with db.session() as session:
        assert delivery_counts(session, broadcast_id=broadcast_id) == {
            "queued": 1, "sent": 1, "delivered": 1, "read": 2, "failed": 2, "suppressed": 1}
        assert delivery_counts(session, broadcast_id=broadcast_id + 1) == {
            "queued": 0, "sent": 0, "delivered": 0, "read": 0, "failed": 0, "suppressed": 0}


def test_delivery_counts_of_a_check_in_round(client, settings, twilio_settings, db,
                                             twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session)
        phones = [g.phone for g in make_graduates(session, cohort, 4)]
        other = make_cohort(session, name="Bordir 1")
        make_graduates(session, other, 2, first_phone=6281300000001)
        round_id = start_round(session, settings, cohort, utcnow()).id
        start_round(session, settings, other, utcnow())

    assert Dispatcher(twilio_settings, db).run_once() == 6
    _callbacks(client, settings, db, {
        phones[0]: ("read", None), phones[1]: ("delivered", None),
        phones[2]: ("undelivered", "63024"),
        "+6281300000001": ("read", None),  # another cohort's round: not counted
    })

    with db.session() as session:
        assert delivery_counts(session, round_id=round_id) == {
            "queued": 1, "sent": 0, "delivered": 1, "read": 1, "failed": 1, "suppressed": 0}
