"""Every console page on a phone (390×844 in Chromium): nothing scrolls sideways.

The pages are taken from the app's URL map (every GET route under ``/staff`` that answers with
a whole HTML page, plus the simulator), filled with ids from a seeded database whose data makes
pages wide: long institution, cohort, graduate and employer names, long messages with unbroken
words, many columns.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.demo import seed_sample_data
from bot.models import (
    INBOUND,
    MSG_RECEIVED,
    Cohort,
    Graduate,
    Institution,
    Interest,
    JobOpening,
    Message,
    audit,
    utcnow,
)
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.live import serve
from tests.staff_helpers import PASSWORD

pytestmark = [needs_chromium, pytest.mark.browser]

LONG_INSTITUTION = "LPKS Yayasan Pendidikan dan Pelatihan Keterampilan Nusantara Sejahtera Abadi"
LONG_COHORT = "Menjahit Busana Pengantin Tradisional Angkatan Kedua Belas Tahun 2026"
LONG_NAME = "Raden Ajeng Siti Nurhaliza Kusumawardhani Puspitasari Ningrum Wulandari"
LONG_WORD = "https://contoh.example.org/lowongan/" + "penjahitbusanapengantin" * 4
LONG_MESSAGE = ("sudah kerja kak di konveksi besar dekat pasar, gajinya lumayan tapi jauh "
                "sekali dari rumah, tiap hari naik angkot dua kali " + LONG_WORD)
# A page that answers with something else (a CSV, a poll fragment, JSON) is not a page to lay out.
# The outermost elements that stick out on the right (named for the failure message).
CULPRITS = """() => Array.from(document.querySelectorAll('body *')).filter(el => {
  const r = el.getBoundingClientRect();
  return r.right > window.innerWidth + 1 && el.parentElement.getBoundingClientRect().right
    <= window.innerWidth + 1;
}).slice(0, 3).map(el => el.tagName.toLowerCase()
  + (typeof el.className === 'string' && el.className
     ? '.' + el.className.trim().split(/\\s+/).join('.') : ''))"""
NOT_PAGES = {"staff.static", "static", "staff.timeline_poll", "staff.job_progress",
             "staff.announcements_progress", "simulator.messages", "healthz"}


@pytest.fixture
def wide(db, settings):
    """The demo's data plus a cohort, graduate, job, interest and audit entry that are wide."""
    with db.session() as session:
        seed_sample_data(session, settings, random.Random(20240614))
        admin = add_staff(session, name="rina", role="admin", password=PASSWORD)
        institution = Institution(name=LONG_INSTITUTION)
        session.add(institution)
        session.flush()
        cohort = Cohort(institution_id=institution.id, name=LONG_COHORT, skill="menjahit",
                        join_code="PENGANTIN12", timezone="Asia/Jakarta",
                        checkin_schedule="0 9 1 * *")
        session.add(cohort)
        session.flush()
        graduate = Graduate(cohort_id=cohort.id, name=LONG_NAME, phone="+6281299990001",
                            skill="menjahit busana pengantin dan kebaya modern")
        session.add(graduate)
        session.flush()
        at = utcnow() - timedelta(hours=1)
        session.add(Message(direction=INBOUND, graduate_id=graduate.id, cohort_id=cohort.id,
                            phone=graduate.phone, kind="inbound", body=LONG_MESSAGE,
                            status=MSG_RECEIVED, created_at=at, updated_at=at))
        job = session.scalar(select(JobOpening).order_by(JobOpening.id))
        job.title = "Penjahit Busana Pengantin dan Kebaya Modern untuk Butik Ternama " + LONG_WORD
        job.employer = "PT Konveksi Nusantara Sejahtera Abadi Jaya Makmur Sentosa Sekali"
        job.deadline = date.today() + timedelta(days=30)
        session.add(Interest(job_id=job.id, graduate_id=graduate.id, created_at=at))
        audit(session, "rina", "graduate.edit", graduate_id=graduate.id, name=LONG_NAME,
              changes={"name": ["Siti", LONG_NAME], "skill": ["menjahit", LONG_WORD]})
        session.flush()
        return {"cohort_id": cohort.id, "graduate_id": graduate.id, "job_id": job.id,
                "user_id": admin[0].id}


def page_urls(app, ids: dict[str, int]) -> list[str]:
    """Every whole-page GET route of the console and the simulator, with sample ids."""
    urls = []
    with app.test_request_context():
        from flask import url_for
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint in NOT_PAGES:
                continue
            if "fmt" in rule.arguments:  # exports (CSV/XLSX files)
                continue
            missing = set(rule.arguments) - set(ids)
            assert not missing, f"{rule.rule}: no sample value for {sorted(missing)}"
            urls.append(url_for(rule.endpoint, **{k: ids[k] for k in rule.arguments}))
    return sorted(set(urls))


@pytest.mark.parametrize("language", ["id", "en"])
def test_no_console_page_scrolls_sideways_on_a_phone(app, wide, language):
    urls = page_urls(app, wide)
    assert {"/staff/dashboard", "/staff/log", "/staff/roster", f"/staff/jobs/{wide['job_id']}",
            "/simulator/"} <= set(urls)
    too_wide = {}
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, "rina", PASSWORD)
        page.goto(f"/staff/dashboard?lang={language}")
        for url in urls:
            response = page.goto(url)
            assert response.status == 200, f"{url}: {response.status}"
            assert "text/html" in response.headers["content-type"], url
            widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if widths[0] > widths[1]:
                too_wide[url] = (widths[0] - widths[1], page.evaluate(CULPRITS))
    assert too_wide == {}, f"pages wider than the phone (px too wide): {too_wide}"


def test_the_navigation_takes_one_line_on_a_phone(app, wide):
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, "rina", PASSWORD)
        header = page.locator("header.top").bounding_box()
        assert header["height"] <= 64  # one line: brand, menu button, language
        assert not page.locator("header.top nav a").first.is_visible()
        page.click("header.top .menu-button")
        page.locator("header.top nav a", has_text="Log balasan").wait_for()
        page.click("header.top nav a >> text=Log balasan")
        page.wait_for_url("**/staff/log")
        assert page.locator("table.replylog").is_visible()


@pytest.mark.parametrize(("language", "send", "kabar"), [
    ("id", "Kirim", "Kabar · pengumuman"), ("en", "Send", "Kabar · announcement")])
def test_the_simulator_on_a_phone(app, db, wide, language, send, kabar):
    """The list fills the screen; a graduate's chat then does, in the chosen language."""
    from bot.broadcasts import create_announcement
    from bot.dispatcher import Dispatcher

    with db.session() as session:
        create_announcement(session, app.extensions["kabar.settings"], [LONG_COHORT],
                            "Besok pelatihan lanjutan " + LONG_WORD, actor="rina")
    Dispatcher(app.extensions["kabar.settings"], db).run_once()
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"/simulator/?lang={language}")
        page.fill("#search", "nurhaliza")
        page.click(f".grad[data-id='{wide['graduate_id']}']")
        page.locator(".bubble.out .who", has_text=kabar).wait_for(timeout=10_000)
        chat = page.locator("#chat").bounding_box()
        assert chat["width"] >= 380  # the whole screen, not a sliver beside the list
        assert not page.locator("#roster").is_visible()
        assert page.locator("#composer button[type=submit]").text_content() == send
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.click("#back")
        assert page.locator("#roster").is_visible()
