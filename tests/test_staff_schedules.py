"""The schedules page: schedules in plain words with their next runs, edited with simple fields
or a cron line, reset to the default, audited, and picked up by a running scheduler."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from bot.models import AuditLog, Cohort
from scheduler import jobs
from scheduler.service import JOBSTORE_TABLE, build_scheduler, checkin_job_id, reconcile_jobs
from tests.factories import make_cohort
from tests.staff_helpers import csrf_from, signed_in_client

ANUR, NISFI = "LPKS A'nur", "LPKS Nisfisano"


@pytest.fixture
def cohorts(db):
    with db.session() as session:
        default = make_cohort(session, "Menjahit 1", ANUR)
        weekly = make_cohort(session, "Menjahit 2", ANUR, schedule="30 8 * * 1")
        other = make_cohort(session, "Bordir 1", NISFI, schedule="0 7 * * *")
        return {"default": default.id, "weekly": weekly.id, "other": other.id}


def schedule_of(db, cohort_id):
    with db.session() as session:
        return session.get(Cohort, cohort_id).checkin_schedule


def save(client, cohort_id, **fields):
    page = client.get(f"/staff/schedules/{cohort_id}").get_data(as_text=True)
    return client.post(f"/staff/schedules/{cohort_id}",
                       data={**fields, "csrf_token": csrf_from(page)})


def row(html: str, cohort_id: int) -> str:
    match = re.search(rf'<tr id="cohort-{cohort_id}".*?</tr>', html, re.S)
    assert match, f"no row for cohort {cohort_id}"
    return re.sub(r"\s+", " ", match.group(0))


def test_schedules_read_in_plain_words_in_both_languages(app, db, cohorts):
    client = signed_in_client(app, db)
    html = client.get("/staff/schedules").get_data(as_text=True)
    monthly = row(html, cohorts["default"])
    assert "setiap tanggal 1 setiap bulan pukul 09:00" in monthly and "bawaan" in monthly
    assert "setiap hari Senin pukul 08:30" in row(html, cohorts["weekly"])
    assert "setiap hari pukul 07:00" in row(html, cohorts["other"])
    english = client.get("/staff/schedules?lang=en").get_data(as_text=True)
    assert "every 1st of the month at 09:00" in row(english, cohorts["default"])
    assert "every Monday at 08:30" in row(english, cohorts["weekly"])
    assert "every day at 07:00" in row(english, cohorts["other"])


def test_the_next_three_runs_are_listed_in_the_cohorts_zone(app, db, cohorts):
    with db.session() as session:
        session.get(Cohort, cohorts["default"]).timezone = "Asia/Makassar"
    client = signed_in_client(app, db)
    cells = row(client.get("/staff/schedules").get_data(as_text=True), cohorts["default"])
    runs = re.findall(r"<li>([^<]+)</li>", cells)
    assert len(runs) == 3
    assert all(re.fullmatch(r"\w{3}, 01/\d\d/\d{4} 09:00 WITA", r) for r in runs), runs
    weekly = row(client.get("/staff/schedules").get_data(as_text=True), cohorts["weekly"])
    assert all(r.startswith("Sen, ") and r.endswith("08:30 WIB")
               for r in re.findall(r"<li>([^<]+)</li>", weekly))


@pytest.mark.parametrize(("fields", "cron"), [
    ({"mode": "monthly", "day": "15", "time": "10:30"}, "30 10 15 * *"),
    ({"mode": "weekly", "weekday": "4", "time": "8.05"}, "5 8 * * 4"),
    ({"mode": "weekly", "weekday": "0", "time": "16:00"}, "0 16 * * 0"),
    ({"mode": "daily", "time": "19:45"}, "45 19 * * *"),
    ({"mode": "cron", "cron": " 0  9  1,15 * * "}, "0 9 1,15 * *"),
])
def test_simple_fields_and_cron_lines_become_the_schedule(app, db, cohorts, fields, cron):
    client = signed_in_client(app, db, role="staff")
    response = save(client, cohorts["default"], **fields)
    assert response.status_code == 302
    assert schedule_of(db, cohorts["default"]) == cron
    with db.session() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "schedule.change"))
        assert entry.actor == "rina"
        assert (entry.detail["cohort_id"], entry.detail["old"], entry.detail["new"]) == \
            (cohorts["default"], None, cron)


def test_the_form_starts_from_the_current_schedule(app, db, cohorts):
    client = signed_in_client(app, db)
    html = client.get(f"/staff/schedules/{cohorts['weekly']}").get_data(as_text=True)
    assert re.search(r'value="weekly" checked', html)
    assert re.search(r'<option value="1" selected>Senin</option>', html)
    assert 'name="time" type="time" value="08:30"' in html


@pytest.mark.parametrize(("fields", "error"), [
    ({"mode": "monthly", "day": "31", "time": "09:00"}, "Pilih tanggal 1 sampai 28."),
    ({"mode": "daily", "time": "25:00"}, "Tulis jam seperti 09:00"),
    ({"mode": "cron", "cron": "0 9 * *"}, "harus punya 5 kolom"),
    ({"mode": "cron", "cron": "0 25 * * *"},
     "Kolom jam &#34;25&#34; tidak bisa dipakai: jam 0 sampai 23"),
    ({"mode": "cron", "cron": "0 9 * * 8"},
     "Kolom hari &#34;8&#34; tidak bisa dipakai: hari 0 sampai 7"),
    ({"mode": "cron", "cron": "0 9 31 2 *"}, "tidak pernah jatuh"),
])
def test_a_bad_schedule_is_refused_naming_the_field(app, db, cohorts, fields, error):
    client = signed_in_client(app, db)
    response = save(client, cohorts["weekly"], **fields)
    assert response.status_code == 400
    assert error in response.get_data(as_text=True)
    assert schedule_of(db, cohorts["weekly"]) == "30 8 * * 1"


def test_english_errors_name_the_field_too(app, db, cohorts):
    client = signed_in_client(app, db)
    client.get("/staff/schedules?lang=en")
    response = save(client, cohorts["weekly"], mode="cron", cron="61 9 * * *")
    assert "The minute field &#34;61&#34; cannot be used" in response.get_data(as_text=True)


def test_reset_goes_back_to_the_default(app, db, cohorts):
    client = signed_in_client(app, db)
    page = client.get(f"/staff/schedules/{cohorts['weekly']}").get_data(as_text=True)
    assert "Kembalikan ke bawaan" in page
    response = client.post(f"/staff/schedules/{cohorts['weekly']}/reset",
                           data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert schedule_of(db, cohorts["weekly"]) is None
    with db.session() as session:
        entry = session.scalar(select(AuditLog).where(AuditLog.action == "schedule.change"))
        assert (entry.detail["old"], entry.detail["new"]) == ("30 8 * * 1", None)
    html = client.get("/staff/schedules").get_data(as_text=True)
    assert "Jadwal Menjahit 2: setiap tanggal 1 setiap bulan pukul 09:00" in html  # the flash


def test_a_time_in_the_quiet_hours_is_saved_with_a_note(app, db, cohorts, settings):
    quiet = settings.with_overrides(scheduler={"quiet_hours": "21:00-07:00"})
    app.extensions["kabar.settings"] = quiet
    client = signed_in_client(app, db)
    save(client, cohorts["weekly"], mode="daily", time="22:00")
    assert schedule_of(db, cohorts["weekly"]) == "0 22 * * *"
    assert "jam tenang (21:00-07:00)" in client.get("/staff/schedules").get_data(as_text=True)


def test_a_viewer_reads_only_their_cohorts_and_changes_nothing(app, db, cohorts):
    viewer = signed_in_client(app, db, name="vivi", role="viewer", institution=ANUR)
    html = viewer.get("/staff/schedules").get_data(as_text=True)
    assert "Menjahit 2" in html and "Bordir 1" not in html
    assert f"/staff/schedules/{cohorts['weekly']}\"" not in html  # no edit links
    assert viewer.get(f"/staff/schedules/{cohorts['other']}").status_code == 404
    page = viewer.get(f"/staff/schedules/{cohorts['weekly']}")
    assert page.status_code == 200 and "Simpan jadwal" not in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    assert viewer.post(f"/staff/schedules/{cohorts['weekly']}",
                       data={"mode": "daily", "time": "10:00", "csrf_token": token}
                       ).status_code == 403
    assert viewer.post(f"/staff/schedules/{cohorts['weekly']}/reset",
                       data={"csrf_token": token}).status_code == 403
    assert schedule_of(db, cohorts["weekly"]) == "30 8 * * 1"


@pytest.fixture
def running_scheduler(settings, db):
    """A started BackgroundScheduler on the test database's job store, shut down afterwards."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {JOBSTORE_TABLE}")
    scheduler = build_scheduler(settings, db, scheduler_cls=BackgroundScheduler)
    jobs.configure(settings, db, scheduler=scheduler)
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown(wait=True)
    jobs.reset()
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {JOBSTORE_TABLE}")


def test_the_running_scheduler_picks_up_a_schedule_edited_on_the_page(
        app, db, settings, cohorts, running_scheduler):
    scheduler = running_scheduler
    reconcile_jobs(scheduler, settings, db)
    scheduler.resume()
    job_id = checkin_job_id(cohorts["default"])
    before = scheduler.get_job(job_id)
    assert "day='1'" in str(before.trigger) and "hour='9'" in str(before.trigger)

    client = signed_in_client(app, db)
    assert save(client, cohorts["default"], mode="weekly", weekday="3",
                time="14:15").status_code == 302

    assert reconcile_jobs(scheduler, settings, db)["rescheduled"] == 1
    after = scheduler.get_job(job_id)
    assert "day_of_week='wed'" in str(after.trigger) and "hour='14'" in str(after.trigger)
    nxt = after.next_run_time.astimezone(after.trigger.timezone)
    assert nxt.strftime("%A %H:%M") == "Wednesday 14:15" and nxt > datetime.now(UTC)
    # The other cohorts' jobs are untouched.
    assert reconcile_jobs(scheduler, settings, db)["rescheduled"] == 0
