"""The reply log in a real browser: search, export what is shown, and a viewer's walls.

An admin searches the sample data's log and downloads the CSV the page offers; its rows are
exactly the matching messages. A viewer of LPKS A'nur sees nothing of LPKS Nisfisano, and typing
the other institution's addresses by hand gives 404 (403 for pages viewers may not use at all).
"""

from __future__ import annotations

import csv
import random

import pytest
from sqlalchemy import select

from bot.demo import seed_sample_data
from bot.models import Cohort, Graduate, Institution, Message
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.live import serve
from tests.staff_helpers import PASSWORD

pytestmark = needs_chromium
TERM = "kerja"


@pytest.fixture
def sample(db, settings):
    """The demo's two LPKS with their finished rounds, an admin and a viewer of A'nur."""
    with db.session() as session:
        seed_sample_data(session, settings, random.Random(7))
        add_staff(session, name="rina", role="admin", password=PASSWORD)
        add_staff(session, name="wati", role="viewer", password=PASSWORD,
                  institution="LPKS A'nur")
        other = session.scalars(select(Cohort).join(Institution).where(
            Institution.name == "LPKS Nisfisano", Cohort.name == "Bordir 1")).one()
        stranger = session.scalars(select(Graduate).where(Graduate.cohort_id == other.id)
                                   .order_by(Graduate.id)).first()
        # The search leaves out check-in questions and reminders (the catalog's texts).
        matching = {sid for sid, body, kind in session.execute(
            select(Message.twilio_sid, Message.body, Message.kind))
            if TERM in body.lower() and kind not in ("checkin", "reminder")}
        anur = set(session.scalars(select(Message.twilio_sid).join(
            Cohort, Message.cohort_id == Cohort.id).join(Institution).where(
            Institution.name == "LPKS A'nur")))
        return {"cohort": other.id, "institution": other.institution_id,
                "graduate": stranger.id, "graduate_name": stranger.name,
                "matching": matching, "anur": anur}


def download_rows(page, link_name: str, tmp_path) -> list[dict[str, str]]:
    with page.expect_download() as download:
        page.get_by_role("link", name=link_name).click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_search_the_log_and_export_what_is_shown(app, sample, tmp_path):
    assert len(sample["matching"]) > 50  # more than one page: the export has them all
    with serve(app) as base_url, chromium_page(base_url) as page:
        sign_in(page, "rina", PASSWORD)
        page.goto("/staff/log")
        page.fill("input[name=q]", TERM)
        page.get_by_role("button", name="Cari").click()
        page.wait_for_url(f"**/staff/log?*q={TERM}*")
        bodies = page.locator("table.replylog .body").all_inner_texts()
        assert len(bodies) == 50 and all(TERM in body.lower() for body in bodies)
        assert page.locator("a[rel=next]").count() == 1

        rows = download_rows(page, "Ekspor CSV", tmp_path)
        # The console's export speaks the console's language (Indonesian here).
        assert {row["SID Twilio"] for row in rows} == sample["matching"]
        assert len(rows) == len(sample["matching"])
        assert all(TERM in row["Isi pesan"].lower() for row in rows)


def test_a_viewer_cannot_see_open_or_export_the_other_institution(app, sample, tmp_path):
    routes = {rule.endpoint for rule in app.url_map.iter_rules()}
    with serve(app) as base_url, chromium_page(base_url) as page:
        sign_in(page, "wati", PASSWORD)
        page.goto("/staff/log")
        html = page.content()
        assert "Nisfisano" not in html and "Bordir" not in html
        assert page.locator("table.replylog tr.msg").count() == 50

        page.goto("/staff/roster")
        assert "Nisfisano" not in page.content()
        page.fill("input[name=q]", sample["graduate_name"])
        page.get_by_role("button", name="Tampilkan").click()
        page.wait_for_load_state()
        assert page.locator("table.roster").count() == 0

        page.goto("/staff/log")
        rows = download_rows(page, "Ekspor CSV", tmp_path)
        assert rows and {row["SID Twilio"] for row in rows} <= sample["anur"]

        cohort, institution, graduate = (sample["cohort"], sample["institution"],
                                         sample["graduate"])
        hidden = [f"/staff/log?cohort_id={cohort}", f"/staff/log?institution_id={institution}",
                  f"/staff/roster?cohort_id={cohort}"]
        if "staff.graduate" in routes:
            hidden.append(f"/staff/graduates/{graduate}")
        if "staff.timeline" in routes:
            hidden.append(f"/staff/cohorts/{cohort}")
        for url in hidden:
            assert page.goto(url).status == 404, url
        for url in (f"/staff/log/export.csv?cohort_id={cohort}",
                    f"/staff/log/export.xlsx?institution_id={institution}"):
            assert page.request.get(url).status == 404, url
        # Pages a viewer may not use at all are refused whatever the object.
        for url in (f"/staff/roster/{graduate}/edit", "/staff/users", "/staff/audit"):
            assert page.goto(url).status == 403, url
