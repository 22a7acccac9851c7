"""Media and odd messages: voice notes, pictures, stickers, documents, videos, locations,
contacts and quick-reply buttons, through the signed webhook in the middle of a check-in."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.conversations.checkin import ASK_EMPLOYER, ASK_RATING, ASK_STATUS, ASK_USES_SKILL
from bot.conversations.router import Inbound
from bot.models import INBOUND, Message, ProgressReport
from bot.webhook import parse_form
from tests.test_checkin_flow import NAME, GraduateChat, answer, t
from tests.test_checkin_flow import grad as grad  # noqa: F401 (the fixture)

MEDIA = [
    ("audio/ogg", "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1"),
    ("image/jpeg", "https://api.twilio.com/media/ME2"),
    ("image/webp", "https://api.twilio.com/media/ME3"),  # a sticker
    ("application/pdf", "https://api.twilio.com/media/ME4"),
    ("video/mp4", "https://api.twilio.com/media/ME5"),
    ("text/vcard", "https://api.twilio.com/media/ME6"),  # a shared contact
]


def last_inbound(db) -> Message:
    with db.session() as session:
        return session.scalars(select(Message).where(Message.direction == INBOUND)
                               .order_by(Message.id.desc())).first()


def then_again(reply: str, question: str) -> str:
    """A reply followed, in the same message, by the open check-in question asked again."""
    return reply + "\n\n" + t("checkin.again", question=t(question, name=NAME))


def assert_still_asking(grad: GraduateChat, state: str) -> None:
    conversation = grad.conversation()
    assert (conversation.state, conversation.misses) == (state, 0)


@pytest.mark.parametrize("content_type, url", MEDIA)
def test_media_is_logged_and_asked_to_be_typed(grad, db, content_type, url):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    grad.send("", NumMedia="1", MediaUrl0=url, MediaContentType0=content_type)
    assert grad.last_reply() == then_again(t("media_please_type"), "checkin.again_employer")
    message = last_inbound(db)
    assert (message.media_url, message.media_type, message.body) == (url, content_type, "")
    assert message.graduate_id == grad.id
    assert_still_asking(grad, ASK_EMPLOYER)
    assert grad.report().raw_answers.get("employer") is None
    answer(grad, "konveksi Bu Siti", "checkin.ask_uses_skill")


def test_location_is_logged_as_geo_and_asked_to_be_typed(grad, db):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    grad.send("", Latitude="-6.8886", Longitude="109.6753", Address="Jl. Hayam Wuruk, Pekalongan",
              Label="Konveksi Bu Siti")
    assert grad.last_reply() == then_again(t("media_please_type"), "checkin.again_employer")
    message = last_inbound(db)
    assert (message.media_type, message.media_url) == ("location", "geo:-6.8886,109.6753")
    assert message.body == ""
    assert_still_asking(grad, ASK_EMPLOYER)
    answer(grad, "konveksi Bu Siti", "checkin.ask_uses_skill")


def test_a_location_with_a_body_keeps_the_body_and_answers_with_it(grad, db):
    grad.begin()
    answer(grad, "1", "checkin.ask_employer")
    grad.send("Pabrik sepatu Batang", Latitude="-6.9", Longitude="109.7")
    assert grad.last_reply() == t("checkin.ask_uses_skill")
    message = last_inbound(db)
    assert (message.media_type, message.media_url, message.body) == (
        "location", "geo:-6.9,109.7", "Pabrik sepatu Batang")
    assert grad.report().employer == "Pabrik sepatu Batang"


def test_coordinates_off_the_globe_are_not_a_location(grad, db):
    grad.begin()
    grad.send("", Latitude="123.4", Longitude="abc")
    message = last_inbound(db)
    assert (message.media_type, message.media_url) == (None, None)
    assert grad.last_reply() == then_again(t("media_please_type"), "checkin.ask_status")
    assert_still_asking(grad, ASK_STATUS)  # still an empty message


def test_media_with_a_caption_is_answered_by_the_caption(grad, db):
    grad.begin()
    grad.send("2", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME7",
              MediaContentType0="image/jpeg")
    assert grad.last_reply() == t("checkin.ask_business")
    message = last_inbound(db)
    assert (message.media_type, message.body) == ("image/jpeg", "2")


def test_media_outside_a_checkin_is_asked_to_be_typed_too(grad, db):
    grad.send("", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME8",
              MediaContentType0="image/webp")
    assert grad.last_reply() == t("media_please_type")
    assert grad.conversation() is None


# --- quick-reply buttons --------------------------------------------------------------------

def test_button_payloads_advance_the_checkin(grad, db):
    grad.begin()
    grad.send("", ButtonPayload="1", ButtonText="Sudah bekerja")
    assert grad.last_reply() == t("checkin.ask_employer", name=NAME)
    assert last_inbound(db).body == "Sudah bekerja"  # the log shows what the graduate saw
    assert grad.report().employment_status == "employed"
    assert grad.report().raw_answers["status"] == ["1"]
    answer(grad, "konveksi Bu Siti", "checkin.ask_uses_skill")
    assert_still_asking(grad, ASK_USES_SKILL)
    grad.send("", ButtonPayload="ya", ButtonText="Ya, dipakai")
    assert grad.last_reply() == t("checkin.ask_rating")
    assert grad.report().uses_training_skill is True
    assert_still_asking(grad, ASK_RATING)


def test_button_with_a_body_answers_with_the_button_text(grad, db):
    grad.begin()
    grad.send("Belum bekerja", ButtonPayload="status_3", ButtonText="Belum bekerja")
    assert grad.last_reply() == t("checkin.ask_job_alerts")
    assert grad.report().employment_status == "seeking"


def test_button_without_payload_answers_with_its_label(grad, db):
    grad.begin()
    grad.send("", ButtonText="Lanjut sekolah")
    assert grad.last_reply() == t("checkin.ask_rating")
    assert grad.report().employment_status == "studying"


def test_button_payload_keyword_works(grad, db):
    grad.send("", ButtonPayload="LOWONGAN", ButtonText="Lihat lowongan")
    assert grad.last_reply() == t("jobs.none")


# --- parse_form -----------------------------------------------------------------------------

def form(**extra: str) -> dict[str, str]:
    return {"MessageSid": "SM1", "From": "whatsapp:+6281200000001", "Body": "", **extra}


def test_parse_form_reads_locations_buttons_and_media():
    location = parse_form(form(Latitude="-6.88", Longitude="109.67", Label="Rumah"))
    assert location.media == [("geo:-6.88,109.67", "location")]
    assert location.text == ""
    media_first = parse_form(form(NumMedia="1", MediaUrl0="https://x/ME1",
                                  MediaContentType0="text/vcard", Latitude="1", Longitude="2"))
    assert media_first.media == [("https://x/ME1", "text/vcard")]
    button = parse_form(form(ButtonPayload=" 1 ", ButtonText="Sudah bekerja"))
    assert (button.button_payload, button.button_text, button.text) == ("1", "Sudah bekerja",
                                                                        "1")
    assert parse_form(form(Latitude="", Longitude="")).media == []


@pytest.mark.parametrize("body, payload, label, expected", [
    ("2", "1", "Sudah bekerja", "2"),
    ("", "1", "Sudah bekerja", "1"),
    ("  ", None, "Lanjut sekolah", "Lanjut sekolah"),
    ("", None, None, ""),
])
def test_inbound_text_prefers_the_body_then_the_payload_then_the_label(body, payload, label,
                                                                      expected):
    inbound = Inbound(phone="+6281200000001", body=body, message_sid="SM1",
                      button_payload=payload, button_text=label)
    assert inbound.text == expected


def test_each_odd_message_is_stored_once(grad, db):
    grad.begin()
    for content_type, url in MEDIA:
        grad.send("", NumMedia="1", MediaUrl0=url, MediaContentType0=content_type)
    grad.send("", Latitude="-6.9", Longitude="109.7")
    with db.session() as session:
        assert session.scalar(select(func.count(Message.id)).where(
            Message.direction == INBOUND, Message.graduate_id == grad.id)) == len(MEDIA) + 1
        assert session.scalar(select(func.count(ProgressReport.id))) == 1
    assert_still_asking(grad, ASK_STATUS)
