"""The console speaks the reader's language everywhere and writes every date one way.

Every console page is read in Indonesian and in English (routes from the app's URL map, sample
data from ``tests.wide_pages``): no internal codes (message kinds, statuses), no ISO dates, no
other date format than dd/mm/yyyy.
"""

from __future__ import annotations

import html as markup
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.models import (
    INBOUND,
    MSG_HANDLED,
    MSG_READ,
    OUTBOUND,
    Broadcast,
    Graduate,
    JobOpening,
    Message,
    audit,
    utcnow,
)
from bot.staff.charts import Point, line_chart
from bot.staff.formats import parse_date
from tests.staff_helpers import PASSWORD, csrf_from
from tests.wide_pages import page_urls, wide_fixture  # noqa: F401

ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
# A date written any other way than dd/mm/yyyy: "4 Des 2026", "Dec 4, 2026", "4/12/2026".
OTHER_DATE = re.compile(r"\b\d{1,2} (?:Jan|Feb|Mar|Apr|Mei|May|Jun|Jul|Agu|Aug|Sep|Okt|Oct|"
                        r"Nov|Des|Dec)\w* \d{4}\b|\b\d/\d{1,2}/\d{4}\b|\b\d{1,2}/\d/\d{4}\b")
CODES = ("inbound", "optout_confirm", "job_opening", "staff_reply", "handled", "· reply")


def visible_text(html: str) -> str:
    """What a reader sees: the page without scripts, styles, tags and attribute values."""
    html = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", html, flags=re.S)  # charts: below
    return re.sub(r"\s+", " ", markup.unescape(re.sub(r"<[^>]+>", " ", html)))


def sign_in(client, name: str = "rina") -> None:
    page = client.get("/staff/login").get_data(as_text=True)
    response = client.post("/staff/login", data={"name": name, "password": PASSWORD,
                                                 "csrf_token": csrf_from(page)})
    assert response.status_code == 302


@pytest.fixture
def coded(db, wide):
    """An answered message (status ``handled``) and an opt-out confirmation (``optout_confirm``)
    of the wide graduate, and an audit entry full of codes."""
    with db.session() as session:
        graduate = session.get(Graduate, wide["graduate_id"])
        at = utcnow() - timedelta(minutes=30)
        session.add_all([
            Message(direction=INBOUND, graduate_id=graduate.id, cohort_id=graduate.cohort_id,
                    phone=graduate.phone, kind="inbound", body="BERHENTI", status=MSG_HANDLED,
                    created_at=at, updated_at=at),
            Message(direction=OUTBOUND, graduate_id=graduate.id, cohort_id=graduate.cohort_id,
                    phone=graduate.phone, kind="optout_confirm", body="Baik, Kak.",
                    status=MSG_READ, created_at=at, updated_at=at)])
        audit(session, "rina", "whatsapp.refused", phone="+6281299990009", command="broadcast",
              reason="unknown cohort", role="viewer")
        audit(session, "rina", "report.corrected", graduate_id=graduate.id,
              changes={"employment_status": {"old": "seeking", "new": "employed"}})
        audit(session, "rina", "job.edit", job_id=wide["job_id"], code="ABCDE",
              changes={"deadline": ["2026-12-04", "2026-12-31"]})
    return wide


@pytest.mark.parametrize("language", ["id", "en"])
def test_every_page_in_one_language_with_one_date_format(app, coded, language):
    client = app.test_client()
    sign_in(client)
    client.get(f"/staff/dashboard?lang={language}")
    problems = {}
    for url in page_urls(app, coded):
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 200, url
        text = visible_text(response.get_data(as_text=True))
        found = ISO_DATE.findall(text) + OTHER_DATE.findall(text)
        if language == "id":
            found += [code for code in CODES if code in text]
        if found:
            problems[url] = found
    assert problems == {}


def test_the_reply_log_names_kinds_and_statuses(app, coded):
    client = app.test_client()
    sign_in(client)
    text = visible_text(client.get("/staff/log?lang=id").get_data(as_text=True))
    assert "Masuk · pesan peserta" in text and "sudah ditangani" in text
    assert "Keluar · konfirmasi berhenti" in text
    text = visible_text(client.get("/staff/log?lang=en").get_data(as_text=True))
    assert "In · graduate's message" in text and "Out · opt-out confirmation" in text


def test_audit_details_in_words(app, coded):
    client = app.test_client()
    sign_in(client)
    text = visible_text(client.get("/staff/audit?lang=id").get_data(as_text=True))
    assert "perintah SIARAN alasan paket tidak dikenal peran pemantau" in text
    assert "status kerja Mencari kerja → Sudah bekerja" in text
    assert "batas waktu 04/12/2026 → 31/12/2026" in text
    text = visible_text(client.get("/staff/audit?lang=en").get_data(as_text=True))
    assert "reason unknown cohort role viewer" in text
    assert "deadline 04/12/2026 → 31/12/2026" in text


def test_the_header_names_the_role_in_the_readers_language(app, db, coded):
    from bot.staffusers import add_staff

    with db.session() as session:
        add_staff(session, name="sari", role="viewer", password=PASSWORD,
                  institution="LPKS A'nur")
    client = app.test_client()
    sign_in(client, "sari")
    page = client.get("/staff/dashboard?lang=id").get_data(as_text=True)
    assert "sari · pemantau" in page and "· viewer" not in page
    assert '<html lang="id">' in page
    page = client.get("/staff/dashboard?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in page and "sari · viewer" in page


def test_progress_carries_the_servers_time_in_the_office_zone(app, db, coded):
    with db.session() as session:
        job = session.get(JobOpening, coded["job_id"])
        broadcast = session.scalar(select(Broadcast).where(Broadcast.job_id == job.id))
        assert broadcast is not None
    client = app.test_client()
    sign_in(client)
    before = datetime.now(app.extensions["kabar.settings"].tz)
    data = client.get(f"/staff/jobs/{coded['job_id']}/progress").get_json()
    shown = datetime.strptime(data["updated"], "%H:%M:%S").time()
    after = datetime.now(app.extensions["kabar.settings"].tz)
    assert before.time().replace(microsecond=0) <= shown <= after.time() or (
        before.date() != after.date())  # (a run across midnight)


def test_the_rating_chart_keeps_its_labels_inside_and_writes_decimal_commas():
    points = [Point(label=f"{m} 2026", value=v, title=m)
              for m, v in (("Sep", 3.25), ("Okt", 4.0), ("Nov", 3.5))]
    svg = str(line_chart(points, title="Nilai", y_min=1, y_max=5, width=480, decimal=","))
    labels = re.findall(r'<text x="([\d.]+)" text-anchor="(\w+)" y="[\d.]+" font-size="12" '
                        r'fill="#5f6f6a">([^<]+)</text>', svg)
    assert [(anchor, text) for _, anchor, text in labels] == [
        ("start", "Sep 2026"), ("middle", "Okt 2026"), ("end", "Nov 2026")]
    assert all(0 <= float(x) <= 480 for x, _, _ in labels)
    assert ">3,5</text>" in svg and ">3,2</text>" in svg and "3.5" not in svg


def test_dates_are_read_day_first_or_iso():
    assert parse_date("04/12/2026") == date(2026, 12, 4)
    assert parse_date("4-12-2026") == date(2026, 12, 4)
    assert parse_date("2026-12-04") == date(2026, 12, 4)
    for wrong in ("12/31/2026", "31/12/26", "besok", ""):
        with pytest.raises(ValueError, match="dd/mm/yyyy|calendar"):
            parse_date(wrong)


def test_the_reply_log_filters_by_a_day_first_date(app, coded):
    client = app.test_client()
    sign_in(client)
    today = datetime.now(UTC).astimezone(app.extensions["kabar.settings"].tz).date()
    page = client.get(f"/staff/log?q=BERHENTI&from={today:%d/%m/%Y}").get_data(as_text=True)
    assert "BERHENTI" in visible_text(page) and 'role="alert"' not in page
    page = client.get("/staff/log?from=31/02/2026").get_data(as_text=True)
    assert "31/02/2026" in page and "HH/BB/TTTT" in page


def test_the_console_and_the_simulator_have_a_favicon(settings, db):
    from bot import create_app

    client = create_app(settings, db, demo=True).test_client()  # the demo's simulator
    for page in ("/staff/login", "/simulator/"):
        html = client.get(page).get_data(as_text=True)
        found = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)">', html)
        assert found, page
        icon = client.get(found.group(1))
        assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
        assert b"<svg" in icon.get_data()
