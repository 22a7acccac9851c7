"""Throughput of Kabar's Twilio webhook against a bare Flask app, on the same machine and settings.

    python benchmarks/webhook.py [--duration 10] [--connections 16] [--graduates 2000]

What it does (everything on 127.0.0.1, in a temporary folder removed at the end):

1. A SQLite database (Alembic ``upgrade`` when a revision exists, else ``create_all``) with N
   graduates in a few cohorts, each mid check-in: a round was started for them, so their
   conversation waits at the status question.
2. A config file: simulator transport (``console`` while ``bot/simulator.py`` does not
   exist; either way nothing is sent: replies only go into the outbox and no dispatcher
   runs), signatures ON with a fixed auth token, ``app.public_url`` pointing at the benchmark
   port, quiet hours off.
3. Many distinct signed requests (``duration x --rate`` of them: distinct MessageSid, graduates
   cycling in waves, each graduate answering the whole check-in in order with informal
   replies, then small talk) in one file, and a wrk Lua script that serves a different request
   per call (each wrk thread its own graduates, so no two threads repeat a request or
   interleave one graduate's answers).
4. gunicorn (2 sync workers) with ``bot:create_app()``; wrk ``-t2 -c16 -d10s --latency``;
   then the same gunicorn and wrk settings and the same request file against
   ``benchmarks/bare_app.py`` (one POST endpoint answering empty TwiML).
5. Prints both throughputs, Kabar's p50/p99, the errors, the ratio Kabar/bare against the
   target (0.3), and checks that every request answered 200 left exactly one inbound message
   in the database.

Exit status: 0 PASS; 1 errors (non-2xx, socket errors, lost or extra messages, request file
exhausted, or the harness failed); 2 no errors but the ratio is below the target.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without the package installed, too

AUTH_TOKEN = "bench-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "b" * 32
WHATSAPP_FROM = "whatsapp:+14155238886"
INBOUND_PATH = "/twilio/inbound"
HEALTH_DEADLINE_S = 60.0

# Each graduate answers the check-in in order, as people do: status, then the follow-ups of
# that status, rating, obstacles. What comes after the conversation is over is small talk.
SCRIPTS = (
    # employed + where (one message) -> uses the skill? -> rating -> help
    ("sudah kerja di pabrik sepatu", "ya", "4", "tidak ada"),
    # employed -> where -> uses the skill? -> rating -> help
    ("1", "konveksi pak haji di kedungwuni", "iya", "5", "gak ada"),
    # self-employed -> what business -> rating -> help
    ("2", "jualan baju muslim di shopee", "4", "butuh modal buat mesin jahit"),
    # seeking -> job alerts? -> rating -> help
    ("blm dpt kerja", "ya", "3", "tolong info lowongan menjahit"),
    # studying -> rating -> help
    ("lanjut kuliah", "3", "tidak"),
)
AFTER_SCRIPT = ("makasih", "ok", "siap", "terima kasih pak")


# --------------------------------------------------------------------------------------------
# Processes: everything the harness starts is in its own session and ended by its own id.


class Procs:
    """The child processes alive right now; ``stop_all`` ends each, by its process group."""

    def __init__(self) -> None:
        self.alive: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        self.alive.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 20.0) -> int | None:
        """SIGTERM the group (gunicorn then finishes the requests in hand), SIGKILL if slow."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                # The whole group: workers of a killed master would be left behind otherwise.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc in self.alive:
            self.alive.remove(proc)
        return proc.returncode

    def stop_all(self) -> None:
        for proc in list(self.alive):
            self.stop(proc, grace=10.0)


class Interrupted(Exception):
    pass


def _on_sigterm(_signum, _frame):
    raise Interrupted("SIGTERM")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The database and the configuration.


def write_config(path: Path, db_url: str, port: int, transport: str) -> None:
    path.write_text(f"""\
# Written by benchmarks/webhook.py for one run; removed with its folder.
[app]
secret_key = "bench-secret-key"
public_url = "http://127.0.0.1:{port}"
timezone = "Asia/Jakarta"
language = "id"

[database]
url = "{db_url}"

[transport]
kind = "{transport}"

[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
whatsapp_from = "{WHATSAPP_FROM}"
validate_signatures = true

[scheduler]
quiet_hours = ""
run_dispatcher = false
""", encoding="utf-8")


def pick_transport() -> str:
    """The simulator when this checkout has it (create_app mounts ``bot.simulator`` for it)."""
    return "simulator" if (ROOT / "bot" / "simulator.py").is_file() else "console"


def create_schema(url: str) -> str:
    versions = ROOT / "migrations" / "versions"
    if any(p.suffix == ".py" and p.name != "__init__.py" for p in versions.glob("*.py")):
        from bot.migrate import upgrade

        upgrade(url)
        return "alembic upgrade head"
    from bot.db import Database
    from bot.models import Base

    db = Database(url)
    Base.metadata.create_all(db.engine)
    db.dispose()
    return "Base.metadata.create_all (no Alembic revision yet)"


def _call(func, **available):
    """Call ``func`` with the arguments it names among ``available`` (signatures still move)."""
    params = inspect.signature(func).parameters
    args, kwargs = [], {}
    for name, param in params.items():
        if name not in available:
            if param.default is inspect.Parameter.empty and param.kind not in (
                    param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TypeError(f"{func.__module__}.{func.__qualname__}: "
                                f"don't know what to pass as {name!r}")
            continue
        if param.kind == param.POSITIONAL_ONLY:
            args.append(available[name])
        else:
            kwargs[name] = available[name]
    return func(*args, **kwargs)


def seed(settings, graduates: int, threads: int) -> tuple[list[list[tuple[str, str]]], dict]:
    """Cohorts, graduates and an open check-in for each; return per-thread (phone, name) lists."""
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import CheckInRound, Cohort, Conversation, Graduate, Institution, utcnow

    db = Database(settings.database.url)
    n_cohorts = max(1, min(8, graduates // 250))
    skills = ("menjahit", "las listrik", "tata boga", "otomotif", "komputer", "tata rias",
              "barista", "sablon")
    info: dict = {}
    with db.session() as session:
        insts = [Institution(name="LPKS A'nur Pekalongan"), Institution(name="LPKS Batik Mandiri")]
        session.add_all(insts)
        session.flush()
        cohorts = []
        for c in range(n_cohorts):
            skill = skills[c % len(skills)]
            cohort = Cohort(institution_id=insts[c % 2].id, name=f"{skill.title()} {c + 1}",
                            skill=skill, join_code=f"BENCH{c + 1:02d}", timezone="Asia/Jakarta")
            session.add(cohort)
            cohorts.append(cohort)
        session.flush()
        grads = []
        for i in range(graduates):
            cohort = cohorts[i % n_cohorts]
            grads.append(Graduate(cohort_id=cohort.id, name=f"Lulusan {i + 1}",
                                  phone=f"+62812{10000000 + i}", skill=cohort.skill,
                                  language="id"))
        session.add_all(grads)
        session.flush()
        info["started_with"] = _start_checkins(session, settings, cohorts, grads,
                                               CheckInRound, utcnow)
    with db.session() as session:
        info["conversations"] = dict(session.execute(
            select(Conversation.flow, func.count()).group_by(Conversation.flow)).all())
        info["states"] = dict(session.execute(
            select(Conversation.state, func.count()).group_by(Conversation.state)).all())
        rows = session.execute(select(Graduate.phone, Graduate.name).order_by(Graduate.id)).all()
    db.dispose()
    in_checkin = info["conversations"].get("checkin", 0)
    if in_checkin != graduates:
        raise SystemExit(f"setup: {in_checkin} of {graduates} graduates are mid check-in "
                         f"(conversations by flow: {info['conversations']})")
    per_thread = [[(r.phone, r.name) for k, r in enumerate(rows) if k % threads == t]
                  for t in range(threads)]
    return per_thread, info


def _start_checkins(session, settings, cohorts, grads, CheckInRound, utcnow) -> str:
    """Open a round per cohort: ``bot.checkins.start_round`` if present, else begin_checkin."""
    now = utcnow()
    try:
        from bot import checkins
    except ImportError:
        checkins = None
    if checkins is not None and hasattr(checkins, "start_round"):
        for cohort in cohorts:
            _call(checkins.start_round, session=session, settings=settings, cohort=cohort,
                  scheduled_for=now, trigger="manual", ignore_quiet_hours=True, now=now)
        session.flush()
        return "bot.checkins.start_round (one round per cohort)"
    from bot.conversations.checkin import begin_checkin

    rounds = {}
    for cohort in cohorts:
        rounds[cohort.id] = CheckInRound(cohort_id=cohort.id, scheduled_for=now, trigger="manual")
        session.add(rounds[cohort.id])
    session.flush()
    for grad in grads:
        begin_checkin(session, settings, grad, rounds[grad.cohort_id])
    session.flush()
    return "bot.conversations.checkin.begin_checkin (per graduate)"


# --------------------------------------------------------------------------------------------
# Signed requests and the wrk script.


def conversation_order(grads: list[tuple[str, str]], wave: int):
    """(graduate, step) pairs, forever: waves of ``wave`` graduates answer the whole check-in.

    Within a wave every graduate sends step 0, then every one step 1, and so on, so a short run
    still covers every question (status, where, uses the skill, rating, help) and a graduate's
    next answer comes ``wave`` requests after the previous one (answered by then). When every
    graduate is through, the next lap is small talk after the check-in.
    """
    steps = max(len(script) for script in SCRIPTS)
    lap = 0
    while True:
        for start in range(0, len(grads), wave):
            group = grads[start:start + wave]
            for step in range(steps):
                for grad in group:
                    yield grad, lap * steps + step
        lap += 1


def write_requests(path: Path, per_thread: list[list[tuple[str, str]]], total: int, url: str,
                   wave: int) -> list[list[str]]:
    """One request per line: ``signature TAB form body``; line i belongs to wrk thread i % T.

    Each thread has its own graduates (``per_thread``) in ``conversation_order``. Returns each
    thread's MessageSids in the order the thread sends them.
    """
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    threads = len(per_thread)
    orders = [conversation_order(grads, wave) for grads in per_thread]
    sids: list[list[str]] = [[] for _ in range(threads)]
    with path.open("w", encoding="utf-8") as out:
        for i in range(total):
            t = i % threads
            (phone, name), step = next(orders[t])
            script = SCRIPTS[int(phone[-6:]) % len(SCRIPTS)]
            body = (script[step] if step < len(script)
                    else AFTER_SCRIPT[(step - len(script)) % len(AFTER_SCRIPT)])
            sid = "SM" + uuid.uuid4().hex
            params = {
                "SmsMessageSid": sid, "NumMedia": "0", "ProfileName": name,
                "MessageType": "text", "SmsSid": sid, "WaId": phone[1:],
                "SmsStatus": "received", "Body": body, "To": WHATSAPP_FROM,
                "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid,
                "AccountSid": ACCOUNT_SID, "From": f"whatsapp:{phone}",
                "ApiVersion": "2010-04-01",
            }
            signature = validator.compute_signature(url, params)
            out.write(f"{signature}\t{urlencode(params)}\n")
            sids[t].append(sid)
    return sids


WRK_SCRIPT = r"""
-- Written by benchmarks/webhook.py. Serves a different pre-signed request on every call.
-- Arguments after "--": file=PATH nthreads=N path=/twilio/inbound
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local opts = {}
  for _, a in pairs(args) do
    local k, v = string.match(a, "^(%w+)=(.*)$")
    if k then opts[k] = v end
  end
  local nthreads = tonumber(opts.nthreads)
  reqs = {}
  total = 0
  sent = 0
  local i = 0
  for line in io.lines(opts.file) do
    if i % nthreads == tid then
      local sig, body = string.match(line, "^([^\t]+)\t(.*)$")
      total = total + 1
      reqs[total] = wrk.format("POST", opts.path, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = sig,
        ["User-Agent"] = "TwilioProxy/1.1",
      }, body)
    end
    i = i + 1
  end
  -- When the file runs out the run is too long for it: ask for a path that answers 404, so
  -- the run shows errors instead of repeating MessageSids.
  exhausted = wrk.format("GET", "/__benchmark_request_file_exhausted__")
  -- wrk calls request() once on thread 0's state before the run, to inspect it (wrk.c:
  -- script_verify_request); that call must not use up a request.
  verifying = (tid == 0)
end

function request()
  if verifying then
    verifying = false
    return reqs[1]
  end
  sent = sent + 1
  if sent > total then return exhausted end
  return reqs[sent]
end

function done(summary, latency, requests)
  local sent_by = {}
  local loaded, exhausted_calls = 0, 0
  for _, t in ipairs(threads) do
    local s, n = t:get("sent"), t:get("total")
    table.insert(sent_by, string.format("%d", math.min(s, n)))
    loaded = loaded + n
    if s > n then exhausted_calls = exhausted_calls + (s - n) end
  end
  io.write(string.format(
    'KABAR_WRK {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "loaded": %d, "exhausted_calls": %d, ' ..
    '"sent_by_thread": [%s]}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, loaded, exhausted_calls, table.concat(sent_by, ", ")))
end
"""


# --------------------------------------------------------------------------------------------
# One measured run: gunicorn up, wrk, gunicorn down.


@dataclass
class RunResult:
    name: str
    wrk: dict
    wrk_text: str
    worker_cpu: float = 0.0  # CPU seconds the gunicorn workers used while wrk ran
    workers: int = 0
    server_statuses: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.worker_cpu / max(self.wrk["requests"], 1)

    @property
    def worker_busy(self) -> float:
        """Share of the run the workers spent on a CPU (1.0: always running)."""
        return self.worker_cpu / max(self.workers * self.wrk["duration_us"] / 1e6, 1e-9)

    @property
    def rps(self) -> float:
        return self.wrk["requests"] / (self.wrk["duration_us"] / 1e6)

    @property
    def socket_errors(self) -> int:
        return sum(self.wrk[k] for k in ("connect", "read", "write", "timeout"))

    @property
    def non_2xx(self) -> int:
        return self.wrk["status"]

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non_2xx + self.wrk["exhausted_calls"]

    @property
    def ok_responses(self) -> int:
        # wrk counts a status above 399 as an error; this webhook answers 200 or an error.
        return self.wrk["requests"] - self.wrk["status"]


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()  # the fields after "(comm)", from state on


def workers_of(master: int) -> list[int]:
    """The gunicorn workers: processes whose parent is ``master``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(_stat_fields(int(entry.name))[1]) == master:
                    found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def wait_healthy(proc: subprocess.Popen, port: int, log: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    url = f"http://127.0.0.1:{port}/healthz"
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode} before it was healthy:\n"
                               + tail(log))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {deadline_s:.0f}s ({last}):\n" + tail(log))


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def measured_run(procs: Procs, name: str, app_spec: str, extra_args: list[str], port: int,
                 env: dict, work: Path, args, lua: Path, requests_file: Path,
                 profile_to: Path | None = None) -> RunResult:
    log = work / f"{name}-gunicorn.log"
    access = work / f"{name}-access.log"
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(args.workers),
           "-b", f"127.0.0.1:{port}", "--graceful-timeout", "15",
           # Server-side count of answered requests, to check the database against.
           "--access-logfile", str(access), "--access-logformat", "%(s)s %(m)s %(U)s",
           *extra_args, app_spec]
    with log.open("w") as log_fh:
        server = procs.start(cmd, env=env, cwd=work, stdout=log_fh, stderr=subprocess.STDOUT)
    try:
        wait_healthy(server, port, log, HEALTH_DEADLINE_S)
        url = f"http://127.0.0.1:{port}{INBOUND_PATH}"
        wrk_cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}",
                   f"-d{args.duration}s", f"--timeout={args.timeout}s", "--latency",
                   "-s", str(lua), url, "--",
                   f"file={requests_file}", f"nthreads={args.threads}", f"path={INBOUND_PATH}"]
        print(f"[{name}] load average {os.getloadavg()[0]:.2f}; "
              f"{' '.join(wrk_cmd[:6])} ... {url}", flush=True)
        spy = None
        if profile_to is not None:
            spy = procs.start([args.py_spy, "record", "-p", str(server.pid), "--subprocesses",
                               "--idle", "--nonblocking", "-r", "100", "-f", "raw",
                               "-d", str(args.duration), "-o", str(profile_to)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers = workers_of(server.pid)
        cpu_before = cpu_seconds(workers)
        wrk = procs.start(wrk_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = wrk.communicate(timeout=args.duration + 120)
            worker_cpu = cpu_seconds(workers) - cpu_before
        finally:
            procs.stop(wrk, grace=5)
            if spy is not None:
                try:
                    spy.wait(timeout=30)
                finally:
                    procs.stop(spy, grace=5)
        if wrk.returncode != 0 or "KABAR_WRK" not in out:
            raise RuntimeError(f"wrk failed ({wrk.returncode}):\n{out}\n{err}")
        match = re.search(r"^KABAR_WRK (\{.*\})$", out, re.M)
        result = RunResult(name, json.loads(match.group(1)),
                           out[:match.start()].rstrip() + ("\n" + err if err.strip() else ""),
                           worker_cpu=worker_cpu, workers=len(workers))
    finally:
        # SIGTERM: the workers finish the requests they hold (those wrk left in flight) first.
        procs.stop(server)
    for line in access.read_text().splitlines():
        status, method, path = (line.split(" ", 2) + ["", ""])[:3]
        if path == INBOUND_PATH and method == "POST":
            result.server_statuses[status] = result.server_statuses.get(status, 0) + 1
    return result


# --------------------------------------------------------------------------------------------
# --profile: where the gunicorn workers spent their wall time (py-spy samples, idle included).

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def summarize_profile(raw: Path, top: int = 25) -> str:
    """A text summary of py-spy's raw stacks: the workers' time, request by request."""
    worker_total = in_request = 0
    inclusive: dict[str, int] = {}
    leaf: dict[str, int] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        processes = sum(1 for f in frames if f.startswith("process "))
        if processes < 2:
            continue  # the gunicorn master
        n = int(count)
        worker_total += n
        frames = [f for f in frames if not f.startswith("process ")]
        if not any(f.startswith("SyncWorker.handle_request ") for f in frames):
            continue
        in_request += n
        seen = set()
        for f in frames:
            m = _FRAME.match(f)
            if m and m["file"].startswith(("bot/", "migrations/")) and f not in seen:
                seen.add(f)
                inclusive[f] = inclusive.get(f, 0) + n
        m = _FRAME.match(frames[-1])
        key = f"{m['func']} ({m['file']})" if m else frames[-1]
        leaf[key] = leaf.get(key, 0) + n
    if not worker_total:
        return "profile: no worker samples (is py-spy allowed to attach here?)"
    out = [f"profile: {worker_total} samples of the workers' wall time, {in_request} "
           f"({100 * in_request / worker_total:.0f}%) inside a request, the rest waiting "
           "for a connection",
           "  project frames, inclusive share of in-request time (file:line is the line "
           "running in that frame):"]
    for frame, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"    {100 * n / max(in_request, 1):5.1f}%  {frame}")
    out.append("  innermost frames (self time, any code), share of in-request time:")
    for frame, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:15]:
        out.append(f"    {100 * n / max(in_request, 1):5.1f}%  {frame}")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# After the run: what the database holds.


def drain_inbox(url: str, config: Path) -> dict:
    """Handle everything the webhook recorded, as `kabar dispatch` does, and time it.

    The webhook only records; this is the rest of each message's work (conversation step,
    progress report, reply into the outbox), measured on its own so both halves are known.
    """
    from bot.config import load_settings
    from bot.db import Database
    from bot.inbox import backlog, handle_waiting

    settings = load_settings(config, environ={})
    db = Database(url)
    handled, wall, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        n = handle_waiting(db, settings, limit=500)
        if n == 0:
            break
        handled += n
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    left = backlog(db.engine)
    db.dispose()
    return {"handled": handled, "seconds": wall, "per_second": handled / max(wall, 1e-9),
            "cpu_ms": 1000 * cpu / max(handled, 1), "left": left}


def database_counts(url: str, issued_sids: set[str]) -> dict:
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import INBOUND, OUTBOUND, Message, ProgressReport

    db = Database(url)
    with db.session() as session:
        inbound_sids = session.scalars(
            select(Message.twilio_sid).where(Message.direction == INBOUND)).all()
        counts = {
            "inbound": len(inbound_sids),
            "inbound_distinct_sids": len(set(inbound_sids)),
            "inbound_not_issued": len(set(inbound_sids) - issued_sids),
            "outbound": session.scalar(select(func.count()).select_from(Message)
                                       .where(Message.direction == OUTBOUND)),
            "reports_answered": session.scalar(
                select(func.count()).select_from(ProgressReport)
                .where(ProgressReport.employment_status.is_not(None))),
            "reports_completed": session.scalar(
                select(func.count()).select_from(ProgressReport)
                .where(ProgressReport.completed_at.is_not(None))),
        }
    db.dispose()
    return counts


# --------------------------------------------------------------------------------------------


def machine_line() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    wrk_version = (wrk_version.splitlines() or ["wrk ?"])[0].split(" Copyright")[0]
    versions = []
    for dist in ("gunicorn", "Flask", "SQLAlchemy", "twilio"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{dist} {version(dist)}")
    return (f"{os.cpu_count()} CPUs ({cpu or platform.processor()}), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"{', '.join(versions)}, {wrk_version}")


def ms(us: float) -> str:
    return f"{us / 1000:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (default 16)")
    parser.add_argument("--graduates", type=int, default=2000, help="graduates (default 2000)")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn -w (default 2)")
    parser.add_argument("--timeout", type=int, default=10,
                        help="wrk --timeout in seconds; slower answers count as errors (10)")
    parser.add_argument("--rate", type=int, default=6000,
                        help="requests generated per second of --duration (default 6000)")
    parser.add_argument("--wave", type=int, default=50,
                        help="graduates per wrk thread answering the check-in together "
                             "(default 50; see conversation_order)")
    parser.add_argument("--target", type=float, default=0.3,
                        help="minimum ratio Kabar/bare to PASS (default 0.3)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (database, logs, requests)")
    parser.add_argument("--only-project", action="store_true",
                        help="skip the bare run (for profiling); no ratio then")
    parser.add_argument("--profile", metavar="FILE", type=Path,
                        help="sample Kabar's workers with py-spy during its run (wall time, "
                             "idle included), write the raw stacks to FILE and print a summary "
                             "(pip install py-spy; slows Kabar down a little)")
    args = parser.parse_args(argv)
    if args.profile:
        args.py_spy = (shutil.which("py-spy")
                       or shutil.which("py-spy", path=str(Path(sys.executable).parent)))
        if not args.py_spy:
            parser.error("--profile needs py-spy (pip install py-spy)")
        args.profile = args.profile.resolve()
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")

    signal.signal(signal.SIGTERM, _on_sigterm)
    procs = Procs()
    work = Path(tempfile.mkdtemp(prefix="kabar-bench-"))
    try:
        return _run(args, procs, work)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted: stopping the servers and wrk", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(args, procs: Procs, work: Path) -> int:
    from bot.config import load_settings

    port, bare_port = free_port(), free_port()
    while bare_port == port:
        bare_port = free_port()
    db_url = f"sqlite:///{work / 'kabar.db'}"
    config = work / "config.toml"
    transport = pick_transport()
    write_config(config, db_url, port, transport)
    settings = load_settings(config, environ={})

    t0 = time.monotonic()
    schema = create_schema(db_url)
    per_thread, info = seed(settings, args.graduates, args.threads)
    total = args.duration * args.rate
    total += (-total) % args.threads
    requests_file = work / "requests.tsv"
    url = settings.app.public_url.rstrip("/") + INBOUND_PATH
    # A graduate's next answer must not be sent while the previous one is still in flight.
    wave = max(args.wave, 2 * args.connections // args.threads + 1)
    sids = write_requests(requests_file, per_thread, total, url, wave)
    lua = work / "requests.lua"
    lua.write_text(WRK_SCRIPT, encoding="utf-8")
    print(f"setup {time.monotonic() - t0:.1f}s: schema by {schema}; {args.graduates} graduates "
          f"in {max(1, min(8, args.graduates // 250))} cohorts, check-ins opened with "
          f"{info['started_with']}; conversations {info['states']}; "
          f"{total} signed requests ({requests_file.stat().st_size // 1024} KiB); "
          f"transport {transport}", flush=True)

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KABAR_", "TWILIO_"))}
    env["KABAR_CONFIG"] = str(config)
    # The checkout this script is in, like the in-process imports above.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"

    project = measured_run(procs, "kabar", "bot:create_app()", [], port, env, work, args, lua,
                           requests_file, profile_to=args.profile)
    issued = set()
    for t, n in enumerate(project.wrk["sent_by_thread"]):
        issued.update(sids[t][:n])
    inbox = drain_inbox(db_url, config)
    counts = database_counts(db_url, issued)
    bare = None
    if not args.only_project:
        bare = measured_run(procs, "bare", "bare_app:app", ["--pythonpath", str(HERE)],
                            bare_port, env, work, args, lua, requests_file)

    # ---- report
    title = (f"Kabar webhook benchmark: gunicorn -w {args.workers} (sync), "
             f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, "
             f"{args.graduates} graduates mid check-in, SQLite, signatures on")
    print("\n" + title)
    print("machine: " + machine_line())
    for run in (project, bare):
        if run is None:
            continue
        print(f"\n--- wrk output, {run.name} ---\n{run.wrk_text}")
    print("\n=== results ===")
    rows = [("Kabar POST /twilio/inbound", project)] + ([("bare Flask app", bare)] if bare else [])
    for label, run in rows:
        w = run.wrk
        print(f"{label:28s} {run.rps:8.1f} req/s   p50 {ms(w['p50_us'])}, "
              f"p90 {ms(w['p90_us'])}, p99 {ms(w['p99_us'])}, max {ms(w['max_us'])}   "
              f"requests {w['requests']}, non-2xx {run.non_2xx}, socket errors "
              f"{run.socket_errors} (connect {w['connect']}, read {w['read']}, "
              f"write {w['write']}, timeout {w['timeout']})")
        print(f"{'':28s} workers' CPU {run.cpu_ms_per_request:.2f} ms per request; each "
              f"worker was on a CPU {100 * run.worker_busy:.0f}% of the run")
        if w["exhausted_calls"]:
            print(f"{'':28s} request file exhausted: {w['exhausted_calls']} calls past its "
                  f"{w['loaded']} requests (raise --rate)")

    server_ok = project.server_statuses.get("200", 0)
    server_other = sum(v for k, v in project.server_statuses.items() if k != "200")
    in_flight = server_ok - project.ok_responses
    print(f"\nmessages: {counts['inbound']} inbound rows in the database "
          f"({counts['inbound_distinct_sids']} distinct MessageSids); wrk completed "
          f"{project.ok_responses} responses with 200; gunicorn answered {server_ok} with 200 "
          f"and {server_other} otherwise ({in_flight} of them in flight when wrk stopped, "
          f"their answers unread); wrk issued {sum(project.wrk['sent_by_thread'])} requests (the "
          f"others were still queued, never answered, when the run ended)")
    print(f"inbox worker (one process, after the run): handled {inbox['handled']} recorded "
          f"messages in {inbox['seconds']:.1f}s = {inbox['per_second']:.0f} messages/s, "
          f"{inbox['cpu_ms']:.2f} ms CPU each; {inbox['left']} left waiting")
    print(f"conversations: {counts['reports_answered']} reports with a status, "
          f"{counts['reports_completed']} completed; {counts['outbound']} outbound rows "
          f"(prompts and replies) in the outbox")
    lost = (counts["inbound"] != server_ok
            or counts["inbound_distinct_sids"] != counts["inbound"]
            or counts["inbound_not_issued"] != 0
            or not (project.ok_responses <= counts["inbound"]
                    <= project.ok_responses + args.connections))
    if lost:
        print("database check: FAIL (inbound rows do not match the 200 answers)")
    else:
        print(f"database check: OK, every 200 answer is one inbound row: {counts['inbound']} = "
              f"{project.ok_responses} counted by wrk + {in_flight} answered after wrk stopped")

    errors = project.errors + (bare.errors if bare else 0)
    verdict_bits = []
    if bare:
        ratio = project.rps / bare.rps
        print(f"ratio Kabar/bare: {ratio:.3f} ({project.rps:.1f} / {bare.rps:.1f} req/s), "
              f"target >= {args.target}; by the workers' CPU per request: "
              f"{bare.cpu_ms_per_request / max(project.cpu_ms_per_request, 1e-9):.3f}")
        if ratio < args.target:
            verdict_bits.append(f"ratio {ratio:.3f} < {args.target}")
    if errors:
        verdict_bits.append(f"{errors} errors")
    if lost:
        verdict_bits.append("database does not match the answers")
    print(f"errors: Kabar {project.errors}" + (f", bare {bare.errors}" if bare else ""))
    if args.profile:
        print(f"\n{summarize_profile(args.profile)}\n(raw py-spy stacks: {args.profile})")
    if verdict_bits:
        print("FAIL: " + "; ".join(verdict_bits))
    else:
        print("PASS" + ("" if bare else " (no ratio: --only-project)"))
    if errors or lost:
        for run in (project, bare):
            if run and run.errors:
                log = tail(work / f"{run.name}-gunicorn.log")
                print(f"\n{run.name} gunicorn log (tail):\n{log}")
        return 1
    return 2 if verdict_bits else 0


if __name__ == "__main__":
    sys.exit(main())
