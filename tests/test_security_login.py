"""Sign-in throttling: per client address with backoff, a per-name delay that never locks the
real user out, unknown names as slow as real ones, a bounded audit log, real client addresses
behind a reverse proxy, and parallel guesses that cannot outrun the count."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot import create_app
from bot.models import AuditLog, Throttle, utcnow
from bot.staff import auth
from bot.staff.auth import IP_BACKOFF, NAME_FREE_FAILURES, attempt_login
from bot.staffusers import add_staff
from tests.staff_helpers import PASSWORD, csrf_from

ATTACKER = "203.0.113.9"
OFFICE = "198.51.100.7"


@pytest.fixture
def rina(db):
    with db.session() as session:
        add_staff(session, name="rina", role="admin", password=PASSWORD)


def login(client, name, password, ip=OFFICE, headers=None):
    env = {"REMOTE_ADDR": ip}
    page = client.get("/staff/login", environ_base=env).get_data(as_text=True)
    return client.post("/staff/login", data={"name": name, "password": password,
                                             "csrf_token": csrf_from(page)},
                       environ_base=env, headers=headers or {})


def audit_count(db, action: str) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditLog)
                              .where(AuditLog.action == action))


@pytest.fixture
def frozen(monkeypatch):
    """Sign-ins all happen at one moment: no wait runs out while a slow machine works."""
    moment = utcnow()
    monkeypatch.setattr(auth, "utcnow", lambda: moment)
    return moment


@pytest.fixture
def no_sleep(monkeypatch):
    """Record the per-name delays instead of waiting them out."""
    slept: list[float] = []
    monkeypatch.setattr(auth.time, "sleep", slept.append)
    return slept


def test_the_real_user_signs_in_while_an_attacker_floods_from_another_address(
        app, db, rina, no_sleep, frozen):
    attacker = app.test_client()
    codes = [login(attacker, "rina", f"tebakan-{n}", ip=ATTACKER).status_code
             for n in range(60)]
    assert codes[:IP_BACKOFF.free] == [401] * IP_BACKOFF.free
    assert set(codes[IP_BACKOFF.free:]) == {429}
    # The attacker's right guess is refused too while its address waits.
    assert login(attacker, "rina", PASSWORD, ip=ATTACKER).status_code == 429
    office = app.test_client()
    assert login(office, "rina", PASSWORD, ip=OFFICE).status_code == 302
    assert office.get("/staff/dashboard").status_code == 200


def test_many_addresses_guessing_one_name_only_slow_it_down(app, db, rina, no_sleep):
    client = app.test_client()
    for n in range(NAME_FREE_FAILURES + 6):  # a botnet: one guess from each address
        assert login(client, "rina", "salah-salah", ip=f"192.0.2.{n + 1}").status_code == 401
    assert no_sleep and max(no_sleep) <= auth.NAME_DELAY_CAP  # later guesses were delayed
    before = len(no_sleep)
    assert login(client, "rina", PASSWORD, ip=OFFICE).status_code == 302  # not locked out
    assert len(no_sleep) == before + 1  # ... only delayed, like everyone
    # A good sign-in clears the name's count: the next one is not delayed.
    other = app.test_client()
    assert login(other, "rina", PASSWORD, ip="192.0.2.200").status_code == 302
    assert len(no_sleep) == before + 1


def test_a_flood_adds_a_handful_of_audit_rows(app, db, rina):
    attacker = app.test_client()
    for n in range(300):
        login(attacker, "rina", f"tebakan-{n}", ip=ATTACKER)
    assert audit_count(db, "login_failed") == auth.AUDITED_PER_WINDOW
    assert audit_count(db, "login_throttled") == 1
    with db.session() as session:
        row = session.get(Throttle, f"ip:{ATTACKER}")
        assert row.blocked_until > utcnow()


def test_the_wait_doubles_after_each_attempt_beyond_the_free_ones(app, db, rina):
    client = app.test_client()
    for n in range(IP_BACKOFF.free - 1):
        assert login(client, "rina", f"salah-{n}", ip=ATTACKER).status_code == 401
    waits = []
    for attempt in range(4):
        # The block runs from the failed attempt that set it, so it ends between (before +
        # wait) and (after + wait), however slowly the machine ran the request.
        before = utcnow()
        assert login(client, "rina", "salah", ip=ATTACKER).status_code == 401
        after = utcnow()
        if attempt:
            assert login(client, "rina", "salah", ip=ATTACKER).status_code == 429
        with db.session() as session:
            row = session.get(Throttle, f"ip:{ATTACKER}")
            wait = next((w for w in (1, 2, 4, 8, 16)
                        if before + timedelta(seconds=w) <= row.blocked_until
                        <= after + timedelta(seconds=w)), row.blocked_until)
            waits.append(wait)
            # the wait has passed
            session.execute(update(Throttle).where(Throttle.key == row.key)
                            .values(blocked_until=utcnow() - timedelta(milliseconds=1)))
    assert waits == [1, 2, 4, 8]
    assert login(client, "rina", "salah", ip=ATTACKER).status_code == 401
    assert "detik" in login(client, "rina", "salah", ip=ATTACKER).get_data(as_text=True)


def test_an_unknown_name_is_checked_against_a_password_hash_too(app, db, rina, monkeypatch):
    """Unknown and known names take the same path: one scrypt hash check each (timing is
    not measured here: it is flaky on a busy machine; see docs/operations.md for figures)."""
    checked: list[str] = []
    real = auth.check_password_hash

    def spy(pwhash, password):
        checked.append(pwhash.split("$", 1)[0])
        return real(pwhash, password)

    monkeypatch.setattr(auth, "check_password_hash", spy)
    monkeypatch.setattr("bot.models.check_password_hash", spy)
    client = app.test_client()
    assert login(client, "tidak-ada", "salah-salah").status_code == 401
    assert login(client, "rina", "salah-salah", ip="192.0.2.50").status_code == 401
    assert len(checked) == 2
    assert checked[0] == checked[1]  # the same method and cost for both
    assert checked[0].startswith("scrypt")


def test_an_inactive_user_is_refused_with_the_same_answer(app, db, rina):
    with db.session() as session:
        add_staff(session, name="budi", role="staff", password=PASSWORD)
        from bot.models import StaffUser
        session.scalar(select(StaffUser).where(StaffUser.name == "budi")).active = False
    client = app.test_client()
    wrong = login(client, "rina", "salah-salah")
    inactive = login(client, "budi", PASSWORD, ip="192.0.2.60")
    assert inactive.status_code == wrong.status_code == 401
    assert client.get("/staff/dashboard").status_code == 302


def test_parallel_guesses_from_one_address_cannot_outrun_the_count(app, db, rina, frozen):
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def guess(n: int) -> None:
        with app.test_request_context("/staff/login", method="POST"):
            start.wait()
            outcome = attempt_login("rina", f"tebakan-{n}", ATTACKER)
        with lock:
            results.append(outcome[1])

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 12
    assert results.count(401) == IP_BACKOFF.free
    assert results.count(429) == 12 - IP_BACKOFF.free


@pytest.mark.parametrize("hops", [0, 1])
def test_the_client_address_behind_a_reverse_proxy(settings, db, rina, hops, frozen):
    """With app.trusted_proxies = 1 the address nginx forwards counts; with 0 a client cannot
    choose its address by sending X-Forwarded-For."""
    app = create_app(settings.with_overrides(app={"trusted_proxies": hops}), db)
    client = app.test_client()
    for n in range(IP_BACKOFF.free + 1):
        login(client, "rina", f"salah-{n}", ip="10.0.0.2",
              headers={"X-Forwarded-For": f"{ATTACKER}, 192.0.2.{n}"})
    office = login(client, "rina", PASSWORD, ip="10.0.0.2",
                   headers={"X-Forwarded-For": OFFICE})
    with db.session() as session:
        addresses = {detail["ip"] for detail in session.scalars(select(AuditLog.detail).where(
            AuditLog.action == "login_failed"))}
    if hops:
        # Each guess came from another forwarded address: none was throttled.
        assert office.status_code == 302
        assert "192.0.2.0" in addresses
    else:
        assert office.status_code == 429  # the proxy's address was counted, not the header
        assert "10.0.0.2" in addresses


def test_old_counts_are_deleted_at_a_good_sign_in(app, db, rina):
    with db.session() as session:
        long_ago = utcnow() - timedelta(days=3)
        session.add(Throttle(key="ip:192.0.2.77", failures=40, window_start=long_ago,
                             blocked_until=long_ago + timedelta(minutes=15), audited=6))
        session.add(Throttle(key="join:+6285700000001", failures=2, window_start=utcnow(),
                             audited=0))
    assert login(app.test_client(), "rina", PASSWORD).status_code == 302
    with db.session() as session:
        assert session.get(Throttle, "ip:192.0.2.77") is None
        assert session.get(Throttle, "join:+6285700000001") is not None  # still counting
