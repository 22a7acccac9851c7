"""Keywords at any time, unknown numbers, joining by code, the daily menu, and the catalogs."""

from __future__ import annotations

import string
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from twilio.request_validator import RequestValidator

from bot.catalog import load, text
from bot.conversations.checkin import ASK_STATUS
from bot.models import (
    INBOUND,
    OUTBOUND,
    CheckInRound,
    Conversation,
    Graduate,
    Interest,
    JobOpening,
    Message,
    ProgressReport,
)
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates

PHONE = "+6281200000001"
STRANGER = "+6285700000099"


def t(key: str, **values) -> str:
    return text("id", key, **values)


@pytest.fixture
def accept_joins():
    """Marks a test of joining with joining.require_approval = false."""


@pytest.fixture
def settings(settings, request):
    if "accept_joins" in request.fixturenames:
        return settings.with_overrides(joining={"require_approval": False})
    return settings


@pytest.fixture
def send(client, settings):
    """send(body, phone=PHONE): one signed inbound message through the webhook."""
    def send(body: str, phone: str = PHONE, **extra: str) -> None:
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{phone}",
                "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0", **extra}
        signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
            settings.app.public_url + "/twilio/inbound", form)
        answer = client.post("/twilio/inbound", data=form,
                             headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.data
    return send


@pytest.fixture
def graduate_id(db) -> int:
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1", join_code="MENJAHIT1")
        return make_graduates(session, cohort, count=1)[0].id


def outbound(db, phone: str = PHONE) -> list[Message]:
    with db.session() as session:
        return list(session.scalars(select(Message).where(
            Message.phone == phone, Message.direction == OUTBOUND).order_by(Message.id)))


def last_body(db, phone: str = PHONE) -> str:
    return outbound(db, phone)[-1].body


def local_today(settings):
    return datetime.now(settings.tz).date()


# --- the catalogs ---------------------------------------------------------------------------

def placeholders(template: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(template) if field}


def test_both_catalogs_have_the_same_keys_and_placeholders():
    indonesian, english = load("id"), load("en")
    assert sorted(indonesian) == sorted(english)
    for key in indonesian:
        assert placeholders(indonesian[key]) == placeholders(english[key]), key


def test_catalog_has_every_text_the_bot_sends():
    needed = {"checkin.prompt": {"name", "cohort"}, "checkin.thanks": set(),
              "job.opening": {"title", "employer", "location", "deadline", "code"},
              "announcement": {"text", "cohort"}, "menu": set(), "unknown_number": set(),
              "media_please_type": set(), "optout_confirm": set(), "optin_confirm": set()}
    texts = load("id")
    for key, fields in needed.items():
        assert fields <= placeholders(texts[key]), key
    assert "MINAT {code}" in texts["job.opening"]
    for question in ("status", "employer", "uses_skill", "business", "job_alerts", "rating",
                     "help"):
        assert f"checkin.hint_{question}" in texts


# --- LOWONGAN -------------------------------------------------------------------------------

def test_lowongan_lists_open_openings_for_the_skill_newest_first(send, db, settings,
                                                                 graduate_id):
    today = local_today(settings)
    base = datetime(2026, 1, 1, 8, 0).astimezone()
    jobs = [  # (code, skill, closed, deadline); created one hour apart, oldest first
        ("OLD", "menjahit", False, None),
        ("ANY", None, False, today + timedelta(days=3)),
        ("WELD", "las listrik", False, None),
        ("SHUT", "menjahit", True, None),
        ("PAST", "menjahit", False, today - timedelta(days=1)),
        ("TODAY", "Menjahit", False, today),
        ("SHOE", "menjahit sepatu", False, None),
        ("JAHIT", "jahit", False, None),
        ("NEW", "", False, None),
        ("NEWEST", "MENJAHIT", False, None),
    ]
    with db.session() as session:
        for i, (code, skill, closed, deadline) in enumerate(jobs):
            session.add(JobOpening(code=code, title=f"Lowongan {code}", employer="PT Contoh",
                                   location="Batang", skill=skill, closed=closed,
                                   deadline=deadline, created_at=base + timedelta(hours=i)))
    send("lowongan")
    body = last_body(db)
    listed = [code for code, *_ in jobs if f"*{code}*" in body]
    assert listed == ["TODAY", "SHOE", "JAHIT", "NEW", "NEWEST"]  # five, and not OLD/ANY
    positions = [body.index(f"Lowongan {code}") for code in reversed(listed)]
    assert positions == sorted(positions)  # newest first
    assert body.startswith(t("jobs.header")) and body.endswith(t("jobs.footer"))
    assert today.strftime("%d/%m/%Y") in body


def test_lowongan_without_fitting_openings_says_so(send, db, graduate_id):
    with db.session() as session:
        session.add(JobOpening(code="WELD", title="Tukang las", employer="CV Besi",
                               location="Pekalongan", skill="las"))
    send("LOKER")
    assert last_body(db) == t("jobs.none")


# --- MINAT ----------------------------------------------------------------------------------

@pytest.fixture
def openings(db, settings):
    today = local_today(settings)
    with db.session() as session:
        session.add_all([
            JobOpening(code="JHT01", title="Operator jahit", employer="PT Sepatu",
                       location="Batang", skill="menjahit", deadline=today),
            JobOpening(code="OLD01", title="Penjahit", employer="CV Lama", location="Batang",
                       deadline=today - timedelta(days=1)),
            JobOpening(code="CLS01", title="Obras", employer="CV Tutup", location="Batang",
                       closed=True),
        ])


def interests(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Interest.id)))


def test_minat_records_the_interest_once(send, db, graduate_id, openings):
    send("MINAT JHT01")
    assert last_body(db) == t("interest.recorded", title="Operator jahit", employer="PT Sepatu",
                              code="JHT01")
    send("minat jht01")
    assert last_body(db) == t("interest.already", title="Operator jahit", code="JHT01")
    with db.session() as session:
        interest = session.scalars(select(Interest)).one()
        assert interest.graduate_id == graduate_id


def test_minat_with_an_unknown_code_records_nothing(send, db, graduate_id, openings):
    send("MINAT XYZ99")
    assert last_body(db) == t("interest.unknown_code", code="XYZ99")
    send("MINAT")
    assert last_body(db) == t("interest.ask_code")
    assert interests(db) == 0


@pytest.mark.parametrize("code, title", [("OLD01", "Penjahit"), ("CLS01", "Obras")])
def test_minat_for_a_closed_or_past_opening_says_it_is_closed(send, db, graduate_id, openings,
                                                              code, title):
    send(f"MINAT {code}")
    assert last_body(db) == t("interest.closed", title=title, code=code)
    assert interests(db) == 0


# --- CEK ------------------------------------------------------------------------------------

def test_cek_starts_a_checkin_for_this_graduate_now(send, db, graduate_id):
    with db.session() as session:
        cohort_id = session.get(Graduate, graduate_id).cohort_id
        make_graduates(session, session.get(Graduate, graduate_id).cohort, count=1,
                       first_phone=6281200000050)
    send("cek")
    with db.session() as session:
        round_ = session.scalars(select(CheckInRound)).one()
        assert (round_.cohort_id, round_.trigger) == (cohort_id, "self")
        report = session.scalars(select(ProgressReport)).one()  # only this graduate's
        assert (report.graduate_id, report.status) == (graduate_id, "open")
        conversation = session.get(Conversation, graduate_id)
        assert (conversation.state, conversation.report_id) == (ASK_STATUS, report.id)
    prompt = outbound(db)[-1]
    assert (prompt.kind, prompt.round_id) == ("checkin", round_.id)
    send("2")
    assert last_body(db) == t("checkin.ask_business")


def test_cek_in_the_middle_of_a_checkin_asks_its_question_again(send, db, graduate_id):
    """A graduate who sends CEK halfway keeps what they said: no second check-in starts."""
    send("cek")
    send("2")
    assert last_body(db) == t("checkin.ask_business")
    send("CEK")
    assert last_body(db) == t("checkin.again_business")
    with db.session() as session:
        assert len(session.scalars(select(CheckInRound)).all()) == 1
        report = session.scalars(select(ProgressReport)).one()
        assert (report.status, report.employment_status) == ("open", "self_employed")
    send("jahit permak di rumah")
    with db.session() as session:
        assert session.scalars(select(ProgressReport)).one().employer == "jahit permak di rumah"


# --- BERHENTI / MULAI -----------------------------------------------------------------------

@pytest.mark.parametrize("stop, start", [("BERHENTI", "MULAI"), ("stop", "Start")])
def test_stop_opts_out_and_start_opts_back_in(send, db, graduate_id, stop, start):
    send(stop)
    confirm = outbound(db)[-1]
    assert (confirm.kind, confirm.body, confirm.status) == ("optout_confirm",
                                                            t("optout_confirm"), "pending")
    with db.session() as session:
        graduate = session.get(Graduate, graduate_id)
        assert graduate.opted_out is True and graduate.opted_out_at is not None
    send("MENU")  # the menu would not be sent, and the confirmation just said MULAI
    assert outbound(db)[-1].kind == "optout_confirm"
    send(start)
    confirm = outbound(db)[-1]
    assert (confirm.body, confirm.status) == (t("optin_confirm"), "pending")
    with db.session() as session:
        graduate = session.get(Graduate, graduate_id)
        assert graduate.opted_out is False and graduate.opted_out_at is None


# --- unknown numbers and GABUNG -------------------------------------------------------------

def test_unknown_number_is_told_how_to_join(send, db, graduate_id):
    send("halo, ini siapa?", phone=STRANGER)
    reply = outbound(db, STRANGER)[-1]
    assert (reply.body, reply.graduate_id, reply.status) == (t("unknown_number"), None,
                                                             "pending")
    with db.session() as session:
        inbound = session.scalar(select(Message).where(Message.direction == INBOUND))
        assert (inbound.phone, inbound.graduate_id) == (STRANGER, None)
        assert session.scalar(select(Graduate).where(Graduate.phone == STRANGER)) is None


def test_gabung_asks_the_name_then_welcomes_into_the_cohort(send, db, graduate_id, accept_joins):
    send("gabung menjahit1", phone=STRANGER, ProfileName="siti")
    assert last_body(db, STRANGER) == t("join.ask_name", cohort="Menjahit 1")
    with db.session() as session:
        pending = session.scalar(select(Graduate).where(Graduate.phone == STRANGER))
        assert pending.active is False  # no check-ins or broadcasts before the name
    send("Siti Aminah", phone=STRANGER)
    assert last_body(db, STRANGER) == t("join.welcome", name="Siti Aminah", cohort="Menjahit 1")
    with db.session() as session:
        graduate = session.scalar(select(Graduate).where(Graduate.phone == STRANGER))
        cohort_id = session.get(Graduate, graduate_id).cohort_id
        assert (graduate.name, graduate.cohort_id, graduate.active) == ("Siti Aminah",
                                                                       cohort_id, True)
        assert graduate.skill == "menjahit"
        assert session.get(Conversation, graduate.id) is None
        mine = session.scalars(select(Message).where(Message.phone == STRANGER)).all()
        assert len(mine) == 4 and {m.graduate_id for m in mine} == {graduate.id}
    assert all(m.status == "pending" for m in outbound(db, STRANGER))  # none suppressed


def test_while_joining_a_keyword_is_not_taken_for_the_name(send, db, graduate_id, accept_joins):
    with db.session() as session:
        make_cohort(session, name="Bordir 2", institution="LPKS Nisfisano", skill="bordir",
                    join_code="BORDIR2")
    send("GABUNG MENJAHIT1", phone=STRANGER)
    send("MENU", phone=STRANGER)
    assert last_body(db, STRANGER) == t("join.hint_name")
    send("gabung bordir2", phone=STRANGER)  # a different code: that cohort instead
    assert last_body(db, STRANGER) == t("join.ask_name", cohort="Bordir 2")
    send("Dewi", phone=STRANGER)
    assert last_body(db, STRANGER) == t("join.welcome", name="Dewi", cohort="Bordir 2")
    with db.session() as session:
        graduate = session.scalar(select(Graduate).where(Graduate.phone == STRANGER))
        assert (graduate.name, graduate.skill, graduate.active) == ("Dewi", "bordir", True)


def test_gabung_with_an_unknown_code_creates_nobody(send, db, graduate_id, accept_joins):
    send("GABUNG SALAH9", phone=STRANGER)
    assert last_body(db, STRANGER) == t("join.bad_code", code="SALAH9")
    with db.session() as session:
        assert session.scalar(select(Graduate).where(Graduate.phone == STRANGER)) is None


def test_gabung_from_a_known_number_names_its_cohort(send, db, graduate_id):
    send("GABUNG MENJAHIT1")
    assert last_body(db) == t("join.already", cohort="Menjahit 1")


# --- the menu outside a conversation --------------------------------------------------------

def test_menu_is_sent_at_most_once_a_day(send, db, graduate_id):
    send("halo kak")
    assert last_body(db) == t("menu")
    send("terima kasih")
    send("👍")
    assert len(outbound(db)) == 1
    with db.session() as session:
        assert session.scalar(select(func.count(Message.id)).where(
            Message.direction == INBOUND)) == 3  # every message is kept for staff
        graduate = session.get(Graduate, graduate_id)
        graduate.last_menu_at -= timedelta(hours=25)
    send("halo lagi")
    assert [m.body for m in outbound(db)] == [t("menu"), t("menu")]


def test_english_speakers_get_english_texts(send, db, graduate_id):
    with db.session() as session:
        session.execute(update(Graduate).values(language="en"))
    send("help")
    assert last_body(db) == text("en", "menu")
