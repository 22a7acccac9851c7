"""The tracer report and the outcome export in Chromium: the page, its print on A4, a download.

With ``KABAR_SCREENSHOTS=<directory>`` set, the test also saves ``tracer.png`` (1280×900) there,
as in ``docs/screenshots/``::

    KABAR_SCREENSHOTS=docs/screenshots pytest tests/test_staff_browser_reports.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.browser import chromium_page, needs_chromium, sign_in
from tests.live import serve
from tests.staff_helpers import PASSWORD, signed_in_client
from tests.test_reports import _today, tracer_data  # noqa: F401 (fixtures)

pytestmark = [needs_chromium, pytest.mark.browser]
A4_LANDSCAPE_PT = (841.89, 595.28)  # 297 × 210 mm in PDF points
PRINTABLE_PX = round((297 - 24) / 25.4 * 96)  # A4 landscape less the 12 mm margins, at 96 dpi


def test_tracer_report_prints_on_a4_and_the_export_downloads(app, db, tracer_data,  # noqa: F811
                                                            tmp_path):
    signed_in_client(app, db)  # creates the admin "rina"
    with serve(app) as base, chromium_page(base) as page:
        sign_in(page, "rina", PASSWORD)
        page.click("header nav >> text=Laporan tracer")
        page.wait_for_url("**/staff/tracer")
        page.fill("input[name=from]", "01/01/2025")
        page.fill("input[name=to]", "31/12/2025")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**/staff/tracer?*")
        row = page.locator(f'section[data-months="3"] tr[data-cohort="{tracer_data["jahit"]}"]')
        assert row.locator("td.answered").inner_text().startswith("3 (75%)")
        assert row.locator("td.employed").inner_text() == "1 (33%)"
        assert row.locator("td.rating").inner_text() == "3,7"
        assert page.locator('section[data-months="6"] tr.cohort .not-due').count() == 1

        # Printed: no navigation or filters, and every table within the A4 printable width.
        page.emulate_media(media="print")
        page.set_viewport_size({"width": PRINTABLE_PX, "height": 800})
        assert not page.locator("header.top").is_visible()
        assert not page.locator("form.filters").is_visible()
        widest = page.evaluate(
            "Math.max(...[...document.querySelectorAll('.tracer-table')]"
            ".map(t => t.getBoundingClientRect().right))")
        assert widest <= PRINTABLE_PX, widest
        assert page.evaluate("document.documentElement.scrollWidth") <= PRINTABLE_PX
        pdf = page.pdf(prefer_css_page_size=True)
        assert pdf.startswith(b"%PDF")
        boxes = {tuple(round(float(v), 2) for v in m)
                 for m in re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)}
        assert boxes and all(w == pytest.approx(A4_LANDSCAPE_PT[0], abs=1)
                             and h == pytest.approx(A4_LANDSCAPE_PT[1], abs=1)
                             for w, h in boxes), boxes  # Chromium rounds to whole pixels
        page.emulate_media(media="screen")
        page.set_viewport_size({"width": 1280, "height": 900})
        folder = os.environ.get("KABAR_SCREENSHOTS")
        if folder:
            page.screenshot(path=str(Path(folder, "tracer.png")))

        # The outcome export, downloaded as a person would.
        page.click("header nav >> text=Ekspor hasil")
        page.select_option("select[name=cohort_id]", str(tracer_data["las"]))
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**/staff/outcomes?*")
        assert page.locator(".report-actions .count").inner_text() == "1 baris sesuai filter."
        with page.expect_download() as download:
            page.click("#download-xlsx")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
    assert saved.name.startswith("kabar-hasil-") and saved.suffix == ".xlsx"
    rows = list(load_workbook(saved, read_only=True).active.iter_rows(values_only=True))
    header = rows[0]
    assert len(rows) == 2
    values = dict(zip(header, rows[1], strict=False))
    assert values["Paket"] == "Las 1" and values["Status kerja"] == "Bekerja"
    assert values["Memakai keterampilan pelatihan"] == "Ya"
