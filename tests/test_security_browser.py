"""Every console page under the Content Security Policy in Chromium: no violation, and the
scripts moved out of the pages still work (progress bars, counters, the simulator)."""

from __future__ import annotations

import random
import re

import pytest
from sqlalchemy import select

from bot import create_app
from bot.demo import seed_sample_data
from bot.models import Cohort, Graduate, JobOpening
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.live import serve
from tests.staff_helpers import PASSWORD

pytestmark = [needs_chromium, pytest.mark.browser]


@pytest.fixture
def demo(db, settings):
    with db.session() as session:
        seed_sample_data(session, settings, random.Random(20240614))
        add_staff(session, name="rina", role="admin", password=PASSWORD)
        cohort = session.scalar(select(Cohort).where(Cohort.name == "Menjahit 1"))
        return {"cohort": cohort.id,
                "graduate": session.scalar(select(Graduate.id).where(
                    Graduate.cohort_id == cohort.id).order_by(Graduate.id)),
                "job": session.scalar(select(JobOpening.id).order_by(JobOpening.id)),
                "user": 1}


def console_pages(app, ids) -> list[str]:
    """Every GET page of the console that is HTML, with ids of the sample data."""
    pages = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or not rule.rule.startswith("/staff"):
            continue
        if "static" in rule.endpoint or any(part in rule.rule for part in (
                "export", "progress", "poll", "download", "logout", "lang", "data.json",
                "office-logo", "/import/")):
            continue
        path = rule.rule
        for arg in rule.arguments:
            value = (ids["cohort"] if "cohort" in arg else ids["job"] if "job" in arg
                     else ids["user"] if "user" in arg else ids["graduate"])
            path = re.sub(r"<(?:[a-z]+:)?" + arg + ">", str(value), path)
        if "<" not in path:
            pages.append(path)
    return sorted(set(pages))


def test_every_console_page_works_under_the_csp(app, db, demo):
    violations: list[str] = []
    visited = []
    with serve(app) as base, chromium_page(base) as page:
        page.on("console", lambda msg: violations.append(f"{page.url}: {msg.text}")
                if "Content Security Policy" in msg.text else None)
        sign_in(page, "rina", PASSWORD)
        for path in console_pages(app, demo):
            response = page.goto(path)
            if response.headers.get("content-type", "").startswith("text/html"):
                visited.append((path, response.status))
        # The job page's progress bars get their widths from the script (no style attributes).
        page.goto(f"/staff/jobs/{demo['job']}")
        widths = page.eval_on_selector_all(".progress-box .seg",
                                           "els => els.map(e => e.style.width)")
        assert widths and any(w not in ("", "0%") for w in widths)
        # The announcement counter counts as one types.
        page.goto("/staff/announcements")
        page.fill("textarea[data-counter]", "Halo semua")
        assert page.locator("[data-count]").first.text_content() == "10"
    assert len(visited) >= 12, visited
    assert all(status < 500 for _, status in visited), visited
    assert violations == []


def test_the_demo_simulator_works_under_the_csp(settings, db, demo):
    app = create_app(settings, db, demo=True)
    violations: list[str] = []
    with serve(app) as base, chromium_page(base) as page:
        page.on("console", lambda msg: violations.append(msg.text)
                if "Content Security Policy" in msg.text else None)
        page.goto("/simulator/")
        page.click(f".grad[data-id='{demo['graduate']}']")
        page.fill("#body", "MENU")
        page.press("#body", "Enter")
        page.wait_for_selector(".bubble.out >> text=LOWONGAN", timeout=10_000)
    assert violations == []
