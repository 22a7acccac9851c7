"""Replies Kabar did not understand, in Chromium: staff open the page from the menu, give the
most frequent group its meaning with one click, and see it leave the list for the taught list;
the open reports it left empty are re-read. Graduates' text is shown as text, never run.

``KABAR_SCREENSHOTS=<directory>`` also saves the page as ``learning.png`` there."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import create_app
from bot.learning import learned_meanings, record_unplaced
from bot.models import REPORT_OPEN, CheckInRound, ProgressReport
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.factories import make_cohort, make_graduates
from tests.live import serve
from tests.staff_helpers import PASSWORD

pytestmark = [needs_chromium, pytest.mark.browser]
NOW = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def unplaced(db):
    """Three graduates wrote "blm dpt kerjaan" to the status question; one wrote a script."""
    with db.session() as session:
        cohort = make_cohort(session, "Menjahit 3")
        graduates = make_graduates(session, cohort, 3)
        round_ = CheckInRound(cohort_id=cohort.id, scheduled_for=NOW - timedelta(days=1))
        session.add(round_)
        session.flush()
        reports = []
        for i, graduate in enumerate(graduates):
            report = ProgressReport(round_id=round_.id, graduate_id=graduate.id,
                                    status=REPORT_OPEN, raw_answers={})
            session.add(report)
            session.flush()
            reports.append(report.id)
            record_unplaced(session, graduate_id=graduate.id, report_id=report.id,
                            message_id=None, question="status",
                            text=["Blm dpt kerjaan", "blm dpt kerjaaan!!", "BLM DPT KERJAAN"][i],
                            now=NOW + timedelta(minutes=i))
        record_unplaced(session, graduate_id=graduates[0].id, report_id=reports[0],
                        message_id=None, question="rating", text=SCRIPT, now=NOW)
        add_staff(session, name="rina", role="staff", password=PASSWORD)
        return reports


def test_staff_teach_a_group_in_one_click_and_it_leaves_the_list(settings, db, unplaced):
    from playwright.sync_api import expect

    app = create_app(settings, db)
    dialogs: list[str] = []
    with serve(app) as base_url, chromium_page(base_url) as page:
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, "rina", PASSWORD)
        page.click("header nav >> text=Belum dipahami")
        expect(page.locator("h1")).to_have_text("Balasan yang belum dipahami")

        group = page.locator("tr.group[data-phrase='blm dpt kerjan']")
        expect(group).to_contain_text("3 lulusan")
        expect(group).to_contain_text("BLM DPT KERJAAN")
        expect(page.locator("tr.group").first).to_have_attribute("data-phrase", "blm dpt kerjan")
        expect(page.locator("tr.group[data-question='rating'] q.raw")).to_have_text(SCRIPT)
        expect(group.locator("input[name=reread]")).to_be_checked()
        if os.environ.get("KABAR_SCREENSHOTS"):
            page.set_viewport_size({"width": 1280, "height": 700})
            page.screenshot(path=str(Path(os.environ["KABAR_SCREENSHOTS"]) / "learning.png"))

        group.locator("button", has_text="Mencari kerja").click()

        expect(page.locator(".flash").first).to_contain_text("3 balasan selesai")
        expect(page.locator("tr.group[data-phrase='blm dpt kerjan']")).to_have_count(0)
        expect(page.locator("tr.group")).to_have_count(1)
        taught = page.locator("table.taught tr[data-phrase='blm dpt kerjan']")
        expect(taught).to_contain_text("Mencari kerja")
        expect(taught).to_contain_text("rina")
    assert dialogs == []

    with db.read_session() as session:
        assert learned_meanings(session)["status"] == {"blm dpt kerjan": "seeking"}
        statuses = session.scalars(select(ProgressReport.employment_status)
                                   .order_by(ProgressReport.id)).all()
    assert statuses == ["seeking", "seeking", "seeking"]
