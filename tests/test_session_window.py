"""WhatsApp's 24-hour window: business-initiated messages go as approved templates once the
graduate's window is closed, as text while it is open, and not at all without a template;
replies always go as text. Decided at send time, the same way for every transport."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot.broadcasts import JobDraft, create_job_broadcast
from bot.db import Database
from bot.dispatcher import Dispatcher
from bot.models import MSG_FAILED, MSG_QUEUED, Graduate, Message, utcnow
from bot.outbox import enqueue
from bot.transports import NO_TEMPLATE, WINDOW_CLOSED
from bot.transports.console import ConsoleTransport
from tests.conftest import TEST_AUTH_TOKEN, TEST_TEMPLATES
from tests.factories import make_cohort, make_graduates

PHONE = "+6281200000001"
VARIABLES = {"1": "Lulusan Menjahit 1 1", "2": "Menjahit 1"}


def queue(db: Database, kind: str, *, last_inbound_ago: timedelta | None = None,
          body: str = "Apa kabar, Siti? Bagaimana status kerja Anda sekarang?") -> int:
    """One graduate (who last wrote ``last_inbound_ago`` before now, or never) and one message of
    ``kind`` to them; returns the message id."""
    with db.session() as session:
        cohort = make_cohort(session)
        [graduate] = make_graduates(session, cohort, 1)
        if last_inbound_ago is not None:
            graduate.last_inbound_at = utcnow() - last_inbound_ago
        return enqueue(session, graduate=graduate, kind=kind, body=body,
                       content_variables=VARIABLES).id


def row(db: Database, message_id: int) -> Message:
    with db.session() as session:
        return session.get(Message, message_id)


@pytest.mark.parametrize("kind", ["checkin", "reminder", "job_opening", "announcement"])
def test_closed_window_sends_the_kinds_template_with_variables(twilio_settings, db, twilio_fake,
                                                              kind):
    message_id = queue(db, kind)  # the graduate never wrote: no window at all

    assert Dispatcher(twilio_settings, db).run_once() == 1

    [accepted] = twilio_fake.accepted
    assert accepted["content_sid"] == TEST_TEMPLATES[kind]
    assert accepted["content_variables"] == VARIABLES
    assert accepted["body"] is None
    assert row(db, message_id).content_sid == TEST_TEMPLATES[kind]  # what went out, on record


def test_window_closed_25_hours_after_the_last_message_uses_the_template(twilio_settings, db,
                                                                         twilio_fake):
    queue(db, "announcement", last_inbound_ago=timedelta(hours=25))

    assert Dispatcher(twilio_settings, db).run_once() == 1

    [accepted] = twilio_fake.accepted
    assert (accepted["content_sid"], accepted["body"]) == (TEST_TEMPLATES["announcement"], None)


def test_open_window_sends_the_text(twilio_settings, db, twilio_fake):
    message_id = queue(db, "checkin", last_inbound_ago=timedelta(hours=23),
                       body="Apa kabar, Siti?")

    assert Dispatcher(twilio_settings, db).run_once() == 1

    [accepted] = twilio_fake.accepted
    assert (accepted["body"], accepted["content_sid"], accepted["content_variables"]) == (
        "Apa kabar, Siti?", None, None)
    assert row(db, message_id).content_sid is None


def test_the_window_is_judged_when_the_message_goes_out(twilio_settings, db, twilio_fake):
    """Queued while the window was open (23 h), held two hours: it goes as the template."""
    queue(db, "reminder", last_inbound_ago=timedelta(hours=23))
    later = utcnow() + timedelta(hours=2)

    assert Dispatcher(twilio_settings, db, clock=lambda: later).run_once() == 1

    [accepted] = twilio_fake.accepted
    assert accepted["content_sid"] == TEST_TEMPLATES["reminder"]


def test_a_message_from_the_graduate_opens_the_window(client, settings, twilio_settings, db,
                                                      twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session)
        writer, silent = make_graduates(session, cohort, 2)
        writer_phone, silent_phone = writer.phone, silent.phone
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
            "From": f"whatsapp:{writer_phone}", "To": "whatsapp:+14155238886",
            "Body": "halo kak", "NumMedia": "0"}
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        settings.app.public_url + "/twilio/inbound", form)
    assert client.post("/twilio/inbound", data=form,
                       headers={"X-Twilio-Signature": signature}).status_code == 200
    with db.session() as session:
        job, _ = create_job_broadcast(
            session, settings, JobDraft(title="Operator jahit", employer="PT Sepatu KITB",
                                        location="Batang"), actor="ani")
        code = job.code

    Dispatcher(twilio_settings, db).run_once()

    to_writer = twilio_fake.accepted_to(writer_phone)  # the menu, then the job opening
    assert all(m["content_sid"] is None for m in to_writer)
    assert len([m for m in to_writer if f"MINAT {code}" in m["body"]]) == 1
    [to_silent] = twilio_fake.accepted_to(silent_phone)
    assert to_silent["content_sid"] == TEST_TEMPLATES["job_opening"]
    assert to_silent["content_variables"]["5"] == code


def test_closed_window_without_template_fails_and_sends_nothing(twilio_settings, db,
                                                                twilio_fake):
    no_announcement = {k: v for k, v in TEST_TEMPLATES.items() if k != "announcement"}
    settings = twilio_settings.with_overrides(twilio={"templates": no_announcement})
    refused_id = queue(db, "announcement", last_inbound_ago=timedelta(days=3))
    with db.session() as session:  # another message in the same batch still goes
        [other] = make_graduates(session, make_cohort(session, name="Bordir 1"), 1,
                                 first_phone=6281300000001)
        enqueue(session, graduate=other, kind="checkin", body="Apa kabar?",
                content_variables=VARIABLES)

    assert Dispatcher(settings, db).run_once() == 1

    assert twilio_fake.accepted_to(PHONE) == []
    assert [r["form"]["To"] for r in twilio_fake.requests] == ["whatsapp:+6281300000001"]
    refused = row(db, refused_id)
    assert (refused.status, refused.error_code, refused.twilio_sid) == (
        MSG_FAILED, NO_TEMPLATE, None)
    assert "twilio.templates.announcement" in refused.error_message
    assert Dispatcher(settings, db).run_once() == 0  # failed for good: not tried again
    assert twilio_fake.accepted_to(PHONE) == []


def test_open_window_needs_no_template(twilio_settings, db, twilio_fake):
    settings = twilio_settings.with_overrides(twilio={"templates": {}})
    message_id = queue(db, "announcement", last_inbound_ago=timedelta(minutes=5),
                       body="Pelatihan lanjutan dibuka")

    assert Dispatcher(settings, db).run_once() == 1

    assert [m["body"] for m in twilio_fake.accepted_to(PHONE)] == ["Pelatihan lanjutan dibuka"]
    assert row(db, message_id).status == MSG_QUEUED


@pytest.mark.parametrize("kind", ["reply", "optout_confirm"])
def test_replies_always_go_as_text(twilio_settings, db, twilio_fake, kind):
    """Answers to what the graduate just sent, even to a graduate with no recorded window."""
    queue(db, kind, body="Terima kasih")

    assert Dispatcher(twilio_settings, db).run_once() == 1

    [accepted] = twilio_fake.accepted
    assert (accepted["body"], accepted["content_sid"]) == ("Terima kasih", None)


def test_console_shows_the_same_choice(settings, db):
    """The console (and the simulator) follow the decision: the template is named, a refused
    message is not printed at all."""
    settings = settings.with_overrides(transport={"kind": "console"},
                                       twilio={"templates": {"checkin": TEST_TEMPLATES["checkin"]}})
    checkin_id = queue(db, "checkin", body="Apa kabar?")
    with db.session() as session:
        [other] = make_graduates(session, make_cohort(session, name="Bordir 1"), 1,
                                 first_phone=6281300000001)
        refused_id = enqueue(session, graduate=other, kind="job_opening", body="Lowongan").id
    stream = io.StringIO()

    assert Dispatcher(settings, db, transport=ConsoleTransport(stream)).run_once() == 1

    assert stream.getvalue() == (f"→ {PHONE}: Apa kabar?  [template {TEST_TEMPLATES['checkin']}]"
                                 "\n")
    assert row(db, checkin_id).content_sid == TEST_TEMPLATES["checkin"]
    assert row(db, refused_id).error_code == NO_TEMPLATE


def test_simulator_refuses_like_twilio(settings, db):
    settings = settings.with_overrides(twilio={"templates": {}})
    message_id = queue(db, "checkin")

    assert Dispatcher(settings, db).run_once() == 0

    message = row(db, message_id)
    assert (message.status, message.error_code) == (MSG_FAILED, NO_TEMPLATE)
    assert "twilio.templates.checkin" in message.error_message
    with db.session() as session:
        assert session.scalar(select(Graduate.opted_out)) is False  # nothing else changed


@pytest.mark.parametrize("kind", ["reply", "optout_confirm"])
def test_a_reply_that_waited_past_the_window_fails_here_not_at_twilio(twilio_settings, db,
                                                                      twilio_fake, kind):
    """The dispatcher was stopped for a day: the reply to yesterday's message would only get
    Twilio's 63016. It fails with the reason on the row, and nothing is sent."""
    late_id = queue(db, kind, last_inbound_ago=timedelta(hours=25), body="Terima kasih")
    with db.session() as session:  # a reply inside its window, in the same batch, still goes
        [other] = make_graduates(session, make_cohort(session, name="Bordir 1"), 1,
                                 first_phone=6281300000001)
        other.last_inbound_at = utcnow() - timedelta(hours=23)
        enqueue(session, graduate=other, kind=kind, body="Sama-sama")

    assert Dispatcher(twilio_settings, db).run_once() == 1

    assert [(r["form"]["To"], r["form"].get("Body")) for r in twilio_fake.requests] == [
        ("whatsapp:+6281300000001", "Sama-sama")]
    late = row(db, late_id)
    assert (late.status, late.error_code, late.twilio_sid) == (MSG_FAILED, WINDOW_CLOSED, None)
    assert "more than 24 hours old" in late.error_message
