"""A job opening in a real browser, end to end: staff create it, choose a cohort, check the
preview and confirm; the dispatcher sends it through the Twilio transport to the loopback fake;
the fake posts signed ``delivered`` callbacks to the live server and the page's progress
reaches "delivered" for every recipient without a reload; graduates answer ``MINAT <code>``
through the signed webhook; the shortlist shows them and downloads as CSV and XLSX.

Set ``KABAR_SCREENSHOTS`` to a folder (such as docs/screenshots) to keep the page's picture.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from openpyxl import load_workbook
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from bot import create_app
from bot.dispatcher import Dispatcher
from bot.models import AuditLog, CheckInRound, Message, ProgressReport
from bot.staffusers import add_staff
from tests.browser import chromium_page, needs_chromium, sign_in
from tests.conftest import TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates
from tests.live import serve, wait_for
from tests.staff_helpers import PASSWORD

pytestmark = needs_chromium
TEMPLATE_SID = "HX" + "b" * 32
# (name, latest status, employer, rating) of the chosen cohort's graduates.
GRADUATES = [("Siti Aminah", "seeking", None, 4), ("Dewi Lestari", "employed", "Konveksi Maju", 5),
             ("Rina Wulandari", "self_employed", "Jahit permak di rumah", 3),
             ("Nur Hidayah", None, None, None)]


def signed_inbound(base_url: str, public_url: str, params: dict[str, str]) -> int:
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        public_url + "/twilio/inbound", params)
    response = requests.post(base_url + "/twilio/inbound", data=urlencode(params),
                             headers={"X-Twilio-Signature": signature,
                                      "Content-Type": "application/x-www-form-urlencoded"},
                             timeout=10)
    return response.status_code


@pytest.fixture
def roster(db):
    """Menjahit 3 (4 graduates with their latest check-in answers) and Bordir 1 (2)."""
    with db.session() as session:
        cohort = make_cohort(session, "Menjahit 3", skill="menjahit")
        other = make_cohort(session, "Bordir 1", "LPKS Nisfisano", skill="bordir")
        graduates = make_graduates(session, cohort, 4, first_phone=6281234500001)
        make_graduates(session, other, 2, first_phone=6281234500101)
        round_ = CheckInRound(cohort_id=cohort.id,
                              scheduled_for=datetime(2026, 5, 1, 2, 0, tzinfo=UTC))
        session.add(round_)
        session.flush()
        for graduate, (name, status, employer, rating) in zip(graduates, GRADUATES,
                                                              strict=True):
            graduate.name = name
            if status:
                session.add(ProgressReport(round_id=round_.id, graduate_id=graduate.id,
                                           status="completed", employment_status=status,
                                           employer=employer, skill_rating=rating,
                                           raw_answers={}))
        add_staff(session, name="rina", role="staff", password=PASSWORD)
        return [(g.id, g.name, g.phone) for g in graduates]


def test_a_job_sent_from_the_console_is_followed_live_and_its_shortlist_exported(
        twilio_settings, db, twilio_fake, roster, tmp_path):
    from playwright.sync_api import expect

    settings = twilio_settings.with_overrides(twilio={"templates": {"job_opening": TEMPLATE_SID}})
    app = create_app(settings, db)
    stop = threading.Event()
    worker = threading.Thread(target=Dispatcher(settings, db).run_forever, args=(stop,),
                              daemon=True)
    worker.start()
    try:
        with serve(app) as base_url, chromium_page(base_url) as page:
            page.set_viewport_size({"width": 1280, "height": 900})
            sign_in(page, "rina", PASSWORD)

            # Create the job opening.
            page.click("header nav >> text=Lowongan")
            page.click("text=Lowongan baru")
            page.fill("input[name=title]", "Operator jahit")
            page.fill("input[name=employer]", "PT Sepatu KITB")
            page.fill("input[name=location]", "Batang, Jawa Tengah")
            page.fill("input[name=skill]", "menjahit")
            page.fill("input[name=deadline]", "2099-06-30")
            page.click("text=Simpan, lalu pilih penerima")
            page.wait_for_url(re.compile(r"/staff/jobs/\d+/send$"))
            job_id = int(re.search(r"/jobs/(\d+)/send", page.url).group(1))

            # Choose the cohort, preview exactly who receives what.
            page.check("label:has-text('Menjahit 3') input[name=cohort]")
            page.click("text=Lihat penerima")
            rows = page.locator("table.recipients tbody tr")
            expect(rows).to_have_count(4)
            for _, name, phone in roster:
                expect(page.locator("table.recipients")).to_contain_text(name)
                expect(page.locator("table.recipients")).to_contain_text(phone)
            expect(page.locator("table.recipients")).to_contain_text("Mencari kerja")
            bubble = page.locator(".preview .wa-preview .bubble").first.inner_text()
            code = re.search(r"MINAT ([A-Z2-9]{5})", bubble).group(1)
            assert "Lowongan: Operator jahit" in bubble and "PT Sepatu KITB" in bubble

            # Confirm: one message per recipient, through the dispatcher to the fake Twilio.
            page.click("text=Ya, kirim ke 4 lulusan")
            page.wait_for_url(re.compile(rf"/staff/jobs/{job_id}#send-\d+$"))
            page.evaluate("window.kabarNotReloaded = true")
            assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 4, timeout=20)
            sent = twilio_fake.accepted
            assert {m["to"] for m in sent} == {f"whatsapp:{p}" for _, _, p in roster}
            assert {m["content_sid"] for m in sent} == {TEMPLATE_SID}
            assert {m["content_variables"]["5"] for m in sent} == {code}

            def sids_stored() -> bool:
                with db.session() as session:
                    return all(m.twilio_sid for m in session.scalars(
                        select(Message).where(Message.kind == "job_opening")))
            wait_for(sids_stored, timeout=20, message="SIDs stored on the job messages")

            # Twilio reports delivery: signed callbacks to the live server's /twilio/status.
            answers = twilio_fake.post_status_callbacks("delivered", base_url=base_url)
            assert [status for _, status in answers] == [200] * 4
            delivered = page.locator("[data-broadcast] [data-count=delivered]")
            expect(delivered).to_have_text("4", timeout=15_000)
            expect(page.locator("[data-broadcast] [data-count=queued]")).to_have_text("0")
            expect(page.locator("[data-broadcast] [data-state-label]")).to_have_text("Selesai")
            assert page.evaluate("window.kabarNotReloaded") is True  # updated in place

            # Two graduates answer MINAT <code> on WhatsApp.
            for index, (_, _, phone) in enumerate(roster[:2]):
                assert signed_inbound(base_url, settings.app.public_url, {
                    "MessageSid": f"SM{index:02d}" + "c" * 30,
                    "AccountSid": settings.twilio.account_sid, "From": f"whatsapp:{phone}",
                    "To": settings.twilio.whatsapp_from, "Body": f"minat {code.lower()}",
                    "NumMedia": "0"}) == 200
            notice = page.locator("[data-new-interests]")
            expect(notice).to_be_visible(timeout=15_000)
            notice.locator("a").click()
            shortlist = page.locator("table.shortlist tbody tr")
            expect(shortlist).to_have_count(2)
            expect(shortlist.nth(0)).to_contain_text("Siti Aminah")
            expect(shortlist.nth(0)).to_contain_text("Mencari kerja")
            expect(shortlist.nth(1)).to_contain_text("Dewi Lestari")
            expect(shortlist.nth(1)).to_contain_text("Konveksi Maju")

            # The employer's copy, as staff download it.
            with page.expect_download() as download:
                page.click("text=Unduh CSV")
            csv_path = tmp_path / download.value.suggested_filename
            download.value.save_as(csv_path)
            with page.expect_download() as download:
                page.click("text=Unduh Excel")
            xlsx_path = tmp_path / download.value.suggested_filename
            download.value.save_as(xlsx_path)

            page.locator("#sends").scroll_into_view_if_needed()
            page.evaluate("window.scrollTo(0, 0)")
            shot = tmp_path / "job.png"
            page.screenshot(path=str(shot))
            keep = os.environ.get("KABAR_SCREENSHOTS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, Path(keep) / "job.png")
    finally:
        stop.set()
        worker.join(timeout=10)

    assert csv_path.name.startswith(f"peminat-{code}-") and csv_path.suffix == ".csv"
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["Nama"], r["No. WhatsApp"], r["Paket"], r["Status kerja terakhir"],
             r["Nilai keterampilan (1-5)"], r["Kode lowongan"]) for r in rows] == [
        ("Siti Aminah", roster[0][2], "Menjahit 3", "Mencari kerja", "4", code),
        ("Dewi Lestari", roster[1][2], "Menjahit 3", "Sudah bekerja", "5", code)]
    sheet = load_workbook(xlsx_path).active
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == [
        "Siti Aminah", "Dewi Lestari"]
    with db.session() as session:
        actions = [a.action for a in session.scalars(select(AuditLog).order_by(AuditLog.id))]
        statuses = set(session.scalars(select(Message.status).where(
            Message.kind == "job_opening")))
    assert actions.count("broadcast.job") == 1 and actions.count("export") == 2
    assert statuses == {"delivered"}
