"""Roster upload in a real browser: choose the file, read the preview, confirm, see the result.

The preview lists the new LPKS, the rename and the move before anything changes; the database
changes only after the confirm button, and then exactly as previewed.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.models import Graduate, Institution
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.factories import make_cohort, make_graduates
from tests.live import serve
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
