"""A graduate who opted out and writes again is told, once a day at most, how to come back."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.catalog import text
from bot.consent import blocked_by_provider
from bot.dispatcher import Dispatcher
from bot.inbox import handle_waiting
from bot.models import INBOUND, MSG_PENDING, OUTBOUND, Graduate, Message
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates

LEAVER = "+6281200000001"
HINT = text("id", "optout_reminder")


def say(client, settings, phone: str, body: str = "", **extra: str) -> None:
    """The graduate sends ``body`` on WhatsApp: Twilio's signed webhook."""
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{phone}",
            "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0", **extra}
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        settings.app.public_url + "/twilio/inbound", form)
    answer = client.post("/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.data


def replies(db) -> list[tuple[str, str, str]]:
    """(kind, status, body) of everything Kabar queued for the leaver, oldest first."""
    with db.session() as session:
        return [tuple(row) for row in session.execute(
            select(Message.kind, Message.status, Message.body)
            .where(Message.phone == LEAVER, Message.direction == OUTBOUND)
            .order_by(Message.id))]


def a_day_passes(db) -> None:
    """Move every message of the leaver back 25 hours, as if written yesterday."""
    with db.session() as session:
        for message in session.scalars(select(Message).where(Message.phone == LEAVER)):
            message.created_at -= timedelta(hours=25)


@pytest.fixture
def opted_out(client, settings, db):
    with db.session() as session:
        make_graduates(session, make_cohort(session), 2)
    say(client, settings, LEAVER, "BERHENTI")
    assert [r[0] for r in replies(db)] == ["optout_confirm"]


def test_writing_after_opting_out_gets_one_hint_a_day(client, settings, db, opted_out):
    say(client, settings, LEAVER, "halo kak")  # the confirmation just said how: no hint
    assert len(replies(db)) == 1
    a_day_passes(db)
    say(client, settings, LEAVER, "halo kak, masih ada lowongan?")
    say(client, settings, LEAVER, "halo??")
    say(client, settings, LEAVER, "BANTUAN")  # the menu would be suppressed: no second reply
    assert replies(db)[1:] == [("optout_reminder", MSG_PENDING, HINT)]
    a_day_passes(db)
    say(client, settings, LEAVER, "LOWONGAN")
    assert [r[0] for r in replies(db)] == ["optout_confirm", "optout_reminder",
                                           "optout_reminder"]


def test_the_hint_reaches_whatsapp_as_a_reply_and_mulai_brings_them_back(
        client, settings, twilio_settings, db, twilio_fake, opted_out):
    a_day_passes(db)
    say(client, settings, LEAVER, "", NumMedia="1", MediaUrl0="https://example.test/v.ogg",
        MediaContentType0="audio/ogg")  # a voice note
    Dispatcher(twilio_settings, db).run_once()
    sent = twilio_fake.accepted_to(LEAVER)
    assert sent[-1]["body"] == HINT and not sent[-1].get("content_sid")
    assert "MULAI" in sent[-1]["body"]

    say(client, settings, LEAVER, "mulai")
    say(client, settings, LEAVER, "menu")
    with db.session() as session:
        assert session.scalar(select(Graduate.opted_out).where(Graduate.phone == LEAVER)) is False
    assert [r[2] for r in replies(db)][-2:] == [text("id", "optin_confirm"), text("id", "menu")]


def test_a_number_blocked_by_twilio_that_writes_is_told_too(client, settings, db):
    with db.session() as session:
        (graduate,) = make_graduates(session, make_cohort(session), 1)
        message = Message(direction=OUTBOUND, graduate_id=graduate.id, phone=LEAVER,
                          kind="checkin", body="Halo", status="failed")
        session.add(message)
        session.flush()
        blocked_by_provider(session, message, "21610 unsubscribed")
    say(client, settings, LEAVER, "kenapa tidak ada pesan lagi?")
    assert replies(db)[-1] == ("optout_reminder", MSG_PENDING, HINT)


@pytest.mark.parametrize("language", ["id", "en"])
def test_the_menu_names_mulai(language):
    assert "*MULAI*" in text(language, "menu")
    assert "*MULAI*" in text(language, "optout_reminder")


def test_a_message_handled_after_its_window_closed_gets_no_hint(queued_app, settings, db):
    with db.session() as session:
        graduate = make_graduates(session, make_cohort(session), 1)[0]
        graduate.opted_out = True
    client = queued_app.test_client()
    say(client, settings, LEAVER, "halo")
    with db.session() as session:  # no dispatcher ran for a day
        for message in session.scalars(select(Message).where(Message.direction == INBOUND)):
            message.created_at -= timedelta(hours=25)
    assert handle_waiting(db, settings) == 1
    assert replies(db) == []  # WhatsApp would refuse a plain reply now
