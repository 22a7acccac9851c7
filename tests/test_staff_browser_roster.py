"""Roster upload in a real browser: choose the file, read the preview, confirm, see the result.

The preview lists the new LPKS, the rename and the move before anything changes; the database
changes only after the confirm button, and then exactly as previewed. A large file's page
shows the rows written while they are written, then the summary, without a reload by hand.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.models import Graduate, Institution
from bot.roster_plan import COMMIT_EVERY
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.factories import make_cohort, make_graduates
from tests.live import serve
from tests.roster_helpers import big_roster, import_held
from tests.staff_helpers import PASSWORD

pytestmark = needs_chromium

ROSTER = """lpks;paket;nama;no_wa;keterampilan
LPKS A'nur;Menjahit 3;Siti Aminah Putri;+6281200000001;menjahit
LPKS A'nur;Menjahit 4;Dewi Lestari;+6281200000003;menjahit
LPKS Baru;Las 1;Joko Susilo;0813-2222-5555;las
"""


@pytest.fixture
def roster_data(db):
    with db.session() as s:
        cohort = make_cohort(s, name="Menjahit 3", institution="LPKS A'nur")
        siti, budi, dewi = make_graduates(s, cohort, count=3)
        siti.name, budi.name, dewi.name = "Siti Aminah", "Budi Santoso", "Dewi Lestari"
        add_staff(s, name="bayu", role="staff", password=PASSWORD)


def names(db) -> dict[str, tuple[str, str]]:
    with db.session() as s:
        return {g.phone: (g.name, g.cohort.name) for g in s.scalars(select(Graduate))}


def test_upload_preview_then_confirm(app, db, roster_data, tmp_path):
    path = tmp_path / "daftar peserta.csv"
    path.write_text(ROSTER, encoding="utf-8")
    before = names(db)
    with serve(app) as base_url, chromium_page(base_url) as page:
        sign_in(page, "bayu", PASSWORD)
        page.goto("/staff/roster")
        page.set_input_files("input[name=roster]", str(path))
        page.get_by_role("button", name="Unggah dan periksa").click()
        page.wait_for_url("**/staff/roster/upload")

        assert page.get_by_role("heading", level=1).inner_text() == \
            "Periksa daftar sebelum diimpor"
        assert page.locator("[data-count=new_institutions]").inner_text() == "1"
        assert page.locator("[data-count=renamed]").inner_text() == "1"
        assert page.locator("[data-count=moved]").inner_text() == "1"
        assert page.locator("[data-count=created]").inner_text() == "1"
        assert page.locator("ul.plan-new-institutions li").all_inner_texts() == ["LPKS Baru"]
        assert page.locator("table.plan-renamed tbody td").all_inner_texts() == [
            "2", "+6281200000001", "Siti Aminah", "Siti Aminah Putri"]
        assert page.locator("table.plan-moved tbody td").all_inner_texts()[-2:] == [
            "LPKS A'nur/Menjahit 3", "LPKS A'nur/Menjahit 4"]
        assert names(db) == before  # only a preview so far

        page.get_by_role("button", name="Impor perubahan ini").click()
        page.wait_for_url("**/staff/roster/import/*")
        assert page.get_by_role("heading", level=1).inner_text() == "Hasil impor daftar peserta"
        assert page.locator("[data-count=created]").inner_text() == "1"
        assert page.locator("[data-count=renamed]").inner_text() == "1"

    after = names(db)
    assert after["+6281200000001"] == ("Siti Aminah Putri", "Menjahit 3")
    assert after["+6281200000003"] == ("Dewi Lestari", "Menjahit 4")
    assert after["+6281322225555"] == ("Joko Susilo", "Las 1")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Institution)) == 2


def test_a_large_import_shows_its_progress_then_the_summary(app, db, roster_data, tmp_path):
    from playwright.sync_api import expect

    rows = 20 * COMMIT_EVERY
    path = tmp_path / "besar.csv"
    path.write_text(big_roster(rows), encoding="utf-8")
    with serve(app) as base_url, chromium_page(base_url) as page:
        sign_in(page, "bayu", PASSWORD)
        page.goto("/staff/roster")
        page.set_input_files("input[name=roster]", str(path))
        page.get_by_role("button", name="Unggah dan periksa").click()
        page.wait_for_url("**/staff/roster/upload")
        assert page.locator("[data-count=created]").inner_text() == str(rows)
        page.get_by_role("button", name="Impor perubahan ini").click()
        page.wait_for_url("**/staff/roster/import/*")
        token = page.url.rsplit("/", 1)[1]

        # Held mid-way: the page shows the rows written so far, of all.
        with import_held(db, token) as held:
            first = held.rows_done
            page.goto(page.url)  # the page as it is now (it may have loaded before)
            assert page.get_by_role("heading", level=1).inner_text() == \
                "Mengimpor daftar peserta"
            assert page.locator("[data-done]").inner_text() == str(first)
            assert page.locator("[data-total]").inner_text() == str(rows)
            assert 0 < first < rows
            page.evaluate("window.sameLoad = true")
        # Held again further on: the page follows without being reloaded.
        with import_held(db, token, after=first) as held:
            later = held.rows_done
            assert first < later < rows
            expect(page.locator("[data-done]")).to_have_text(str(later), timeout=30_000)
            assert page.evaluate("document.querySelector('progress').value") == later
            assert page.evaluate("window.sameLoad === true")
        # Then the summary follows by itself.
        page.wait_for_selector("[data-count=created]", timeout=60_000)
        assert page.get_by_role("heading", level=1).inner_text() == "Hasil impor daftar peserta"
        assert page.locator("[data-count=created]").inner_text() == str(rows)
        assert page.locator("[data-count=rejected]").inner_text() == "0"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Graduate)) == 3 + rows
