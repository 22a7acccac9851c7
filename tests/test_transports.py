"""Transports: the real twilio SDK against the loopback Twilio fake; simulator; console."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import DEFAULT_TWILIO_API
from bot.models import Message
from bot.transports import (
    OutboundRequest,
    TransportError,
    build_transport,
    fake_sid,
    request_for,
)
from bot.transports.console import ConsoleTransport
from bot.transports.simulator import SimulatorTransport
from bot.transports.twilio import TwilioTransport

SID = re.compile(r"^SM[0-9a-f]{32}$")
CHECKIN_TEMPLATE = "HX" + "c" * 32


def _request(to: str = "+6281200000001", body: str = "Halo Siti", **kw) -> OutboundRequest:
    return OutboundRequest(message_id=1, to=to, body=body,
                           status_callback="http://kabar.test/twilio/status", **kw)


def _send_error(transport, req: OutboundRequest) -> TransportError:
    with pytest.raises(TransportError) as info:
        transport.send(req)
    return info.value


# --- twilio ---------------------------------------------------------------------------------

def test_twilio_sends_whatsapp_message_with_sender_body_and_callback(twilio_settings,
                                                                     twilio_fake):
    result = build_transport(twilio_settings).send(_request())

    assert SID.match(result.sid)
    assert result.status == "queued"
    [accepted] = twilio_fake.accepted
    assert accepted["sid"] == result.sid
    assert accepted["to"] == "whatsapp:+6281200000001"
    assert accepted["from"] == "whatsapp:+14155238886"
    assert accepted["body"] == "Halo Siti"
    assert accepted["content_sid"] is None
    assert accepted["status_callback"] == "http://kabar.test/twilio/status"


def test_twilio_sends_content_template_with_variables_instead_of_body(twilio_settings,
                                                                      twilio_fake):
    req = _request(content_sid=CHECKIN_TEMPLATE,
                   content_variables={"1": "Siti", "2": "Menjahit 1 – Pekalongan"})

    TwilioTransport(twilio_settings).send(req)

    [accepted] = twilio_fake.accepted
    assert accepted["content_sid"] == CHECKIN_TEMPLATE
    assert accepted["content_variables"] == {"1": "Siti", "2": "Menjahit 1 – Pekalongan"}
    assert accepted["body"] is None


def test_twilio_uses_messaging_service_when_no_sender_number(twilio_settings, twilio_fake):
    service = "MG" + "a" * 32
    settings = twilio_settings.with_overrides(
        twilio={"whatsapp_from": "", "messaging_service_sid": service})

    TwilioTransport(settings).send(_request())

    [accepted] = twilio_fake.accepted
    assert accepted["messaging_service_sid"] == service
    assert accepted["from"] is None


def test_twilio_sender_number_gets_whatsapp_prefix(twilio_settings, twilio_fake):
    settings = twilio_settings.with_overrides(twilio={"whatsapp_from": "+14155238886"})

    TwilioTransport(settings).send(_request())

    assert twilio_fake.accepted[0]["from"] == "whatsapp:+14155238886"


@pytest.mark.parametrize("http_status, code", [(429, 20429), (500, 20500), (503, 20503)])
def test_twilio_rate_limit_and_server_errors_are_retryable(twilio_settings, twilio_fake,
                                                           http_status, code):
    twilio_fake.fail_next(1, http_status=http_status, code=code)

    error = _send_error(TwilioTransport(twilio_settings), _request())

    assert error.retryable
    assert error.http_status == http_status
    assert error.code == str(code)
    assert twilio_fake.accepted == []


@pytest.mark.parametrize("code", [21211, 63016, 21610])
def test_twilio_client_errors_are_permanent_with_twilio_code(twilio_settings, twilio_fake, code):
    twilio_fake.fail_for("+6281200000001", http_status=400, code=code)

    error = _send_error(TwilioTransport(twilio_settings), _request())

    assert not error.retryable
    assert error.code == str(code)
    assert error.http_status == 400


def test_twilio_wrong_credentials_are_a_permanent_401(twilio_settings, twilio_fake):
    settings = twilio_settings.with_overrides(twilio={"auth_token": "not-the-token"})

    error = _send_error(TwilioTransport(settings), _request())

    assert (error.http_status, error.code, error.retryable) == (401, "20003", False)


def test_twilio_dropped_connection_is_retryable_without_code(twilio_settings, twilio_fake):
    twilio_fake.drop_connection_next(1)
    transport = TwilioTransport(twilio_settings)

    error = _send_error(transport, _request())
    result = transport.send(_request())  # the same transport works again afterwards

    assert error.retryable and error.code is None and error.http_status is None
    assert error.maybe_sent  # the request went out: only Twilio's list can tell
    assert [m["sid"] for m in twilio_fake.accepted] == [result.sid]


def test_twilio_fake_can_lose_the_answer_after_accepting(twilio_settings, twilio_fake):
    twilio_fake.drop_connection_next(1, after_accept=True)

    error = _send_error(TwilioTransport(twilio_settings), _request())

    # The sender cannot tell this from a refused request: Twilio has the message anyway.
    assert error.retryable and error.maybe_sent
    assert [m["to"] for m in twilio_fake.accepted] == ["whatsapp:+6281200000001"]
    assert twilio_fake.requests[-1]["answer"] == "dropped"


def test_twilio_timeout_is_retryable(twilio_settings, twilio_fake):
    twilio_fake.latency = 1.0

    error = _send_error(TwilioTransport(twilio_settings, timeout=0.2), _request())

    assert error.retryable and error.code is None and error.maybe_sent


def test_twilio_refused_connection_is_retryable(twilio_settings, twilio_fake):
    url = twilio_fake.url
    twilio_fake.stop()
    settings = twilio_settings.with_overrides(twilio={"api_base_url": url})

    error = _send_error(TwilioTransport(settings), _request())

    assert error.retryable and error.code is None
    assert not error.maybe_sent  # never connected: sent again without looking it up


def test_twilio_fake_refuses_a_message_without_body_like_twilio(twilio_settings, twilio_fake):
    error = _send_error(TwilioTransport(twilio_settings), _request(body=""))

    assert (error.http_status, error.code, error.retryable) == (400, "21602", False)


def test_twilio_default_base_url_is_twilio(settings):
    transport = TwilioTransport(settings.with_overrides(transport={"kind": "twilio"}))

    assert transport.client.api.base_url == DEFAULT_TWILIO_API


def test_twilio_fake_lists_accepted_messages_through_the_sdk(twilio_settings, twilio_fake):
    transport = TwilioTransport(twilio_settings)
    first = transport.send(_request(to="+6281200000001"))
    transport.send(_request(to="+6281200000002"))
    third = transport.send(_request(to="+6281200000001", body="Lagi"))

    listed = transport.client.messages.list(to="whatsapp:+6281200000001", page_size=1)

    assert [m.sid for m in listed] == [third.sid, first.sid]  # newest first, over two pages
    assert listed[0].body == "Lagi"


def test_twilio_error_answers_are_definite(twilio_settings, twilio_fake):
    twilio_fake.fail_next(1, http_status=429, code=20429)
    twilio_fake.fail_next(1, http_status=503, code=20503)
    transport = TwilioTransport(twilio_settings)

    errors = [_send_error(transport, _request()) for _ in range(2)]

    assert [(e.retryable, e.maybe_sent) for e in errors] == [(True, False), (True, False)]


def test_twilio_find_sent_finds_the_message_by_recipient_and_body(twilio_settings, twilio_fake):
    transport = TwilioTransport(twilio_settings)
    since = datetime.now(UTC)
    transport.send(_request(to="+6281200000002"))  # someone else
    transport.send(_request(body="Pesan lain"))  # another text to the same number
    sent = transport.send(_request())

    found = transport.find_sent(_request(), since)

    assert (found.sid, found.status) == (sent.sid, "queued")
    assert transport.find_sent(_request(body="Belum dikirim"), since) is None
    assert transport.find_sent(_request(to="+6281200000009"), since) is None
    assert transport.find_sent(_request(), since, exclude={sent.sid}) is None
    later = since + timedelta(minutes=5)  # created before the attempt in doubt: not ours
    assert transport.find_sent(_request(), later) is None
    [listing] = [r for r in twilio_fake.requests if r["method"] == "GET"][:1]
    assert listing["query"]["To"] == "whatsapp:+6281200000001"


def test_twilio_find_sent_takes_the_oldest_match_and_matches_templates_without_body(
        twilio_settings, twilio_fake):
    transport = TwilioTransport(twilio_settings)
    since = datetime.now(UTC)
    template = _request(content_sid=CHECKIN_TEMPLATE, content_variables={"1": "Siti"})
    first = transport.send(template)
    second = transport.send(template)

    assert transport.find_sent(template, since).sid == first.sid
    assert transport.find_sent(template, since, exclude={first.sid}).sid == second.sid


def test_twilio_find_sent_cannot_ask_an_unreachable_twilio(twilio_settings, twilio_fake):
    transport = TwilioTransport(twilio_settings)
    twilio_fake.stop()

    with pytest.raises(TransportError) as info:
        transport.find_sent(_request(), datetime.now(UTC))

    assert info.value.retryable


def test_simulator_and_console_have_no_record_to_find():
    since = datetime.now(UTC)

    assert SimulatorTransport().find_sent(_request(), since) is None
    assert ConsoleTransport(io.StringIO()).find_sent(_request(), since) is None


# --- choosing what is sent ------------------------------------------------------------------

def _row(kind: str, **kw) -> Message:
    return Message(id=7, direction="out", phone="+6281200000009", kind=kind, body="Halo",
                   status="pending", **kw)


def test_request_uses_template_configured_for_the_kind(settings):
    settings = settings.with_overrides(twilio={"templates": {"checkin": CHECKIN_TEMPLATE}})

    req = request_for(_row("checkin", content_variables={"1": "Siti"}), settings)

    assert req.content_sid == CHECKIN_TEMPLATE
    assert req.content_variables == {"1": "Siti"}
    assert req.body == "Halo"  # kept for the simulator and console
    assert req.status_callback == "http://kabar.test/twilio/status"


def test_request_without_template_sends_the_body(settings):
    settings = settings.with_overrides(twilio={"templates": {"checkin": CHECKIN_TEMPLATE}})

    req = request_for(_row("reply", content_variables={"1": "x"}), settings)

    assert (req.to, req.body, req.content_sid, req.content_variables) == (
        "+6281200000009", "Halo", None, None)


def test_request_prefers_the_rows_own_content_sid(settings):
    own = "HX" + "d" * 32
    settings = settings.with_overrides(twilio={"templates": {"checkin": CHECKIN_TEMPLATE}})

    assert request_for(_row("checkin", content_sid=own), settings).content_sid == own


# --- simulator and console ------------------------------------------------------------------

def test_build_transport_follows_the_setting(settings):
    assert isinstance(build_transport(settings), SimulatorTransport)
    console = settings.with_overrides(transport={"kind": "console"})
    assert isinstance(build_transport(console), ConsoleTransport)


def test_simulator_answers_with_a_twilio_shaped_sid():
    result = SimulatorTransport().send(_request())

    assert SID.match(result.sid)
    assert result.status == "delivered"
    assert SID.match(fake_sid()) and fake_sid() != fake_sid()


def test_console_prints_recipient_and_body(capsys):
    result = ConsoleTransport().send(_request(body="Apa kabar, Siti?"))

    assert capsys.readouterr().out == "→ +6281200000001: Apa kabar, Siti?\n"
    assert SID.match(result.sid)


def test_console_writes_to_a_given_stream_and_names_the_template():
    stream = io.StringIO()

    ConsoleTransport(stream).send(_request(content_sid=CHECKIN_TEMPLATE))

    assert stream.getvalue() == f"→ +6281200000001: Halo Siti  [template {CHECKIN_TEMPLATE}]\n"


def test_transport_error_carries_code_status_and_retryable():
    error = TransportError("boom", code="21211", http_status=400)

    assert (str(error), error.code, error.http_status, error.retryable) == (
        "boom", "21211", 400, False)
    assert json.dumps({"code": error.code})  # plain values, storable on the row
