"""Joining by GABUNG: random codes shown only in the console, requests wait for staff approval,
a wrong code is answered like a right one, attempts are limited per number, and the migration
gives existing cohorts random codes."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from bot.catalog import text
from bot.db import Database
from bot.joincodes import ALPHABET, LENGTH
from bot.migrate import alembic_config
from bot.models import INBOUND, MSG_SUPPRESSED, OUTBOUND, AuditLog, Cohort, Graduate, Message
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import csrf_from, signed_in_client

CODE = "K7PQ2MXR"
STRANGER = "+6285700000042"
OTHER = "+6285700000043"


def t(key: str, **values) -> str:
    return text("id", key, **values)


@pytest.fixture
def cohort_id(db) -> int:
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1", join_code=CODE)
        make_graduates(session, cohort, count=2)
        return cohort.id


@pytest.fixture
def send(client, settings):
    def send(body: str, phone: str = STRANGER) -> None:
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{phone}",
                "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0",
                "ProfileName": "Orang Asing"}
        signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
            settings.app.public_url + "/twilio/inbound", form)
        answer = client.post("/twilio/inbound", data=form,
                             headers={"X-Twilio-Signature": signature})
        assert answer.status_code == 200
    return send


def replies(db, phone: str) -> list[str]:
    """What the number is sent (messages the outbox suppresses never leave)."""
    with db.session() as session:
        return list(session.scalars(select(Message.body).where(
            Message.phone == phone, Message.direction == OUTBOUND,
            Message.status != MSG_SUPPRESSED).order_by(Message.id)))


def graduate_of(db, phone: str) -> Graduate | None:
    with db.session() as session:
        graduate = session.scalar(select(Graduate).where(Graduate.phone == phone))
        if graduate is not None:
            session.expunge(graduate)
        return graduate


def test_a_wrong_code_gets_the_same_answers_as_a_right_one(send, db, cohort_id):
    send(f"GABUNG {CODE}", phone=STRANGER)
    send("Dewi Lestari", phone=STRANGER)
    send("GABUNG MENJAHIT1", phone=OTHER)  # the old, guessable kind of code
    send("Dewi Lestari", phone=OTHER)
    right, wrong = replies(db, STRANGER), replies(db, OTHER)
    assert right == wrong == [t("join.ask_name_request"), t("join.pending", name="Dewi Lestari")]
    assert "Menjahit" not in " ".join(right)


def test_a_self_join_waits_for_approval_and_receives_nothing_before(send, db, cohort_id,
                                                                      settings):
    send(f"GABUNG {CODE}")
    send("Dewi Lestari")
    joined = graduate_of(db, STRANGER)
    assert (joined.cohort_id, joined.active, joined.join_status) == (cohort_id, False, "pending")
    # A job opening for the cohort does not reach a request waiting for approval.
    from bot.broadcasts import JobDraft, broadcast_job, create_job
    with db.session() as session:
        job = create_job(session, settings, JobDraft(
            title="Operator jahit", employer="PT Sepatu", location="Batang", skill=None,
            deadline=None), actor="test")
        broadcast_job(session, settings, job, cohort_ids=[cohort_id], actor="test")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Message).where(
            Message.phone == STRANGER, Message.kind == "job_opening")) == 0
    send("LOWONGAN")
    assert len(replies(db, STRANGER)) == 2  # nothing new for an unapproved number


def approve_page(client):
    page = client.get("/staff/joins")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_staff_approve_a_request_and_the_graduate_is_welcomed(app, send, db, cohort_id):
    send(f"GABUNG {CODE}")
    send("Dewi Lestari")
    staff = signed_in_client(app, db, "rina", role="staff")
    html = approve_page(staff)
    assert "Dewi Lestari" in html and STRANGER in html and "Menjahit 1" in html
    joined = graduate_of(db, STRANGER)
    answer = staff.post(f"/staff/joins/{joined.id}/approve", data={"csrf_token": csrf_from(html)})
    assert answer.status_code == 303
    approved = graduate_of(db, STRANGER)
    assert (approved.active, approved.join_status) == (True, None)
    assert replies(db, STRANGER)[-1] == t("join.welcome", name="Dewi Lestari", cohort="Menjahit 1")
    with db.session() as session:
        filed = session.scalars(select(Message.graduate_id).where(
            Message.phone == STRANGER, Message.direction == INBOUND)).all()
        assert set(filed) == {approved.id}  # the joining messages are filed under them
        assert session.scalar(select(AuditLog.action).order_by(AuditLog.id.desc())) == (
            "join.approve")
    assert f'data-request="{joined.id}"' not in approve_page(staff)
    # Approving twice is no second welcome.
    again = staff.post(f"/staff/joins/{joined.id}/approve", data={"csrf_token": csrf_from(html)})
    assert again.status_code == 404


def test_a_rejected_number_stays_out(app, send, db, cohort_id):
    send(f"GABUNG {CODE}")
    send("Penipu")
    staff = signed_in_client(app, db, "rina", role="staff")
    html = approve_page(staff)
    joined = graduate_of(db, STRANGER)
    staff.post(f"/staff/joins/{joined.id}/reject", data={"csrf_token": csrf_from(html)})
    rejected = graduate_of(db, STRANGER)
    assert (rejected.active, rejected.join_status) == (False, "rejected")
    before = len(replies(db, STRANGER))
    send(f"GABUNG {CODE}")
    send("halo")
    assert len(replies(db, STRANGER)) == before


def test_a_request_with_a_wrong_code_can_only_be_rejected(app, send, db, cohort_id):
    send("GABUNG MENJAHIT1")
    send("Dewi Lestari")
    staff = signed_in_client(app, db, "rina", role="staff")
    html = approve_page(staff)
    assert "Dewi Lestari" in html and "bukan kode paket" in html
    joined = graduate_of(db, STRANGER)
    assert joined.cohort_id is None
    staff.post(f"/staff/joins/{joined.id}/approve", data={"csrf_token": csrf_from(html)})
    assert graduate_of(db, STRANGER).active is False


def test_gabung_is_limited_per_number(send, db, cohort_id, settings):
    limit = settings.joining.max_attempts_per_day
    for n in range(limit + 3):
        send(f"GABUNG TEBAK{n:03d}")
    assert len(replies(db, STRANGER)) == limit
    send("GABUNG TEBAK", phone=OTHER)  # another number is not affected
    assert len(replies(db, OTHER)) == 1


def test_staff_see_and_renew_join_codes_in_the_console_only(app, db, cohort_id):
    staff = signed_in_client(app, db, "rina", role="staff")
    html = approve_page(staff)
    assert CODE in html
    answer = staff.post(f"/staff/cohorts/{cohort_id}/join-code",
                        data={"csrf_token": csrf_from(html)})
    assert answer.status_code == 303
    with db.session() as session:
        code = session.get(Cohort, cohort_id).join_code
    assert code != CODE and len(code) == LENGTH and set(code) <= set(ALPHABET)
    assert code in approve_page(staff)
    viewer = signed_in_client(app, db, "lihat", role="viewer", institution="LPKS A'nur")
    assert viewer.get("/staff/joins").status_code == 403
    assert viewer.post(f"/staff/cohorts/{cohort_id}/join-code",
                       data={"csrf_token": csrf_from(html)}).status_code in (400, 403)


def test_a_renewed_code_replaces_the_old_one(app, send, db, cohort_id, settings):
    staff = signed_in_client(app, db, "rina", role="staff")
    staff.post(f"/staff/cohorts/{cohort_id}/join-code",
               data={"csrf_token": csrf_from(approve_page(staff))})
    send(f"GABUNG {CODE}")
    send("Dewi")
    assert graduate_of(db, STRANGER).cohort_id is None  # the old code is no paket's now


def test_accepting_at_once_when_configured(settings, db, cohort_id):
    from bot import create_app
    from bot.inbox import handle_waiting

    accepting = settings.with_overrides(joining={"require_approval": False})
    app = create_app(accepting, db)
    client = app.test_client()
    for body in (f"GABUNG {CODE}", "Dewi Lestari"):
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": f"whatsapp:{STRANGER}",
                "To": "whatsapp:+14155238886", "Body": body, "NumMedia": "0"}
        signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
            settings.app.public_url + "/twilio/inbound", form)
        client.post("/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})
        handle_waiting(db, accepting)
    assert graduate_of(db, STRANGER).active is True
    assert replies(db, STRANGER)[-1] == t("join.welcome", name="Dewi Lestari",
                                          cohort="Menjahit 1")


def test_the_migration_gives_existing_cohorts_random_codes(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0008")
    database = Database(url)
    try:
        with database.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO institutions (name, created_at) "
                                 "VALUES ('LPKS A', '2026-01-01 00:00:00')"))
            for name in ("Menjahit 1", "Menjahit 2"):
                conn.execute(sa.text(
                    "INSERT INTO cohorts (institution_id, name, join_code, timezone, active, "
                    "created_at, updated_at) VALUES (1, :name, :code, 'Asia/Jakarta', 1, "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"),
                    {"name": name, "code": name.upper().replace(" ", "")})
        command.upgrade(config, "0013")
        with database.engine.connect() as conn:
            codes = conn.execute(sa.text("SELECT join_code FROM cohorts")).scalars().all()
    finally:
        database.dispose()
    assert len(set(codes)) == 2
    assert all(len(c) == LENGTH and set(c) <= set(ALPHABET) for c in codes)
