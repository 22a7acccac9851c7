"""Opt-out and consent history: BERHENTI/STOP and MULAI/START over the signed webhook, Twilio's
21610 refusal, and an opted-out graduate receiving nothing but the confirmation, from every kind
of outbound message, through the Twilio transport (the loopback fake), across a restart."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot import create_app
from bot.broadcasts import JobDraft, create_announcement, create_job_broadcast
from bot.catalog import text
from bot.checkins import send_reminders, start_round
from bot.db import Database
from bot.dispatcher import Dispatcher
from bot.inbox import handle_waiting
from bot.models import (
    CONSENT_BLOCKED,
    CONSENT_OPT_IN,
    CONSENT_OPT_OUT,
    INBOUND,
    MSG_FAILED,
    MSG_SUPPRESSED,
    Cohort,
    ConsentEvent,
    Graduate,
    Message,
    utcnow,
)
from bot.outbox import enqueue
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates

LEAVER = "+6281200000001"  # the graduate who opts out
PEER = "+6281200000002"  # a graduate of the same cohort who does not


def say(client, settings, phone: str, body: str) -> None:
    """The graduate sends ``body`` on WhatsApp: Twilio's signed webhook."""
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
            "From": f"whatsapp:{phone}", "To": "whatsapp:+14155238886", "Body": body,
            "NumMedia": "0", "ProfileName": "Siti"}
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        settings.app.public_url + "/twilio/inbound", form)
    answer = client.post("/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.data


def history(db: Database, phone: str = LEAVER) -> list[tuple[str, int | None, str | None]]:
    with db.session() as session:
        return [(e.event, e.message_id, e.detail) for e in session.scalars(
            select(ConsentEvent).join(Graduate, ConsentEvent.graduate_id == Graduate.id)
            .where(Graduate.phone == phone).order_by(ConsentEvent.id))]


def last_inbound_id(db: Database, phone: str = LEAVER) -> int:
    with db.session() as session:
        return session.scalar(select(Message.id).where(
            Message.direction == INBOUND, Message.phone == phone).order_by(Message.id.desc()))


def graduate(db: Database, phone: str = LEAVER) -> Graduate:
    with db.session() as session:
        return session.scalar(select(Graduate).where(Graduate.phone == phone))


def bodies(twilio_fake, phone: str) -> list[str | None]:
    return [m["body"] for m in twilio_fake.accepted_to(phone)]


@pytest.fixture
def cohort_id(db) -> int:
    with db.session() as session:
        cohort = make_cohort(session)
        make_graduates(session, cohort, 2)
        return cohort.id


def test_berhenti_opts_out_with_history_and_only_the_confirmation_is_sent(
        client, settings, twilio_settings, db, twilio_fake, cohort_id):
    say(client, settings, LEAVER, "  berhenti ")

    leaver = graduate(db)
    assert leaver.opted_out and leaver.opted_out_at is not None
    assert history(db) == [(CONSENT_OPT_OUT, last_inbound_id(db), None)]
    assert Dispatcher(twilio_settings, db).run_once() == 1
    assert bodies(twilio_fake, LEAVER) == [text("id", "optout_confirm")]


@pytest.mark.parametrize(("stop", "start"), [("BERHENTI", "MULAI"), ("STOP", "START"),
                                             ("stop", "mulai")])
def test_each_keyword_writes_its_consent_event(client, settings, db, cohort_id, stop, start):
    say(client, settings, LEAVER, stop)
    stop_id = last_inbound_id(db)
    say(client, settings, LEAVER, start)

    assert history(db) == [(CONSENT_OPT_OUT, stop_id, None),
                           (CONSENT_OPT_IN, last_inbound_id(db), None)]
    assert graduate(db).opted_out is False


def test_opted_out_graduate_receives_nothing_from_any_kind_until_mulai(
        client, settings, twilio_settings, db, twilio_fake, cohort_id):
    # A round is open and an announcement is waiting in the outbox when the graduate stops.
    with db.session() as session:
        cohort = session.get(Cohort, cohort_id)
        start_round(session, settings, cohort, utcnow() - timedelta(hours=1))
    assert Dispatcher(twilio_settings, db).run_once() == 2  # both prompts go
    with db.session() as session:
        create_announcement(session, settings, ["Menjahit 1"], "Ada pelatihan lanjutan", "ani")
    say(client, settings, LEAVER, "BERHENTI")
    dispatcher = Dispatcher(twilio_settings, db)
    dispatcher.run_once()
    before = len(twilio_fake.accepted_to(LEAVER))  # the prompt and the confirmation
    assert bodies(twilio_fake, LEAVER)[-1] == text("id", "optout_confirm")
    peer_before = len(twilio_fake.accepted_to(PEER))

    # A restart: new database connections, a new app, a new dispatcher; the opt-out holds.
    db.dispose()
    db2 = Database(settings.database.url)
    try:
        dispatcher = Dispatcher(twilio_settings, db2)
        with db2.session() as session:  # the reminder, two days later
            assert send_reminders(session, settings, now=utcnow() + timedelta(hours=49)) == 1
        with db2.session() as session:  # the next round
            cohort = session.get(Cohort, cohort_id)
            start_round(session, settings, cohort, utcnow())
        with db2.session() as session:  # a job opening and another announcement
            create_job_broadcast(session, settings, JobDraft(
                title="Operator jahit", employer="PT Sepatu KITB", location="Batang",
                cohort_names=["Menjahit 1"]), actor="ani")
            create_announcement(session, settings, None, "Bursa kerja hari Sabtu", "ani")
        dispatcher.run_once()

        assert len(twilio_fake.accepted_to(LEAVER)) == before  # nothing more
        # The peer got each of them: the reminder, the prompt, the job and the announcement.
        assert [m.kind for m in _sent_to(db2, PEER)][-4:] == [
            "reminder", "checkin", "job_opening", "announcement"]
        assert len(twilio_fake.accepted_to(PEER)) == peer_before + 4
        with db2.session() as session:
            held = session.scalars(select(Message.kind).where(
                Message.phone == LEAVER, Message.status == MSG_SUPPRESSED)).all()
            assert held == ["announcement"]  # queued before the opt-out, never sent
            assert session.scalar(select(Graduate.opted_out).where(
                Graduate.phone == LEAVER)) is True

        # MULAI: messages again, from the confirmation on.
        app2 = create_app(settings, db2)
        say(app2.test_client(), settings, LEAVER, "MULAI")
        assert handle_waiting(db2, settings) == 1  # the inbox pass of the restarted worker
        dispatcher.run_once()
        assert bodies(twilio_fake, LEAVER)[before:] == [text("id", "optin_confirm")]
        with db2.session() as session:
            start_round(session, settings, session.get(Cohort, cohort_id),
                        utcnow() + timedelta(minutes=1))
            create_announcement(session, settings, ["Menjahit 1"], "Selamat datang kembali",
                                "ani")
        assert dispatcher.run_once() == 4
        kinds = [m.kind for m in _sent_to(db2, LEAVER)]
        assert kinds[-2:] == ["checkin", "announcement"]
    finally:
        db2.dispose()


def _sent_to(db: Database, phone: str) -> list[Message]:
    with db.session() as session:
        return list(session.scalars(select(Message).where(
            Message.phone == phone, Message.twilio_sid.is_not(None),
            Message.direction == "out").order_by(Message.id)))


def test_twilio_21610_marks_the_graduate_blocked_and_stops_further_sends(
        client, settings, twilio_settings, db, twilio_fake, cohort_id):
    twilio_fake.fail_for(LEAVER, http_status=400, code=21610)
    with db.session() as session:
        create_announcement(session, settings, ["Menjahit 1"], "Ada pelatihan lanjutan", "ani")

    assert Dispatcher(twilio_settings, db).run_once() == 1  # the peer's

    with db.session() as session:
        refused = session.scalar(select(Message).where(Message.phone == LEAVER))
        assert (refused.status, refused.error_code) == (MSG_FAILED, "21610")
    leaver = graduate(db)
    assert leaver.opted_out and leaver.opted_out_at is not None
    [(event, message_id, detail)] = history(db)
    assert (event, message_id) == (CONSENT_BLOCKED, refused.id)
    assert "21610" in detail

    # Nothing more is even tried for that number: later messages are suppressed.
    tried = len(twilio_fake.requests)
    with db.session() as session:
        cohort = session.get(Cohort, cohort_id)
        start_round(session, settings, cohort, utcnow())
        create_announcement(session, settings, ["Menjahit 1"], "Bursa kerja", "ani")
    assert Dispatcher(twilio_settings, db).run_once() == 2  # the peer's prompt and announcement
    assert [r["form"]["To"] for r in twilio_fake.requests[tried:]] == [f"whatsapp:{PEER}"] * 2
    assert twilio_fake.accepted_to(LEAVER) == []

    # The graduate comes back with MULAI (and has unblocked the sender).
    twilio_fake.reset_faults()
    say(client, settings, LEAVER, "MULAI")
    Dispatcher(twilio_settings, db).run_once()
    assert bodies(twilio_fake, LEAVER) == [text("id", "optin_confirm")]
    assert [e for e, _, _ in history(db)] == [CONSENT_BLOCKED, CONSENT_OPT_IN]


def test_a_21610_for_a_graduate_already_opted_out_adds_no_second_event(
        client, settings, twilio_settings, db, twilio_fake, cohort_id):
    """STOP at Twilio too: the confirmation itself is refused as unsubscribed."""
    twilio_fake.fail_for(LEAVER, http_status=400, code=21610)
    say(client, settings, LEAVER, "STOP")

    assert Dispatcher(twilio_settings, db).run_once() == 0

    assert [e for e, _, _ in history(db)] == [CONSENT_OPT_OUT]
    assert graduate(db).opted_out is True


def test_21610_on_a_message_to_an_unknown_number_fails_it_only(twilio_settings, db,
                                                                twilio_fake):
    twilio_fake.fail_for("+6289900000001", http_status=400, code=21610)
    with db.session() as session:
        message_id = enqueue(session, phone="+6289900000001", kind="reply", body="Halo").id

    assert Dispatcher(twilio_settings, db).run_once() == 0

    with db.session() as session:
        assert session.get(Message, message_id).error_code == "21610"
        assert session.scalar(select(ConsentEvent.id)) is None
