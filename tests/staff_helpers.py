"""Signed-in Flask test clients for console tests."""

from __future__ import annotations

import re

from bot.staffusers import add_staff

PASSWORD = "rahasia-123"


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def signed_in_client(app, db, name: str = "rina", role: str = "admin",
                     institution: str | None = None):
    """A test client signed in as a new staff user with this role (and institution)."""
    with db.session() as session:
        add_staff(session, name=name, role=role, password=PASSWORD, institution=institution)
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    response = client.post("/staff/login", data={"name": name, "password": PASSWORD,
                                                 "csrf_token": csrf_from(page)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
