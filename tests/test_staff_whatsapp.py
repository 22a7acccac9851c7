"""Staff over WhatsApp: SIARAN (confirmed with YA), BATAL, expiry, REKAP, roles and scopes,
driven through the signed webhook like a staff member's phone."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from twilio.request_validator import RequestValidator

from bot.catalog import text
from bot.conversations.checkin import ASK_EMPLOYER, begin_checkin
from bot.conversations.staff import CONFIRM_WITHIN
from bot.dispatcher import Dispatcher
from bot.models import (
    INBOUND,
    OUTBOUND,
    REPORT_COMPLETED,
    REPORT_OPEN,
    AuditLog,
    Broadcast,
    CheckInRound,
    Conversation,
    Graduate,
    Institution,
    Message,
    ProgressReport,
    StaffUser,
    utcnow,
)
from bot.staffusers import add_staff
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates

ADMIN = "+6281300000001"
VIEWER = "+6281300000002"
STAFF = "+6281300000003"
BROADCAST_TEXT = "Besok ada bursa kerja di BLK jam 9. Bawa CV, ya!"


def t(key: str, **values: object) -> str:
    return text("id", key, **values)


@pytest.fixture
def roster(db) -> dict[str, list[int]]:
    """LPKS A'nur: Menjahit 1 (3 active + 1 opted out + 1 inactive), Menjahit 2 (2);
    LPKS Bina: Las 1 (2). Staff: ani (admin), budi (viewer of LPKS Bina), cici (staff)."""
    with db.session() as session:
        m1 = make_cohort(session, "Menjahit 1")
        m2 = make_cohort(session, "Menjahit 2")
        las = make_cohort(session, "Las 1", institution="LPKS Bina", skill="las",
                          join_code="LAS-B1")
        g1 = make_graduates(session, m1, count=5, first_phone=6281200000101)
        g1[3].opted_out = True
        g1[4].active = False
        g2 = make_graduates(session, m2, count=2, first_phone=6281200000201)
        g3 = make_graduates(session, las, count=2, first_phone=6281200000301)
        add_staff(session, name="ani", role="admin", password="rahasia123", phone=ADMIN)
        add_staff(session, name="budi", role="viewer", password="rahasia123", phone=VIEWER,
                  institution="LPKS Bina")
        add_staff(session, name="cici", role="staff", password="rahasia123", phone=STAFF)
        return {"Menjahit 1": [g.id for g in g1], "Menjahit 2": [g.id for g in g2],
                "Las 1": [g.id for g in g3], "cohorts": [m1.id, m2.id, las.id]}


@pytest.fixture
def send(client, settings):
    def send(phone: str, body: str = "", **extra: str) -> None:
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{phone}",
                "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0", **extra}
        signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
            settings.app.public_url + "/twilio/inbound", form)
        answer = client.post("/twilio/inbound", data=form,
                             headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200, answer.data
    return send


def replies(db, phone: str) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(Message.body).where(
            Message.phone == phone, Message.direction == OUTBOUND,
            Message.kind == "staff_reply").order_by(Message.id)))


def last_reply(db, phone: str) -> str:
    return replies(db, phone)[-1]


def announcements(db) -> list[Message]:
    with db.session() as session:
        return list(session.scalars(select(Message).where(Message.kind == "announcement")
                                    .order_by(Message.graduate_id)))


def broadcast_count(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count(Broadcast.id)))


def staff_user(db, name: str) -> StaffUser:
    with db.session() as session:
        return session.scalar(select(StaffUser).where(StaffUser.name == name))


def audit_actions(db, actor: str) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(AuditLog.action).where(AuditLog.actor == actor)
                                    .order_by(AuditLog.id)))


def confirm_text(cohorts: str, count: int, body: str = BROADCAST_TEXT) -> str:
    return t("staff.broadcast_confirm", cohorts=cohorts, count=count, text=body,
             minutes=int(CONFIRM_WITHIN.total_seconds() // 60))


# --- SIARAN … YA ---------------------------------------------------------------------------

def test_siaran_sends_nothing_without_ya(send, db, roster, twilio_settings, twilio_fake):
    send(ADMIN, f"SIARAN menjahit 1 {BROADCAST_TEXT}")
    assert last_reply(db, ADMIN) == confirm_text("Menjahit 1", 3)
    assert "Balas *YA* untuk mengirim, *BATAL* untuk membatalkan" in last_reply(db, ADMIN)
    user = staff_user(db, "ani")
    assert user.pending_action == {"action": "broadcast", "cohorts": [roster["cohorts"][0]],
                                   "text": BROADCAST_TEXT}
    assert user.pending_since is not None and user.last_inbound_at is not None

    Dispatcher(twilio_settings, db).run_once()
    assert announcements(db) == [] and broadcast_count(db) == 0
    assert [m["to"] for m in twilio_fake.accepted] == [f"whatsapp:{ADMIN}"]  # the question only
    with db.session() as session:
        inbound = session.scalar(select(Message).where(Message.direction == INBOUND))
        assert inbound.phone == ADMIN and inbound.graduate_id is None
    assert audit_actions(db, "ani")[-1] == "whatsapp.broadcast_prepare"


@pytest.mark.parametrize("yes", ["YA", "iya kak", "ok", "Ya."])
def test_ya_sends_to_exactly_the_counted_recipients(send, db, roster, twilio_settings,
                                                    twilio_fake, yes):
    send(ADMIN, f"SIARAN Menjahit 1 {BROADCAST_TEXT}")
    send(ADMIN, yes)
    assert last_reply(db, ADMIN) == t("staff.broadcast_sent", cohorts="Menjahit 1", count=3)
    rows = announcements(db)
    assert [m.graduate_id for m in rows] == roster["Menjahit 1"][:3]
    assert all(BROADCAST_TEXT in m.body for m in rows)
    with db.session() as session:
        broadcast = session.scalar(select(Broadcast))
        assert broadcast.created_by == "ani" and broadcast.recipient_count == 3
    assert staff_user(db, "ani").pending_action is None

    Dispatcher(twilio_settings, db).run_once()
    with db.session() as session:
        phones = set(session.scalars(select(Graduate.phone).where(
            Graduate.id.in_(roster["Menjahit 1"][:3]))))
    sent_to_graduates = {m["to"].removeprefix("whatsapp:") for m in twilio_fake.accepted
                         if m["to"] != f"whatsapp:{ADMIN}"}
    assert sent_to_graduates == phones
    assert len(twilio_fake.accepted) == 3 + 2  # three graduates, the question and the answer
    assert audit_actions(db, "ani") == ["whatsapp.broadcast_prepare", "broadcast.announcement",
                                        "whatsapp.broadcast_confirm"]

    send(ADMIN, "YA")  # a second YA sends nothing again
    assert last_reply(db, ADMIN) == t("staff.nothing_pending")
    assert broadcast_count(db) == 1


def test_siaran_by_join_code_and_to_every_cohort(send, db, roster):
    send(STAFF, f"SIARAN las-b1: {BROADCAST_TEXT}")  # the join code, a colon after it
    assert last_reply(db, STAFF) == confirm_text("Las 1", 2)
    send(STAFF, f"SIARAN SEMUA {BROADCAST_TEXT}")  # replaces the waiting one
    assert replies(db, STAFF)[-2:] == [t("staff.cancelled"),
                                      confirm_text("Menjahit 1, Menjahit 2, Las 1", 7)]
    send(STAFF, "ya")
    assert last_reply(db, STAFF) == t("staff.broadcast_sent",
                                      cohorts="Menjahit 1, Menjahit 2, Las 1", count=7)
    assert len(announcements(db)) == 7 and broadcast_count(db) == 1


def test_batal_cancels_and_anything_else_cancels(send, db, roster):
    send(ADMIN, f"SIARAN Menjahit 2 {BROADCAST_TEXT}")
    send(ADMIN, "BATAL")
    assert last_reply(db, ADMIN) == t("staff.cancelled")
    assert staff_user(db, "ani").pending_action is None
    send(ADMIN, "YA")
    assert last_reply(db, ADMIN) == t("staff.nothing_pending")

    send(ADMIN, f"SIARAN Menjahit 2 {BROADCAST_TEXT}")
    send(ADMIN, "eh sebentar")
    assert replies(db, ADMIN)[-2:] == [t("staff.cancelled"), t("staff.help")]
    send(ADMIN, "ya")
    assert last_reply(db, ADMIN) == t("staff.nothing_pending")

    send(ADMIN, f"SIARAN Menjahit 2 {BROADCAST_TEXT}")
    send(ADMIN, "tidak")
    assert last_reply(db, ADMIN) == t("staff.cancelled")
    assert announcements(db) == [] and broadcast_count(db) == 0
    assert audit_actions(db, "ani").count("whatsapp.broadcast_cancel") == 3


@pytest.mark.parametrize("minutes_ago, sent", [(29, True), (31, False)])
def test_confirmation_expires_after_thirty_minutes(send, db, roster, minutes_ago, sent):
    send(ADMIN, f"SIARAN Menjahit 1 {BROADCAST_TEXT}")
    with db.session() as session:
        session.execute(update(StaffUser).where(StaffUser.name == "ani").values(
            pending_since=utcnow() - timedelta(minutes=minutes_ago)))
    send(ADMIN, "YA")
    if sent:
        assert last_reply(db, ADMIN) == t("staff.broadcast_sent", cohorts="Menjahit 1", count=3)
        assert len(announcements(db)) == 3
    else:
        assert last_reply(db, ADMIN) == t("staff.expired", minutes=30)
        assert announcements(db) == [] and broadcast_count(db) == 0
        assert audit_actions(db, "ani")[-1] == "whatsapp.broadcast_expired"
    assert staff_user(db, "ani").pending_action is None


def test_siaran_without_text_or_with_too_long_text(send, db, roster):
    send(ADMIN, "SIARAN Menjahit 1")
    assert last_reply(db, ADMIN) == t("staff.broadcast_usage")
    send(ADMIN, "SIARAN Menjahit 1 " + "x" * 1001)
    assert last_reply(db, ADMIN) == t("staff.broadcast_too_long", limit=1000, length=1001)
    assert staff_user(db, "ani").pending_action is None


def test_broadcast_to_a_cohort_deactivated_before_ya_is_not_sent(send, db, roster):
    from bot.models import Cohort

    send(ADMIN, f"SIARAN Menjahit 1 {BROADCAST_TEXT}")
    with db.session() as session:
        session.execute(update(Cohort).where(Cohort.id == roster["cohorts"][0])
                        .values(active=False))
    send(ADMIN, "YA")
    assert last_reply(db, ADMIN) == t("staff.broadcast_failed")
    assert announcements(db) == [] and broadcast_count(db) == 0


def test_ya_sent_twice_at_once_broadcasts_once(app, settings, db, roster):
    """Two YA messages (two MessageSids) reaching two web workers together: the staff row is
    locked, so one sends and the other finds nothing waiting."""
    import threading
    import urllib.parse
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from bot.inbox import handle_waiting
    from tests.live import serve

    def form(body: str) -> dict[str, str]:
        return {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{ADMIN}",
                "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0"}

    together = threading.Barrier(3)
    with serve(app) as base:
        def deliver(data: dict[str, str], barrier: threading.Barrier | None = None) -> int:
            signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
                settings.app.public_url + "/twilio/inbound", data)
            request = urllib.request.Request(
                base + "/twilio/inbound", data=urllib.parse.urlencode(data).encode(),
                headers={"X-Twilio-Signature": signature,
                         "Content-Type": "application/x-www-form-urlencoded"})
            if barrier is not None:
                barrier.wait(timeout=10)
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status

        assert deliver(form(f"SIARAN Menjahit 1 {BROADCAST_TEXT}")) == 200
        with ThreadPoolExecutor(max_workers=3) as pool:
            statuses = list(pool.map(lambda body: deliver(form(body), together),
                                     ["YA", "ya", "iya"]))
    assert statuses == [200, 200, 200]
    # A pass that met a message another pass held skipped it; the worker's next pass takes it.
    handle_waiting(db, settings)
    assert broadcast_count(db) == 1 and len(announcements(db)) == 3
    assert sorted(replies(db, ADMIN)[1:]) == sorted(
        [t("staff.broadcast_sent", cohorts="Menjahit 1", count=3)]
        + [t("staff.nothing_pending")] * 2)


# --- roles and scopes -----------------------------------------------------------------------

def test_viewer_cannot_siaran(send, db, roster):
    send(VIEWER, f"SIARAN Las 1 {BROADCAST_TEXT}")
    assert last_reply(db, VIEWER) == t("staff.not_allowed_broadcast")
    assert staff_user(db, "budi").pending_action is None
    send(VIEWER, "YA")
    assert last_reply(db, VIEWER) == t("staff.nothing_pending")
    assert announcements(db) == [] and broadcast_count(db) == 0
    assert audit_actions(db, "budi") == ["whatsapp.refused", "whatsapp.nothing_pending"]


def test_viewer_rekaps_own_institution_only(send, db, roster):
    send(VIEWER, "REKAP Menjahit 1")
    assert last_reply(db, VIEWER) == t("staff.not_allowed_cohort", cohort="Menjahit 1")
    send(VIEWER, "rekap MENJAHIT2")  # by join code: not theirs either
    assert last_reply(db, VIEWER) == t("staff.not_allowed_cohort", cohort="MENJAHIT2")
    send(VIEWER, "REKAP las 1")
    assert last_reply(db, VIEWER) == t("staff.summary_no_round", cohort="Las 1")
    send(VIEWER, "REKAP Jahit 9")
    assert last_reply(db, VIEWER) == t("staff.unknown_cohort", cohort="Jahit 9", known="Las 1")


def test_unknown_cohort_is_answered_with_the_known_ones(send, db, roster):
    send(ADMIN, f"SIARAN Jahit9 {BROADCAST_TEXT}")
    known = "Menjahit 1, Menjahit 2, Las 1"  # by institution, then name
    assert last_reply(db, ADMIN) == t("staff.unknown_cohort", cohort="Jahit9", known=known)
    send(ADMIN, "REKAP Menjahit 7")
    assert last_reply(db, ADMIN) == t("staff.unknown_cohort", cohort="Menjahit 7", known=known)
    assert staff_user(db, "ani").pending_action is None
    assert audit_actions(db, "ani") == ["whatsapp.refused", "whatsapp.refused"]


def test_a_name_two_institutions_share_asks_for_the_institution(send, db, roster):
    with db.session() as session:
        other = make_cohort(session, "Menjahit 1", institution="LPKS Bina", join_code="MJ1-B")
        make_graduates(session, other, count=1, first_phone=6281200000401)
    send(ADMIN, f"SIARAN Menjahit 1 {BROADCAST_TEXT}")
    assert last_reply(db, ADMIN) == t(
        "staff.ambiguous_cohort", cohort="Menjahit 1",
        options="LPKS A'nur/Menjahit 1, LPKS Bina/Menjahit 1")
    send(ADMIN, f"SIARAN LPKS Bina/Menjahit 1 {BROADCAST_TEXT}")
    assert last_reply(db, ADMIN) == confirm_text("LPKS Bina/Menjahit 1", 1)
    send(ADMIN, "YA")
    assert len(announcements(db)) == 1


def test_inactive_staff_user_is_not_staff(send, db, roster):
    with db.session() as session:
        session.execute(update(StaffUser).where(StaffUser.name == "ani").values(active=False))
    send(ADMIN, f"SIARAN Menjahit 1 {BROADCAST_TEXT}")
    assert replies(db, ADMIN) == []
    with db.session() as session:
        answer = session.scalar(select(Message.body).where(Message.phone == ADMIN,
                                                           Message.direction == OUTBOUND))
    assert answer == t("unknown_number")


def test_other_text_from_a_staff_number_gets_the_staff_help(send, db, roster):
    send(ADMIN, "halo")
    assert last_reply(db, ADMIN) == t("staff.help")
    send(ADMIN, "", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME1",
         MediaContentType0="image/jpeg")
    assert last_reply(db, ADMIN) == t("staff.help")


# --- REKAP ----------------------------------------------------------------------------------

@pytest.fixture
def prepared_round(db, roster) -> dict[str, object]:
    """Menjahit 2 with 9 graduates and three rounds. The latest cohort round: 2 employed (one
    needs help), 1 self-employed (an empty help note), 3 seeking (all need help), 1 studying
    (needs help), 2 silent: 7 answered of 9, 5 need help. An older round (everybody employed)
    and a newer one a graduate started alone with CEK are not summarised."""
    now = utcnow()
    with db.session() as session:
        cohort_id = roster["cohorts"][1]
        extra = make_graduates(session, session.get(Graduate, roster["Menjahit 2"][0]).cohort,
                               count=7, first_phone=6281200000211)
        for i, graduate in enumerate(extra):
            graduate.name = f"Alumni {i + 1}"
        grads = [session.get(Graduate, i) for i in roster["Menjahit 2"]] + extra
        old = CheckInRound(cohort_id=cohort_id, scheduled_for=now - timedelta(days=30))
        latest = CheckInRound(cohort_id=cohort_id, scheduled_for=now - timedelta(days=2))
        mine = CheckInRound(cohort_id=cohort_id, scheduled_for=now - timedelta(hours=1),
                            trigger="self")
        session.add_all([old, latest, mine])
        session.flush()
        for graduate in grads:  # the old round: everybody employed
            session.add(ProgressReport(round_id=old.id, graduate_id=graduate.id,
                                       status=REPORT_COMPLETED, employment_status="employed",
                                       responded_at=now - timedelta(days=29)))
        session.add(ProgressReport(round_id=mine.id, graduate_id=grads[0].id,
                                   status=REPORT_COMPLETED, employment_status="studying",
                                   responded_at=now))
        plan = [  # (status, needs help)
            ("employed", "modal usaha"), ("employed", None), ("self_employed", ""),
            ("seeking", "info lowongan"), ("seeking", "pelatihan lanjutan"),
            ("seeking", "ongkos transport"), ("studying", "biaya kuliah"),
            (None, None), (None, None),
        ]
        for i, (graduate, (status, help_note)) in enumerate(zip(grads, plan, strict=True)):
            answered = i < 7
            session.add(ProgressReport(
                round_id=latest.id, graduate_id=graduate.id,
                status=REPORT_COMPLETED if status else REPORT_OPEN,
                employment_status=status, needs_help=help_note,
                responded_at=now - timedelta(days=1) if answered else None))
        needing = sorted(g.name for g, (_, h) in zip(grads, plan, strict=True) if h)
        return {"round_id": latest.id, "scheduled_for": latest.scheduled_for,
                "needing": needing}


def test_rekap_numbers_match_a_prepared_round(send, db, settings, prepared_round):
    send(ADMIN, "REKAP menjahit 2")
    needing = prepared_round["needing"]
    assert len(needing) == 5
    date = prepared_round["scheduled_for"].astimezone(settings.tz).strftime("%d/%m/%Y")
    expected = t("staff.summary", cohort="Menjahit 2", date=date, graduates=9, answered=7,
                 employed=2, self_employed=1, seeking=3, studying=1, needs_help=5,
                 help_names=t("staff.summary_help_names", names=", ".join(needing)),
                 not_answered=2)
    assert last_reply(db, ADMIN) == expected
    assert "Butuh bantuan: 5 (" in expected and "Belum menjawab: 2" in expected
    with db.session() as session:
        entry = session.scalars(select(AuditLog).where(AuditLog.action == "whatsapp.summary")
                                ).one()
        assert entry.actor == "ani" and entry.detail["round_id"] == prepared_round["round_id"]
        assert entry.detail["answered"] == 7


def test_rekap_lists_five_names_and_how_many_more(send, db, prepared_round):
    with db.session() as session:
        session.execute(update(ProgressReport)
                        .where(ProgressReport.round_id == prepared_round["round_id"])
                        .values(needs_help="modal"))
        names = list(session.scalars(
            select(Graduate.name).join(ProgressReport,
                                       ProgressReport.graduate_id == Graduate.id)
            .where(ProgressReport.round_id == prepared_round["round_id"])
            .order_by(Graduate.name, Graduate.id)))
    send(ADMIN, "REKAP Menjahit 2")
    shown = t("staff.summary_more", names=", ".join(names[:5]), more=4)
    assert "Butuh bantuan: 9" + t("staff.summary_help_names", names=shown) in last_reply(
        db, ADMIN)


def test_rekap_usage(send, db, roster):
    send(ADMIN, "REKAP")
    assert last_reply(db, ADMIN) == t("staff.summary_usage")


# --- a number that is both a staff user's and a graduate's ----------------------------------

def test_staff_who_is_also_a_graduate(send, db, settings, roster):
    with db.session() as session:
        graduate = session.get(Graduate, roster["Menjahit 2"][0])
        graduate.phone = STAFF
        round_ = CheckInRound(cohort_id=graduate.cohort_id, scheduled_for=utcnow())
        session.add(round_)
        session.flush()
        begin_checkin(session, settings, graduate, round_)
        graduate_id = graduate.id

    def graduate_replies() -> list[str]:
        with db.session() as session:
            return list(session.scalars(select(Message.body).where(
                Message.graduate_id == graduate_id, Message.direction == OUTBOUND,
                Message.kind == "reply").order_by(Message.id)))

    send(STAFF, "REKAP Menjahit 2")  # staff
    assert last_reply(db, STAFF) == t(
        "staff.summary", cohort="Menjahit 2", date=f"{utcnow().astimezone(settings.tz):%d/%m/%Y}",
        graduates=1, answered=0, employed=0, self_employed=0, seeking=0, studying=0,
        needs_help=0, help_names="", not_answered=1)
    send(STAFF, f"SIARAN Menjahit 1 {BROADCAST_TEXT}")  # staff
    assert last_reply(db, STAFF) == confirm_text("Menjahit 1", 3)
    send(STAFF, "1")  # the graduate's check-in answer; the waiting broadcast is cancelled
    assert graduate_replies()[-1] == t("checkin.ask_employer")
    with db.session() as session:
        assert session.get(Conversation, graduate_id).state == ASK_EMPLOYER
        inbound = session.scalars(select(Message).where(Message.direction == INBOUND)
                                  .order_by(Message.id)).all()
    assert [m.graduate_id for m in inbound] == [None, None, graduate_id]
    assert last_reply(db, STAFF) == t("staff.cancelled")
    send(STAFF, "ya")  # nothing waits: this is the graduate's answer, not staff's
    assert graduate_replies()[-1] == t("checkin.again_employer")  # "ya" names no workplace
    assert last_reply(db, STAFF) == t("staff.cancelled")
    assert broadcast_count(db) == 0

    send(STAFF, f"SIARAN Menjahit 1 {BROADCAST_TEXT}")
    send(STAFF, "YA")  # while a broadcast waits, YA is the staff user's
    assert last_reply(db, STAFF) == t("staff.broadcast_sent", cohorts="Menjahit 1", count=3)
    assert broadcast_count(db) == 1


def test_staff_number_can_still_join_a_cohort(send, db, roster):
    send(ADMIN, "GABUNG MENJAHIT1")
    with db.session() as session:
        joined = session.scalar(select(Graduate).where(Graduate.phone == ADMIN))
        assert joined is not None and not joined.active
    assert replies(db, ADMIN) == []


# --- kabar staff add --phone ----------------------------------------------------------------

def test_staff_added_on_the_command_line_with_a_phone_can_broadcast(tmp_path, settings, db,
                                                                     send):
    import json

    from click.testing import CliRunner

    from bot.cli import main

    with db.session() as session:
        cohort = make_cohort(session, "Menjahit 1")
        make_graduates(session, cohort, count=2)
        session.add(Institution(name="LPKS Bina"))
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n",
                      encoding="utf-8")
    result = CliRunner(env={"KABAR_CONFIG": None, "KABAR_DATABASE_URL": None}).invoke(
        main, ["--config", str(config), "staff", "add", "dewi", "--role", "staff",
               "--phone", "0813-0000-0009", "--password-stdin"], input="rahasia123\n")
    assert result.exit_code == 0, result.output
    send("+6281300000009", f"SIARAN Menjahit 1 {BROADCAST_TEXT}")
    send("+6281300000009", "ya")
    assert last_reply(db, "+6281300000009") == t("staff.broadcast_sent", cohorts="Menjahit 1",
                                                 count=2)
