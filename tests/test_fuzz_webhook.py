"""10,000 signed, hostile Twilio requests: never a 5xx, and the database stays consistent.

Inbound messages and status callbacks with NUL characters, over-long fields, control
characters, odd digits, huge numbers, repeated SIDs and broken phone numbers, each signed with
Twilio's ``RequestValidator`` as Twilio signs them. Every request answers 200 or 400 (never
5xx); every message answered 200 is stored exactly once, without NUL and within its columns,
with a note when it was changed; the recorded messages are then handled by the inbox.
"""

from __future__ import annotations

import random
from collections import Counter

from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.inbox import handle_waiting
from bot.models import INBOUND, MSG_ERROR, DeliveryEvent, Message
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN

REQUESTS = 10_000
INBOUND_SHARE = 0.7
ODD = ["", " ", "\x00", "a\x00b", "\r\n", "x\r\nSet-Cookie: a=b", "²", "٣٤", "9" * 20,
       "-1", "1e400", "nan", "0001-01-01", "9999-12-31", "%00", "\u202e\u200b", "😀" * 50,
       "<script>alert(1)</script>", "' OR 1=1 --", "a" * 101, "b" * 5000, "\t\x01\x1f\x7f"]
PHONES = ["whatsapp:+6281234567890", "whatsapp:+6281234567891", "whatsapp:+62812\x0034567892",
          "+6281234567893", "whatsapp:081234567894", "whatsapp:+", "whatsapp:+" + "9" * 30,
          "whatsapp:+62812345678\r\n", "whatsapp:²"]
STATUSES = ["queued", "sent", "delivered", "read", "failed", "undelivered", "receiving",
            "sent\x00", "x" * 40]


def _odd(rng: random.Random) -> str:
    return rng.choice(ODD) if rng.random() < 0.8 else rng.choice(ODD) + rng.choice(ODD)


def _inbound(rng: random.Random, sids: list[str]) -> dict[str, str]:
    if sids and rng.random() < 0.05:
        sid = rng.choice(sids)  # a redelivery
    else:
        sid = "SM" + "".join(rng.choices("0123456789abcdef", k=32))
        if rng.random() < 0.05:
            sid = rng.choice(["", sid + "\x00", sid * 3, "SM²" + sid[3:]])
    form = {"MessageSid": sid, "AccountSid": TEST_ACCOUNT_SID, "From": rng.choice(PHONES),
            "To": "whatsapp:+14155238886", "Body": _odd(rng) if rng.random() < 0.7 else "iya"}
    if rng.random() < 0.3:
        count = rng.choice(["1", "2", "10", "99999999999999999999", "²", "-3", ""])
        form["NumMedia"] = count
        for i in range(3):
            form[f"MediaUrl{i}"] = rng.choice(["https://api.twilio.com/m/1", _odd(rng)])
            form[f"MediaContentType{i}"] = rng.choice(["image/jpeg", "a" * 150, _odd(rng)])
    for key in ("ProfileName", "ButtonPayload", "ButtonText", "Latitude", "Longitude",
                "Label", "WaId"):
        if rng.random() < 0.2:
            form[key] = _odd(rng)
    return form


def _status(rng: random.Random, sids: list[str]) -> dict[str, str]:
    form = {"MessageSid": rng.choice(sids) if sids and rng.random() < 0.5
            else "SM" + _odd(rng)[:40], "MessageStatus": rng.choice(STATUSES + ODD[:6]),
            "AccountSid": TEST_ACCOUNT_SID}
    if rng.random() < 0.3:
        form["ErrorCode"] = rng.choice(["63016", "", "²", "9" * 20, "\x00"])
    return form


def _post(client, path: str, form: dict[str, str]):
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        "http://kabar.test" + path, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def test_ten_thousand_hostile_signed_requests_never_answer_5xx(queued_app, db, settings):
    rng = random.Random(20221017)  # UU PDP 27/2022 came into force on 17 October 2022
    client = queued_app.test_client()
    codes: Counter[tuple[str, int]] = Counter()
    stored: dict[str, int] = {}  # SID (as Kabar keeps it) -> how many 200 answers
    sids: list[str] = []
    for _ in range(REQUESTS):
        if rng.random() < INBOUND_SHARE:
            form = _inbound(rng, sids)
            answer = _post(client, "/twilio/inbound", form)
            codes["inbound", answer.status_code] += 1
            if answer.status_code == 200:
                sid = form["MessageSid"].replace("\x00", "").strip()
                stored[sid] = stored.get(sid, 0) + 1
                sids.append(sid)
        else:
            answer = _post(client, "/twilio/status", _status(rng, sids))
            codes["status", answer.status_code] += 1
        assert answer.status_code < 500, (answer.status_code, answer.get_data(as_text=True))
    print(f"\nfuzzed {REQUESTS} signed requests on {db.engine.dialect.name}: "
          + ", ".join(f"{kind} {code}: {n}" for (kind, code), n in sorted(codes.items())))
    assert sum(codes.values()) == REQUESTS
    assert not [k for k in codes if k[1] >= 500]

    with db.session() as session:
        rows = session.execute(select(Message.twilio_sid, Message.body, Message.media_type,
                                      Message.meta)
                               .where(Message.direction == INBOUND)).all()
        events = session.scalar(select(func.count()).select_from(DeliveryEvent))
    by_sid = Counter(r.twilio_sid for r in rows)
    # Every message answered 200 is stored, exactly once (redeliveries included).
    assert set(by_sid) == set(stored)
    assert set(by_sid.values()) == {1}
    assert 0 < events <= codes["status", 200]  # a status Kabar does not track is not kept
    for row in rows:
        assert "\x00" not in row.body and len(row.body) <= 4096
        assert row.media_type is None or len(row.media_type) <= 100
    cut = [r for r in rows if r.meta and "Body" in r.meta.get("cleaned", {})]
    assert cut, "a changed message carries a note saying what changed"

    # The inbox handles what was stored: nothing is parked as an error.
    while handle_waiting(db, settings, limit=500):
        pass
    with db.session() as session:
        errors = session.scalar(select(func.count()).select_from(Message)
                                .where(Message.status == MSG_ERROR))
    assert errors == 0
