"""Staff sign-in: sessions, CSRF, a wait after repeated failures, safe redirects, roles."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from bot.models import AuditLog
from bot.staffusers import add_staff


@pytest.fixture
def staff_users(db):
    with db.session() as session:
        add_staff(session, name="rina", role="admin", password="rahasia-123")
    return {"rina": "rahasia-123"}


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def login(client, name, password, next_url=None):
    page = client.get("/staff/login")
    url = "/staff/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"name": name, "password": password,
                                  "csrf_token": csrf_from(page.get_data(as_text=True))})


def test_console_pages_need_a_signed_in_user(client):
    response = client.get("/staff/dashboard")
    assert response.status_code == 302 and "/staff/login" in response.headers["Location"]


def test_sign_in_opens_the_dashboard_and_is_audited(client, db, staff_users):
    response = login(client, "rina", "rahasia-123")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/staff/dashboard")
    assert client.get("/staff/dashboard").status_code == 200
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog)
                        .where(AuditLog.action == "login", AuditLog.actor == "rina")) == 1


def test_a_form_without_its_csrf_token_is_refused(client, staff_users):
    response = client.post("/staff/login", data={"name": "rina", "password": "rahasia-123"})
    assert response.status_code == 400
    assert client.get("/staff/dashboard").status_code == 302  # still not signed in


def test_five_failures_make_the_address_wait_even_with_the_right_password(client, staff_users,
                                                                          monkeypatch):
    from bot.models import utcnow
    from bot.staff import auth

    moment = utcnow()
    monkeypatch.setattr(auth, "utcnow", lambda: moment)  # the wait does not run out meanwhile
    for _ in range(5):
        assert login(client, "rina", "salah").status_code == 401
    response = login(client, "rina", "rahasia-123")
    assert response.status_code == 429
    assert "Terlalu banyak percobaan" in response.get_data(as_text=True)
    assert client.get("/staff/dashboard").status_code == 302


def test_next_never_leads_off_the_console(client, staff_users):
    response = login(client, "rina", "rahasia-123", next_url="https://evil.example/")
    assert response.headers["Location"].endswith("/staff/dashboard")


def test_sign_out_needs_a_post_with_csrf(client, staff_users):
    login(client, "rina", "rahasia-123")
    page = client.get("/staff/dashboard").get_data(as_text=True)
    assert client.get("/staff/logout").status_code == 405
    client.post("/staff/logout", data={"csrf_token": csrf_from(page)})
    assert client.get("/staff/dashboard").status_code == 302


def test_english_is_one_click_away(client, staff_users):
    assert "Sign in to Kabar" in client.get("/staff/login?lang=en").get_data(as_text=True)
    assert "Sign in to Kabar" in client.get("/staff/login").get_data(as_text=True)
