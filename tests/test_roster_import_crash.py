"""A web worker killed while it writes a roster upload: the upload's page says the import
stopped, and importing the rest finishes it, with nothing lost and nothing written twice.

gunicorn serves the console (real worker processes); the import is held mid-way (its next
chunk waits for a lock the test holds), its worker is killed with SIGKILL, and a new worker
answers the page.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
import requests
from sqlalchemy import func, select

from bot.models import AuditLog, Graduate
from bot.roster_plan import COMMIT_EVERY
from bot.staffusers import add_staff
from tests.live import gunicorn_running, wait_for
from tests.roster_helpers import big_roster, import_held
from tests.staff_helpers import PASSWORD, csrf_from


@pytest.fixture
def gunicorn(settings, tmp_path):
    """``gunicorn -w 2 "bot:create_app()"`` on a free loopback port; yields its base URL."""
    env = {**os.environ, "KABAR_DATABASE_URL": settings.database.url,
           "KABAR_SECRET_KEY": "test-secret", "KABAR_PUBLIC_URL": "http://kabar.test",
           "KABAR_TRANSPORT": "simulator", "KABAR_CONFIG": ""}
    with gunicorn_running(env, tmp_path, workers=2, timeout=120) as url:
        yield url


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _confirm(staff: requests.Session, base: str, html: str) -> requests.Response:
    action = re.search(r'action="(/staff/roster/import/[^"]+)"', html).group(1)
    return staff.post(base + action, data={"csrf_token": csrf_from(html)}, timeout=120,
                      allow_redirects=False)


def test_a_worker_killed_mid_import_leaves_a_page_that_finishes_it(db, gunicorn):
    rows = 20 * COMMIT_EVERY  # chunks enough that the test holds it before it ends
    with db.session() as session:
        add_staff(session, name="bayu", role="staff", password=PASSWORD)
    staff = requests.Session()
    page = staff.get(gunicorn + "/staff/login", timeout=30).text
    assert staff.post(gunicorn + "/staff/login", timeout=30, allow_redirects=False,
                      data={"name": "bayu", "password": PASSWORD,
                            "csrf_token": csrf_from(page)}).status_code == 302
    page = staff.get(gunicorn + "/staff/roster", timeout=30).text
    shown = staff.post(gunicorn + "/staff/roster/upload", timeout=120,
                       data={"csrf_token": csrf_from(page)},
                       files={"roster": ("besar.csv", big_roster(rows).encode("utf-8"))})
    assert shown.status_code == 200
    started = _confirm(staff, gunicorn, shown.text)
    assert started.status_code == 303
    status_url = gunicorn + started.headers["Location"]
    token = status_url.rsplit("/", 1)[1]

    with import_held(db, token) as held:
        written = held.rows_done
        worker = int(held.worker.rsplit(":", 1)[1])
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: _exited(worker), timeout=30, message="the worker to be gone")
    assert 0 < written < rows

    def stopped() -> bool:
        answer = staff.get(status_url + "/progress", timeout=30)
        return answer.json()["state"] == "interrupted"

    wait_for(stopped, timeout=60, interval=0.1, message="the page to say it stopped")
    html = staff.get(status_url, timeout=30).text
    assert 'data-state="interrupted"' in html and f">{written}</span> / <span" in html
    with db.read_session() as session:
        assert session.scalar(select(func.count(Graduate.id))) == written  # nothing lost
        assert session.scalar(select(func.count(AuditLog.id)).where(
            AuditLog.action == "import_roster")) == 0

    resume = re.search(r'action="(/staff/roster/import/[^"]+/resume)"', html).group(1)
    rest = staff.post(gunicorn + resume, data={"csrf_token": csrf_from(html)}, timeout=120)
    assert rest.status_code == 200
    assert re.search(rf'data-count="created">{rows - written}<', rest.text)
    assert re.search(rf'data-count="unchanged">{written}<', rest.text)
    assert _confirm(staff, gunicorn, rest.text).status_code == 303
    wait_for(lambda: staff.get(status_url + "/progress", timeout=30).json()["state"] == "done",
             timeout=120, interval=0.1, message="the rest to be imported")
    summary = staff.get(status_url, timeout=30).text
    assert re.search(rf'data-count="created">{rows - written}<', summary)
    with db.read_session() as session:
        assert session.scalar(select(func.count(Graduate.id))) == rows
        assert session.scalar(select(func.count(func.distinct(Graduate.phone)))) == rows
        entries = list(session.scalars(select(AuditLog).where(
            AuditLog.action == "import_roster")))
        assert [e.detail["created"] for e in entries] == [rows - written]
