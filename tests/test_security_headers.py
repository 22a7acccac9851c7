"""Security headers on every console page, download and error, and no caching of anything
with personal data: every route of the URL map is requested."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot import create_app
from bot.models import Graduate
from tests.factories import make_cohort, make_graduates
from tests.staff_helpers import signed_in_client


@pytest.fixture
def data(db):
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1")
        make_graduates(session, cohort, count=2)
        return {"cohort": cohort.id,
                "graduate": session.scalar(select(Graduate.id).order_by(Graduate.id))}


def url_for_rule(rule, data) -> str:
    values = {}
    for arg in rule.arguments:
        if arg.endswith("cohort_id"):
            values[arg] = data["cohort"]
        elif arg.endswith("_id") or arg == "id":
            values[arg] = data["graduate"]
        elif arg == "filename":
            values[arg] = "staff.css"
        elif arg == "fmt":
            values[arg] = "csv"
        else:
            values[arg] = "1"
    path = rule.rule
    for name, value in values.items():
        path = re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?" + name + ">", str(value), path)
    return path


def check_headers(response, url: str, private: bool) -> None:
    headers = response.headers
    csp = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, url
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, url
    assert headers.get("X-Frame-Options") == "DENY", url
    assert headers.get("X-Content-Type-Options") == "nosniff", url
    assert headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", url
    if private:
        assert headers.get("Cache-Control") == "no-store", url


def test_every_route_answers_with_the_security_headers(app, db, data):
    client = signed_in_client(app, db, "rina", role="admin")
    seen = 0
    for rule in app.url_map.iter_rules():
        url = url_for_rule(rule, data)
        private = url.startswith(("/staff", "/simulator")) and "/static/" not in url
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            assert response.status_code < 500, (method, url, response.status_code)
            check_headers(response, f"{method} {url}", private)
            seen += 1
    assert seen > 50


def test_downloads_are_not_cached(app, db, data):
    client = signed_in_client(app, db, "rina", role="admin")
    for url in ("/staff/log/export.csv", "/staff/log/export.xlsx"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "no-store"
        assert "attachment" in response.headers.get("Content-Disposition", "")


def test_signed_out_pages_and_errors_carry_them_too(client):
    for url in ("/staff/login", "/staff/dashboard", "/staff/nothing-here", "/healthz"):
        response = client.get(url)
        check_headers(response, url, url.startswith("/staff"))


def test_static_files_may_be_cached_but_not_sniffed(client):
    response = client.get("/staff/static/staff.css")
    assert response.status_code == 200
    assert response.headers.get("Cache-Control") != "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("public_url", "hsts"), [("https://kabar.example.go.id", True),
                                                  ("http://kabar.test", False)])
def test_hsts_only_when_the_public_address_is_https(settings, db, public_url, hsts):
    app = create_app(settings.with_overrides(app={"public_url": public_url}), db)
    response = app.test_client().get("/staff/login")
    assert ("Strict-Transport-Security" in response.headers) is hsts
    if hsts:
        assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
