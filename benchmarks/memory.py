"""Peak memory of each Kabar process on a big database (100,000 graduates, 1,000,000 messages).

    python benchmarks/memory.py --database-url URL [--graduates 100000] [--messages 1000000]
                                [--budget-mb 300] [--dispatch-messages 5000] [--skip TEXT]

Each process is a real one, started as a deployment starts it, with one configuration file
(written to a temporary folder: the database, the Twilio transport pointed at the loopback
stand-in ``tests/twilio_fake.py``, a template per business-initiated kind, no quiet hours).
Its peak resident memory is ``VmHWM`` from ``/proc/<pid>/status``, read just before it is
stopped; ``VmRSS`` once it is ready is printed beside it.

1. **Database.** ``--database-url`` names a database filled by ``benchmarks/pages.py`` (its
   data set: cohorts of about 20, one big cohort, a year of messages). An empty one is filled
   here first with ``pages.build`` (``--graduates``, ``--messages``). The run adds a check-in
   round for every cohort and sends part of it, so use a copy when the same data is measured
   again (PostgreSQL: ``createdb -T kabar_pages kabar_pages_mem``).
2. **Web worker.** ``gunicorn -w 1 "bot:create_app()"`` (one sync worker, as deployed but one
   worker, so every request lands in the process measured). Signed in over HTTP as the
   benchmark's admin, it serves each console page of ``pages.targets`` (dashboard, timeline,
   graduate page, reply log, outcome and tracer reports) three times, then the downloads:
   the whole reply log as CSV, one month of it as XLSX, the outcome export and the tracer
   report. ``VmHWM`` of the worker after each step shows which request set the peak.
3. **Scheduler.** ``kabar scheduler --no-dispatch`` with ``scheduler.default_checkin`` set to
   one minute a little ahead (every cohort of the data set uses the default): it adds one job
   per cohort to its job store, then at that minute runs a check-in round for every cohort.
   Stopped once every reachable graduate has a prompt of that round.
4. **Dispatcher.** ``kabar dispatch`` sending those prompts to the stand-in (rate
   ``--dispatch-rate``), stopped once ``--dispatch-messages`` were accepted (or after
   ``--dispatch-seconds``).

Report: per process, the memory at start and the peak, beside ``--budget-mb``; PASS when every
peak is under it. Exit status: 0 PASS; 1 the harness failed (a process died, a page did not
answer 200, a wait ran out); 2 a peak over the budget.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the checkout this script is in, installed or not
sys.path.insert(0, str(HERE))

import pages  # noqa: E402  (benchmarks/pages.py: the data set and the page list)

VENV_BIN = Path(sys.executable).parent
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
TEMPLATES = {"checkin": "HX" + "c" * 32, "reminder": "HX" + "e" * 32,
             "job_opening": "HX" + "b" * 32, "announcement": "HX" + "a" * 32}
ZONE = ZoneInfo("Asia/Jakarta")  # the data set's cohorts' time zone


class HarnessError(RuntimeError):
    pass


# --- processes ------------------------------------------------------------------------------

def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def mb(kib: int) -> float:
    return kib / 1024


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def log_tail(process) -> str:
    """The last lines a process wrote (its output goes to a file named in ``process.args``)."""
    path = getattr(process, "kabar_log", None)
    if path is None or not Path(path).exists():
        return ""
    lines = Path(path).read_text(errors="replace").splitlines()[-15:]
    return "\n    " + "\n    ".join(lines) if lines else ""


def wait_until(condition, timeout: float, what: str, interval: float = 0.5, process=None):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise HarnessError(f"{what}: the process exited with {process.returncode}"
                               + log_tail(process))
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a TOML basic string


def write_config(path: Path, sections: dict[str, dict]) -> None:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))


# --- the three processes --------------------------------------------------------------------

def measure_web(folder: Path, env: dict, url: str, db, log) -> dict:
    import requests

    port = free_port()
    out = (folder / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}",
         "--timeout", "900", "bot:create_app()"],
        cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    process.kabar_log = folder / "gunicorn.log"
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()

    def up() -> bool:
        try:
            return http.get(base + "/healthz", timeout=10).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, 120, "gunicorn to answer /healthz", process=process)
        worker = wait_until(lambda: children(process.pid), 30, "the gunicorn worker")[0]
        start = proc_status(worker)
        page = http.get(base + "/staff/login", timeout=60).text
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        if not token:
            raise HarnessError("no CSRF token on /staff/login")
        answer = http.post(base + "/staff/login", allow_redirects=False, timeout=60, data={
            "name": pages.ADMIN, "password": pages.PASSWORD, "csrf_token": token.group(1)})
        if answer.status_code != 302:
            raise HarnessError(f"sign-in failed: HTTP {answer.status_code}")
        targets, _about = pages.targets(db, "mesin jahit", "kapal selam")
        targets = [p for p in targets if p.client == "admin" and "XLSX" not in p.name
                   and "CSV" not in p.name]
        today = datetime.now(ZONE).date()
        month_from = today - timedelta(days=210)
        month_to = month_from + timedelta(days=30)
        big = next(p for p in targets if p.name.startswith("dashboard, big")).url.split("=")[-1]
        downloads = [
            ("reply log CSV, every message", "/staff/log/export.csv"),
            ("reply log XLSX, one month", f"/staff/log/export.xlsx?from={month_from}"
                                          f"&to={month_to}"),
            ("outcome CSV, everything", "/staff/outcomes/export.csv"),
            ("outcome XLSX, big cohort", f"/staff/outcomes/export.xlsx?cohort_id={big}"),
            ("tracer XLSX, all cohorts", "/staff/tracer/export.xlsx"),
        ]
        steps = []
        for round_ in range(3):
            for p in targets:
                steps.append((f"{p.name} ({round_ + 1})", p.url))
        steps += downloads
        for name, path in steps:
            started = time.perf_counter()
            with http.get(base + path, timeout=900, stream=True) as answer:
                size = sum(len(chunk) for chunk in answer.iter_content(1 << 16))
            took = time.perf_counter() - started
            if answer.status_code != 200:
                raise HarnessError(f"{name}: GET {path} answered {answer.status_code}")
            now = proc_status(worker)
            log(f"  web  {name:44s} {took * 1000:8.0f} ms {size / 1024:9.0f} KiB   "
                f"VmRSS {mb(now['VmRSS']):6.1f} MB  VmHWM {mb(now['VmHWM']):6.1f} MB")
        end = proc_status(worker)
        return {"start": start["VmRSS"], "peak": end["VmHWM"],
                "detail": f"{len(steps)} requests: {len(targets)} pages x 3, "
                          f"{len(downloads)} downloads"}
    finally:
        stop(process)
        out.close()


def scheduler_config(fire: datetime) -> str:
    return f"{fire.minute} {fire.hour} {fire.day} {fire.month} *"


def measure_scheduler(folder: Path, env: dict, config: Path, sections: dict, db, log,
                      lead_seconds: float, timeout: float) -> dict:
    from sqlalchemy import func, select, text

    from bot.models import CheckInRound, Cohort, Graduate, Message

    with db.session() as session:
        reachable = session.scalar(
            select(func.count()).select_from(Graduate).join(Cohort, Cohort.id == Graduate.cohort_id)
            .where(Graduate.active.is_(True), Graduate.opted_out.is_(False),
                   Cohort.active.is_(True)))
        cohorts = session.scalar(select(func.count()).select_from(Cohort)
                                 .where(Cohort.active.is_(True)))
    local_now = datetime.now(ZONE)
    fire = (local_now + timedelta(seconds=lead_seconds + 60)).replace(second=0, microsecond=0)
    sections["scheduler"]["default_checkin"] = scheduler_config(fire)
    write_config(config, sections)
    out = (folder / "scheduler.log").open("w")
    process = subprocess.Popen([str(VENV_BIN / "kabar"), "scheduler", "--no-dispatch"],
                               cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    process.kabar_log = folder / "scheduler.log"
    try:
        time.sleep(2)
        start = proc_status(process.pid)
        log(f"  scheduler: {cohorts:,} cohorts, round at {fire:%H:%M} local "
            f"({(fire - local_now).total_seconds():.0f}s ahead) for {reachable:,} graduates")

        def jobs() -> int:
            with db.engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM apscheduler_jobs WHERE id LIKE "
                                         "'checkin:%'")).scalar()

        # Every cohort's job must be in the job store before the round's minute: a cron job
        # added after it would next fire a year later.
        loaded = -1
        while datetime.now(ZONE) < fire:
            if process.poll() is not None:
                raise HarnessError(f"the scheduler exited with {process.returncode}"
                                   + log_tail(process))
            with contextlib.suppress(Exception):  # the table appears once the scheduler starts
                loaded = jobs()
            if loaded >= cohorts:
                break
            time.sleep(2)
        if loaded < cohorts:
            raise HarnessError(f"only {loaded:,} of {cohorts:,} cohort jobs were loaded by "
                               f"{fire:%H:%M}: give --round-lead more than {lead_seconds:.0f}s")
        log(f"  scheduler  {datetime.now(ZONE):%H:%M:%S}: {loaded:,} cohort jobs loaded")

        def prompts() -> int:
            with db.session() as session:
                return session.scalar(
                    select(func.count()).select_from(Message)
                    .join(CheckInRound, CheckInRound.id == Message.round_id)
                    .where(CheckInRound.scheduled_for == fire, Message.kind == "checkin"))

        last = -1
        deadline = time.monotonic() + timeout + (fire - local_now).total_seconds()
        while True:
            if process.poll() is not None:
                raise HarnessError(f"the scheduler exited with {process.returncode}"
                                   + log_tail(process))
            count = prompts()
            if count != last:
                now = proc_status(process.pid)
                log(f"  scheduler  {datetime.now(ZONE):%H:%M:%S}: {count:,} prompts queued   "
                    f"VmRSS {mb(now['VmRSS']):6.1f} MB  VmHWM {mb(now['VmHWM']):6.1f} MB")
                last = count
            if count >= reachable:
                break
            if time.monotonic() > deadline:
                raise HarnessError(f"the round had {count:,} of {reachable:,} prompts after "
                                   f"{timeout:.0f}s")
            time.sleep(2)
        time.sleep(2)  # the round's last commit, and whatever the process does after it
        end = proc_status(process.pid)
        return {"start": start["VmRSS"], "peak": end["VmHWM"],
                "detail": f"round for {cohorts:,} cohorts, {count:,} prompts"}
    finally:
        stop(process)
        out.close()


def measure_dispatcher(folder: Path, env: dict, fake, wanted: int, timeout: float, log) -> dict:
    out = (folder / "dispatch.log").open("w")
    process = subprocess.Popen([str(VENV_BIN / "kabar"), "dispatch"], cwd=folder, env=env,
                               stdout=out, stderr=subprocess.STDOUT)
    process.kabar_log = folder / "dispatch.log"
    try:
        time.sleep(2)
        start = proc_status(process.pid)
        started = time.monotonic()
        last = 0.0
        while fake.accepted_count() < wanted:
            if process.poll() is not None:
                raise HarnessError(f"the dispatcher exited with {process.returncode}"
                                   + log_tail(process))
            if time.monotonic() - started > timeout:
                break
            if time.monotonic() - last > 10:
                now = proc_status(process.pid)
                log(f"  dispatch {time.monotonic() - started:5.0f}s: "
                    f"{fake.accepted_count():,} sent   VmRSS {mb(now['VmRSS']):6.1f} MB  "
                    f"VmHWM {mb(now['VmHWM']):6.1f} MB")
                last = time.monotonic()
            time.sleep(0.5)
        took = time.monotonic() - started
        end = proc_status(process.pid)
        sent = fake.accepted_count()
        return {"start": start["VmRSS"], "peak": end["VmHWM"],
                "detail": f"{sent:,} messages sent in {took:.0f}s ({sent / took:,.0f}/s)"}
    finally:
        stop(process)
        out.close()


# --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True,
                        help="a database filled by benchmarks/pages.py, or an empty one")
    parser.add_argument("--graduates", type=int, default=100_000,
                        help="graduates when filling an empty database (100000)")
    parser.add_argument("--messages", type=int, default=1_000_000,
                        help="messages when filling an empty database (1000000)")
    parser.add_argument("--budget-mb", type=float, default=300.0,
                        help="peak resident memory each process must stay under (300)")
    parser.add_argument("--dispatch-messages", type=int, default=5_000,
                        help="messages the dispatcher sends before it is measured (5000)")
    parser.add_argument("--dispatch-seconds", type=float, default=300.0,
                        help="at most this long sending (300)")
    parser.add_argument("--dispatch-rate", type=float, default=1000.0,
                        help="dispatch.rate_per_second (1000)")
    parser.add_argument("--round-lead", type=float, default=300.0,
                        help="seconds the scheduler gets to load its jobs before the round "
                             "(300; 5,000 cohorts took 100-250 s on a busy 2-CPU machine)")
    parser.add_argument("--round-timeout", type=float, default=900.0,
                        help="seconds the round may take (900)")
    parser.add_argument("--skip", action="append", default=[], choices=("web", "scheduler",
                                                                        "dispatcher"),
                        help="leave a process out (repeatable)")
    parser.add_argument("--seed", type=int, default=20240614)
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        parser.error("needs Linux's /proc to read VmHWM")
    try:
        return run(args)
    except HarnessError as exc:
        print(f"ERROR: {exc}")
        return 1


def run(args) -> int:
    from sqlalchemy import func, inspect, select

    from bot.db import Database
    from bot.models import Graduate, Message
    from tests.twilio_fake import TwilioFake

    url = args.database_url
    probe = Database(url)
    try:
        filled = "messages" in inspect(probe.engine).get_table_names()
    finally:
        probe.dispose()
    if not filled:
        pages.build(url, args.graduates, args.messages, args.seed, analyze=False)
    db = Database(url)
    fake = TwilioFake(ACCOUNT_SID, AUTH_TOKEN).start()
    results: dict[str, dict] = {}
    try:
        with db.session() as session:
            graduates = session.scalar(select(func.count()).select_from(Graduate))
            messages = session.scalar(select(func.count()).select_from(Message))
        print(f"Kabar process memory: {graduates:,} graduates, {messages:,} messages, "
              f"{db.engine.dialect.name}")
        print("machine: " + pages.machine_line(db.engine))
        print(f"date: {datetime.now(ZONE):%Y-%m-%d %H:%M} Asia/Jakarta; load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        with tempfile.TemporaryDirectory(prefix="kabar-memory-") as name:
            folder = Path(name)
            config = folder / "config.toml"
            sections = {
                "app": {"secret_key": "bench-" + "x" * 32, "public_url": "http://kabar.test"},
                "database": {"url": url},
                "transport": {"kind": "twilio"},
                "twilio": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                           "whatsapp_from": "whatsapp:+14155238886",
                           "api_base_url": fake.url},
                "twilio.templates": dict(TEMPLATES),
                "scheduler": {"quiet_hours": "", "run_dispatcher": False,
                              "reconcile_every_seconds": 30},
                "dispatch": {"rate_per_second": args.dispatch_rate},
            }
            write_config(config, sections)
            env = {key: value for key, value in os.environ.items()
                   if not key.startswith(("KABAR_", "TWILIO_"))}
            env["KABAR_CONFIG"] = str(config)

            def log(line: str) -> None:
                print(line, flush=True)

            if "web" not in args.skip:
                results["web worker"] = measure_web(folder, env, url, db, log)
            if "scheduler" not in args.skip:
                results["scheduler"] = measure_scheduler(
                    folder, env, config, sections, db, log, args.round_lead, args.round_timeout)
            if "dispatcher" not in args.skip:
                results["dispatcher"] = measure_dispatcher(
                    folder, env, fake, args.dispatch_messages, args.dispatch_seconds, log)
    finally:
        fake.stop()
        db.dispose()
    print(f"\n{'process':12s} {'at start':>9s} {'peak':>9s}  budget       what it did")
    print("-" * 100)
    over = []
    for name, r in results.items():
        verdict = "PASS" if mb(r["peak"]) < args.budget_mb else "FAIL"
        if verdict == "FAIL":
            over.append(name)
        print(f"{name:12s} {mb(r['start']):6.1f} MB {mb(r['peak']):6.1f} MB  "
              f"{args.budget_mb:.0f} MB {verdict}  {r['detail']}")
    print("(at start: VmRSS once the process is ready; peak: VmHWM at the end)")
    if over:
        print(f"\nFAIL: peak over {args.budget_mb:.0f} MB: {', '.join(over)}")
        return 2
    print(f"\nPASS: every process under {args.budget_mb:.0f} MB at its peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
