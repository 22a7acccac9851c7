"""Sample data that makes console pages wide, and the list of every console page.

``wide`` adds to the demo's data a cohort, graduate, job, interest and audit entry with long
names, a long message with an unbroken word; ``page_urls`` lists every whole-page GET route of
the console and the simulator (from the app's URL map) with those sample ids.
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
    RosterUpload,
    audit,
    utcnow,
)
from bot.staffusers import add_staff
from tests.staff_helpers import PASSWORD

LONG_INSTITUTION = "LPKS Yayasan Pendidikan dan Pelatihan Keterampilan Nusantara Sejahtera Abadi"
LONG_COHORT = "Menjahit Busana Pengantin Tradisional Angkatan Kedua Belas Tahun 2026"
LONG_NAME = "Raden Ajeng Siti Nurhaliza Kusumawardhani Puspitasari Ningrum Wulandari"
WIDE_UPLOAD = "wide-roster-upload"
LONG_WORD = "https://contoh.example.org/lowongan/" + "penjahitbusanapengantin" * 4
LONG_MESSAGE = ("sudah kerja kak di konveksi besar dekat pasar, gajinya lumayan tapi jauh "
                "sekali dari rumah, tiap hari naik angkot dua kali " + LONG_WORD)
# A page that answers with something else (a CSV, a poll fragment, JSON) is not a page to lay out.
NOT_PAGES = {"staff.static", "static", "staff.timeline_poll", "staff.job_progress",
             "staff.announcements_progress", "simulator.messages", "healthz",
             "staff.roster_import_progress",
             # a download and a picture (only where an office logo is configured)
             "staff.graduate_data_copy", "staff.office_logo", "staff.tracer_export"}


@pytest.fixture(name="wide")
def wide_fixture(db, settings):
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
        # A roster import, finished, with a long file name and a long rejected row.
        session.add(RosterUpload(
            token=WIDE_UPLOAD, file_name=f"daftar {LONG_INSTITUTION} {LONG_COHORT}.csv",
            content=b"", plan_digest="0" * 64, staff_user_id=admin[0].id, applied_at=at,
            rows_total=2, rows_done=2, progress_at=at, finished_at=at,
            outcome={"created": 1, "updated": 0, "unchanged": 0, "renamed": 0, "moved": 0,
                     "institutions_created": 0, "cohorts_created": 0, "rejected_total": 1,
                     "rejected": [[3, f"no_wa {LONG_WORD!r} is not a valid WhatsApp number"]]}))
        session.flush()
        return {"cohort_id": cohort.id, "graduate_id": graduate.id, "job_id": job.id,
                "user_id": admin[0].id, "token": WIDE_UPLOAD}


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
