"""Console sessions end when they should: a copied cookie is dead after sign-out, a password
change or reset, and deactivation (reactivation revives none), and after the idle timeout."""

from __future__ import annotations

import time

import pytest
from flask import session as cookie
from sqlalchemy import select

from bot import create_app
from bot.models import StaffUser
from bot.staff.auth import SEEN_KEY
from bot.staffusers import add_staff
from tests.staff_helpers import PASSWORD, csrf_from, signed_in_client


def copy_of(app, client):
    """A second browser holding a copy of ``client``'s session cookie (as a thief would)."""
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value)
    return thief


def opens_console(client) -> bool:
    return client.get("/staff/dashboard").status_code == 200


def post_form(client, page: str, url: str, **data):
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def user_id(db, name: str) -> int:
    with db.session() as session:
        return session.scalar(select(StaffUser.id).where(StaffUser.name == name))


def test_a_copied_cookie_is_dead_after_sign_out(app, db):
    client = signed_in_client(app, db, "rina")
    thief = copy_of(app, client)
    assert opens_console(thief)  # the copy works while the session lives
    assert post_form(client, "/staff/dashboard", "/staff/logout").status_code == 302
    assert not opens_console(thief)
    assert not opens_console(client)


def test_a_copied_cookie_is_dead_after_an_admin_resets_the_password(app, db):
    admin = signed_in_client(app, db, "bu-rina", role="admin")
    staff = signed_in_client(app, db, "pak-budi", role="staff")
    thief = copy_of(app, staff)
    uid = user_id(db, "pak-budi")
    answer = post_form(admin, f"/staff/users/{uid}", f"/staff/users/{uid}/password",
                       password="baru-sekali-123")
    assert answer.status_code == 302
    assert not opens_console(thief)
    assert not opens_console(staff)
    assert opens_console(admin)  # the admin's own session is untouched


def test_deactivation_ends_sessions_and_reactivation_revives_none(app, db):
    admin = signed_in_client(app, db, "bu-rina", role="admin")
    staff = signed_in_client(app, db, "pak-budi", role="staff")
    thief = copy_of(app, staff)
    uid = user_id(db, "pak-budi")
    page = f"/staff/users/{uid}"
    assert post_form(admin, page, f"/staff/users/{uid}/active", active="0").status_code == 302
    assert not opens_console(thief)
    assert post_form(admin, page, f"/staff/users/{uid}/active", active="1").status_code == 302
    assert not opens_console(thief)
    assert not opens_console(staff)


def test_changing_my_password_ends_my_other_sessions_but_not_this_one(app, db):
    client = signed_in_client(app, db, "rina")
    other = copy_of(app, client)
    page = client.get("/staff/password")
    assert page.status_code == 200
    answer = client.post("/staff/password", data={
        "current": PASSWORD, "new": "lebih-panjang-456", "repeat": "lebih-panjang-456",
        "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert answer.status_code == 303
    assert opens_console(client)
    assert not opens_console(other)
    fresh = app.test_client()
    form = fresh.get("/staff/login").get_data(as_text=True)
    assert fresh.post("/staff/login", data={"name": "rina", "password": "lebih-panjang-456",
                                            "csrf_token": csrf_from(form)}).status_code == 302


@pytest.mark.parametrize(("fields", "message"), [
    ({"current": "salah-salah", "new": "lebih-panjang-456", "repeat": "lebih-panjang-456"},
     "Kata sandi sekarang tidak benar"),
    ({"current": PASSWORD, "new": "pendek", "repeat": "pendek"}, "minimal 8 karakter"),
    ({"current": PASSWORD, "new": "lebih-panjang-456", "repeat": "lain-lagi-7890"},
     "tidak sama"),
])
def test_a_wrong_password_change_says_what_to_fix_and_changes_nothing(app, db, fields,
                                                                      message):
    client = signed_in_client(app, db, "rina")
    other = copy_of(app, client)
    page = client.get("/staff/password").get_data(as_text=True)
    answer = client.post("/staff/password", data={**fields, "csrf_token": csrf_from(page)})
    assert answer.status_code == 422
    assert message in answer.get_data(as_text=True)
    assert opens_console(other)


def test_an_idle_session_ends_after_the_configured_minutes(settings, db):
    app = create_app(settings.with_overrides(app={"session_idle_minutes": 30}), db)
    client = signed_in_client(app, db, "rina")
    assert opens_console(client)
    with client.session_transaction() as stored:
        stored[SEEN_KEY] = time.time() - 29 * 60
    assert opens_console(client)  # a request inside the window keeps it alive
    with client.session_transaction() as stored:
        assert stored[SEEN_KEY] > time.time() - 60  # ... and restarts the idle clock
        stored[SEEN_KEY] = time.time() - 31 * 60
    assert not opens_console(client)


def test_a_user_added_again_from_the_command_line_is_signed_out(app, db):
    client = signed_in_client(app, db, "rina")
    with db.session() as session:  # `kabar staff add` for an existing name sets a password
        add_staff(session, name="rina", role="admin", password="dari-cli-12345")
    assert not opens_console(client)


def test_the_cookie_is_not_persistent_and_is_http_only(app, db):
    client = signed_in_client(app, db, "rina")
    stored = client.get_cookie("session")
    assert stored.http_only and stored.expires is None
    with app.test_request_context():
        assert cookie.permanent is False
