"""Sign-in under attack: how long a failed sign-in takes for a real and an unknown name, and
what a flood from one address does (answers, audit rows, the real user from elsewhere).

    .venv/bin/python benchmarks/login.py

SQLite in a temporary folder, the Flask test client (no network), one staff user. The first
figure is measured without the per-name delay (each name stays under its free failures), so
it compares the password checks alone; the flood then sends 1000 wrong passwords for the same
name from one address and signs the real user in from another.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

from alembic import command
from sqlalchemy import func, select

from bot import create_app
from bot.config import load_settings
from bot.db import Database
from bot.migrate import alembic_config
from bot.models import AuditLog
from bot.staff import auth
from bot.staffusers import add_staff

PASSWORD = "rahasia-123"


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="kabar-login-"))
    url = f"sqlite:///{folder / 'login.db'}"
    command.upgrade(alembic_config(url), "head")
    settings = load_settings(environ={}).with_overrides(
        app={"secret_key": "benchmark"}, database={"url": url}, transport={"kind": "console"})
    db = Database(url)
    with db.session() as session:
        add_staff(session, name="rina", role="admin", password=PASSWORD)
    client = create_app(settings, db).test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)

    def attempt(name: str, password: str, ip: str) -> tuple[int, float]:
        start = time.perf_counter()
        answer = client.post("/staff/login", environ_base={"REMOTE_ADDR": ip}, data={
            "name": name, "password": password, "csrf_token": token})
        return answer.status_code, (time.perf_counter() - start) * 1000

    free = auth.NAME_FREE_FAILURES
    auth.NAME_FREE_FAILURES = 10**6  # the password checks alone
    real = [attempt("rina", "salah-salah", f"10.1.0.{n}")[1] for n in range(1, 41)]
    unknown = [attempt("tidak-ada", "salah-salah", f"10.2.0.{n}")[1] for n in range(1, 41)]
    auth.NAME_FREE_FAILURES = free
    print(f"failed sign-in, median of 40: real name {statistics.median(real):.0f} ms, "
          f"unknown name {statistics.median(unknown):.0f} ms")

    start = time.perf_counter()
    codes = [attempt("rina", f"tebakan-{n}", "203.0.113.9")[0] for n in range(1000)]
    took = time.perf_counter() - start
    with db.session() as session:
        rows = session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action.in_(("login_failed", "login_throttled")),
            AuditLog.detail["ip"].as_string() == "203.0.113.9"))
    status, ms = attempt("rina", PASSWORD, "198.51.100.7")
    print(f"flood of 1000 from one address in {took:.1f} s: {codes.count(401)} checked, "
          f"{codes.count(429)} refused (429), {rows} audit rows; "
          f"the real user from another address: HTTP {status} in {ms:.0f} ms")
    db.dispose()


if __name__ == "__main__":
    main()
