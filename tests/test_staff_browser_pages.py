"""The dashboard and a cohort's chat in Chromium, on the demo's sample data.

With ``KABAR_SCREENSHOTS=<directory>`` set, ``test_screenshots`` also saves ``dashboard.png``
and ``timeline.png`` (1280×900) there, as in ``docs/screenshots/``::

    KABAR_SCREENSHOTS=docs/screenshots pytest tests/test_staff_browser_pages.py
"""

from __future__ import annotations

import os
import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.demo import seed_sample_data
from bot.models import INBOUND, MSG_RECEIVED, Cohort, Graduate, Message, utcnow
from bot.staff import timeline
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.live import serve
from tests.staff_helpers import PASSWORD

pytestmark = [needs_chromium, pytest.mark.browser]
SCRIPT = "<script>alert(1)</script>"


def inbound(session, graduate: Graduate, body: str, at) -> Message:
    message = Message(direction=INBOUND, graduate_id=graduate.id, cohort_id=graduate.cohort_id,
                      phone=graduate.phone, kind="inbound", body=body, status=MSG_RECEIVED,
                      created_at=at, updated_at=at)
    session.add(message)
    session.flush()
    return message


@pytest.fixture
def demo(db, settings):
    """The demo's sample data and a staff user."""
    with db.session() as session:
        seed_sample_data(session, settings, random.Random(20240614))
        add_staff(session, name="rina", role="admin", password=PASSWORD)
        cohort = session.scalar(select(Cohort).where(Cohort.name == "Menjahit 1"))
        graduate = session.scalar(select(Graduate).where(Graduate.cohort_id == cohort.id)
                                  .order_by(Graduate.id))
        return {"cohort": cohort.id, "graduate": graduate.id}


def test_dashboard_charts_and_a_cohort_chat(app, db, demo, monkeypatch):
    monkeypatch.setattr(timeline, "POLL_SECONDS", 1)
    with db.session() as session:  # a graduate of Menjahit 1 sends a <script>
        inbound(session, session.get(Graduate, demo["graduate"]), SCRIPT,
                utcnow() - timedelta(minutes=5))
    dialogs: list[str] = []
    with serve(app) as base, chromium_page(base) as page:
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, "rina", PASSWORD)
        page.goto("/staff/dashboard")
        charts = page.locator("svg.chart")
        assert charts.count() >= 4
        assert charts.first.locator("title").first.text_content() == (
            "Tingkat jawaban per putaran")
        assert charts.first.locator("rect").count() >= 1  # a bar per round day
        assert page.locator("[data-figure=graduates] .value").text_content() == "160"

        page.click("header nav >> text=Percakapan paket")
        page.click("text=Menjahit 1")
        page.wait_for_selector(".chat .bubble")
        assert page.locator(".chat .bubble.in").count() > 5
        assert page.locator(".chat .bubble.out").count() > 5
        shown = page.locator(".chat .bubble.in .text", has_text="alert(1)")
        assert shown.count() == 1 and shown.text_content() == SCRIPT  # text, not markup
        # A reply arriving while the page is open shows up at the bottom.
        with db.session() as session:
            graduate = session.get(Graduate, demo["graduate"])
            inbound(session, graduate, "sudah kerja di KITB kak", utcnow())
        page.locator(".chat .bubble.in .text", has_text="sudah kerja di KITB").wait_for(
            timeout=10_000)
        assert page.locator(".chat .bubble .text").last.text_content() == (
            "sudah kerja di KITB kak")
    assert dialogs == []


@pytest.mark.skipif(not os.environ.get("KABAR_SCREENSHOTS"),
                    reason="set KABAR_SCREENSHOTS=<directory> to save screenshots")
def test_screenshots(app, db, demo):
    folder = Path(os.environ["KABAR_SCREENSHOTS"])
    folder.mkdir(parents=True, exist_ok=True)
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": 1280, "height": 900})
        sign_in(page, "rina", PASSWORD)
        page.goto("/staff/dashboard")
        page.screenshot(path=str(folder / "dashboard.png"))
        page.goto(f"/staff/cohorts/{demo['cohort']}")
        page.wait_for_selector(".chat .bubble")
        page.screenshot(path=str(folder / "timeline.png"))
