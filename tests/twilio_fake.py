"""A loopback fake of Twilio's Messages API, for driving the real twilio SDK in tests.

``TwilioFake`` is a real HTTP server on 127.0.0.1 (a free port) that answers like
``https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json``:

- ``POST`` (form-encoded) checks HTTP basic auth (401 otherwise), requires ``To``, one of
  ``From``/``MessagingServiceSid`` and one of ``Body``/``ContentSid`` (Twilio-style 400 JSON
  otherwise) and answers 201 with a Twilio-shaped message resource, status ``queued``.
- ``GET`` lists the accepted messages in Twilio's page shape, newest first, filtered by ``To``,
  ``From``, ``DateSent``, ``DateSent>`` (on or after) and ``DateSent<`` (on or before).

Faults, consumed in this order by each POST that passed the auth check:
``drop_connection_next(n)`` closes the socket without an answer (by default before accepting the
message; ``after_accept=True`` accepts it first, like a reply lost on the way back),
``fail_next(n, http_status, code)`` answers an error, ``fail_for(number, http_status, code)``
answers an error for every message to one recipient. ``latency`` (seconds) delays every answer.
A 429 answer carries ``Retry-After: {retry_after}`` (1 by default; None leaves it out).

``in_flight`` counts the message requests being answered right now and ``max_in_flight`` the
most there were at once (requests overlapping in time, as a concurrent sender makes them).

Everything is recorded: ``accepted`` (one dict per accepted message) and ``requests`` (one dict
per request, with the answer given). All state is guarded by one lock.

``post_status_callbacks(status)`` plays Twilio's side of delivery: for each accepted message with
a ``StatusCallback`` it POSTs ``MessageSid``/``MessageStatus``/``AccountSid``/``To``/``From``,
signed with the auth token exactly as Twilio signs (``X-Twilio-Signature`` over the callback
URL and the parameters), optionally to another base URL (a test's live server) than the one the
callback names (the app's ``public_url``, which tests cannot reach).

The ``twilio_fake`` fixture starts one per test with the test settings' credentials.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

API_VERSION = "2010-04-01"
_MESSAGES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages\.json$")

# Twilio's words for the error codes the fake answers with.
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21656: "The ContentVariables Parameter is invalid.",
    63016: "Failed to send freeform message because you are outside the allowed window. "
           "If you are using WhatsApp, please use a Message Template.",
}


def error_body(http_status: int, code: int, message: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message or ERROR_MESSAGES.get(code, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": http_status}


def _strip_channel(address: str) -> str:
    return address.split(":", 1)[1] if ":" in address else address


def _parse_filter_date(text: str) -> datetime | date:
    """Twilio accepts ``YYYY-MM-DD`` or an ISO 8601 datetime in the DateSent filters."""
    text = text.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _on_or_after(sent: datetime, bound: datetime | date) -> bool:
    return sent.date() >= bound if type(bound) is date else sent >= bound


def _on_or_before(sent: datetime, bound: datetime | date) -> bool:
    return sent.date() <= bound if type(bound) is date else sent <= bound


class TwilioFake:
    """The fake's state and controls; ``start()`` serves it, ``url`` is its base URL."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = 0.0
        self.retry_after: str | None = "1"
        self.in_flight = 0
        self.max_in_flight = 0
        self.accepted: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._resources: list[dict[str, Any]] = []  # Twilio-shaped, in order of acceptance
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._fail_next: list[tuple[int, int, str | None]] = []
        self._fail_for: dict[str, tuple[int, int, str | None]] = {}
        self._drop_next: list[bool] = []  # one entry per drop; True = after accepting
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> TwilioFake:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="twilio-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- fault injection ----------------------------------------------------------------------

    def fail_next(self, n: int = 1, http_status: int = 429, code: int = 20429,
                  message: str | None = None) -> None:
        """Answer the next ``n`` message requests with an error (default: 429 rate limit)."""
        with self._lock:
            self._fail_next.extend([(http_status, code, message)] * n)

    def fail_for(self, to_number: str, http_status: int = 400, code: int = 21211,
                 message: str | None = None) -> None:
        """Answer every message to ``to_number`` with an error (default: 21211 invalid number)."""
        with self._lock:
            self._fail_for[_strip_channel(to_number)] = (http_status, code, message)

    def drop_connection_next(self, n: int = 1, after_accept: bool = False) -> None:
        """Close the connection without an answer on the next ``n`` message requests."""
        with self._lock:
            self._drop_next.extend([after_accept] * n)

    def reset_faults(self) -> None:
        with self._lock:
            self._fail_next.clear()
            self._fail_for.clear()
            self._drop_next.clear()

    # --- inspection ---------------------------------------------------------------------------

    def accepted_to(self, number: str) -> list[dict[str, Any]]:
        number = _strip_channel(number)
        with self._lock:
            return [m for m in self.accepted if _strip_channel(m["to"]) == number]

    def accepted_count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def wait_for(self, predicate: Callable[[TwilioFake], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(fake)`` holds (checked after every request), or time out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    # --- status callbacks ---------------------------------------------------------------------

    def post_status_callbacks(self, status: str, *, base_url: str | None = None,
                              error_code: str | None = None,
                              sids: Collection[str] | None = None,
                              timeout: float = 10.0) -> list[tuple[str, int]]:
        """POST a signed status callback ``status`` for every accepted message that asked for
        one (or only those in ``sids``); return (SID, HTTP status of the answer) per callback.

        The signature is computed over the callback URL the message named, as Twilio does; with
        ``base_url`` the request goes to that scheme and host instead (same path and query).
        """
        from twilio.request_validator import RequestValidator

        validator = RequestValidator(self.auth_token)
        with self._lock:
            targets = [dict(m) for m in self.accepted if m["status_callback"]
                       and (sids is None or m["sid"] in sids)]
        answers: list[tuple[str, int]] = []
        for message in targets:
            url = message["status_callback"]
            params = {"MessageSid": message["sid"], "SmsSid": message["sid"],
                      "MessageStatus": status, "SmsStatus": status,
                      "AccountSid": self.account_sid, "To": message["to"],
                      "From": message["from"] or ""}
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            if error_code:
                params["ErrorCode"] = str(error_code)
            target = url
            if base_url:
                parts = urlsplit(url)
                target = base_url.rstrip("/") + parts.path + (f"?{parts.query}"
                                                              if parts.query else "")
            request = urllib.request.Request(
                target, data=urlencode(params).encode("utf-8"), method="POST",
                headers={"Content-Type": "application/x-www-form-urlencoded",
                         "X-Twilio-Signature": validator.compute_signature(url, params),
                         "User-Agent": "TwilioProxy/1.1"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    answers.append((message["sid"], response.status))
            except urllib.error.HTTPError as exc:
                answers.append((message["sid"], exc.code))
        return answers

    # --- behaviour (called by the handler) ----------------------------------------------------

    def _record_request(self, entry: dict[str, Any]) -> None:
        with self._changed:
            self.requests.append(entry)
            self._changed.notify_all()

    def _take_fault(self, to: str) -> tuple[str, Any] | None:
        with self._lock:
            if self._drop_next:
                return "drop", self._drop_next.pop(0)
            if self._fail_next:
                return "error", self._fail_next.pop(0)
            failure = self._fail_for.get(_strip_channel(to))
            if failure is not None:
                return "error", failure
        return None

    def _refuses(self, to: str) -> bool:
        with self._lock:
            return _strip_channel(to) in self._fail_for

    def _accept(self, account: str, form: dict[str, str]) -> dict[str, Any]:
        now = datetime.now(UTC)
        sid = "SM" + uuid.uuid4().hex
        body = form.get("Body", "")
        stamp = format_datetime(now)
        resource = {
            "account_sid": account,
            "api_version": API_VERSION,
            "body": body,
            "date_created": stamp,
            "date_sent": stamp,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From") or None,
            "messaging_service_sid": form.get("MessagingServiceSid") or None,
            "num_media": "0",
            "num_segments": str(max(1, -(-len(body) // 160))),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if form.get("From") else "accepted",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}/Media.json"},
            "to": form["To"],
            "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json",
        }
        record = {
            "sid": sid,
            "to": form["To"],
            "from": form.get("From") or None,
            "messaging_service_sid": form.get("MessagingServiceSid") or None,
            "body": form.get("Body"),
            "content_sid": form.get("ContentSid"),
            "content_variables": (json.loads(form["ContentVariables"])
                                  if form.get("ContentVariables") else None),
            "status_callback": form.get("StatusCallback"),
            "date_sent": now,
        }
        with self._changed:
            self._resources.append(resource)
            self.accepted.append(record)
            self._changed.notify_all()
        return resource

    def _list(self, account: str, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            resources = [r for r, rec in zip(self._resources, self.accepted, strict=True)
                         if self._matches(r, rec, account, query)]
        resources.reverse()  # Twilio lists newest first
        page_size = max(1, min(1000, int(query.get("PageSize", 50))))
        page = max(0, int(query.get("Page", 0)))
        chunk = resources[page * page_size:(page + 1) * page_size]
        base = f"/{API_VERSION}/Accounts/{account}/Messages.json"
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

        def page_uri(number: int) -> str:
            return base + "?" + urlencode({**filters, "PageSize": page_size, "Page": number})

        has_next = (page + 1) * page_size < len(resources)
        return {
            "messages": chunk,
            "page": page,
            "page_size": page_size,
            "start": page * page_size,
            "end": page * page_size + max(0, len(chunk) - 1),
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "next_page_uri": (page_uri(page + 1) + f"&PageToken=PA{page + 1}"
                              if has_next else None),
        }

    @staticmethod
    def _matches(resource: dict[str, Any], record: dict[str, Any], account: str,
                 query: dict[str, str]) -> bool:
        if resource["account_sid"] != account:
            return False
        if "To" in query and _strip_channel(resource["to"]) != _strip_channel(query["To"]):
            return False
        if "From" in query and _strip_channel(resource["from"] or "") != _strip_channel(
                query["From"]):
            return False
        sent: datetime = record["date_sent"]
        if "DateSent" in query:
            bound = _parse_filter_date(query["DateSent"])
            if not (_on_or_after(sent, bound) and _on_or_before(sent, bound)):
                return False
        if "DateSent>" in query and not _on_or_after(sent, _parse_filter_date(query["DateSent>"])):
            return False
        return not ("DateSent<" in query
                    and not _on_or_before(sent, _parse_filter_date(query["DateSent<"])))


class _Handler(BaseHTTPRequestHandler):
    fake: TwilioFake
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # header and body are two writes; avoid a 40 ms stall

    def log_message(self, *args: Any) -> None:
        pass  # quiet: the fake's record is in fake.requests

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def _handle(self, method: str) -> None:
        fake = self.fake
        if method != "POST":
            self._respond(method)
            return
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._respond(method)
        finally:
            with fake._lock:
                fake.in_flight -= 1

    def _respond(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        entry: dict[str, Any] = {"method": method, "path": parts.path, "query": query,
                                 "form": form, "at": time.monotonic()}
        try:
            status, payload = self._answer(method, parts.path, query, form, entry)
        except _Drop:
            entry["answer"] = "dropped"
            fake._record_request(entry)
            self.close_connection = True
            return
        if fake.latency:
            time.sleep(fake.latency)
        entry["answer"] = status
        fake._record_request(entry)
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 429 and fake.retry_after is not None:
            self.send_header("Retry-After", fake.retry_after)
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, method: str, path: str, query: dict[str, str], form: dict[str, str],
                entry: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fake = self.fake
        match = _MESSAGES_PATH.match(path)
        if match is None:
            return 404, error_body(404, 20404)
        account = match["account"]
        if not self._authorised() or account != fake.account_sid:
            return 401, error_body(401, 20003)
        if method == "GET":
            return 200, fake._list(account, query)
        fault = fake._take_fault(form.get("To", ""))
        if fault is not None:
            what, detail = fault
            if what == "drop":
                refused = self._valid(form) is not None or fake._refuses(form.get("To", ""))
                if detail and not refused:  # accepted, but the answer is lost
                    entry["sid"] = fake._accept(account, form)["sid"]
                raise _Drop
            http_status, code, message = detail
            return http_status, error_body(http_status, code, message)
        problem = self._valid(form)
        if problem is not None:
            return problem
        resource = fake._accept(account, form)
        entry["sid"] = resource["sid"]
        return 201, resource

    def _valid(self, form: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        if not form.get("To"):
            return 400, error_body(400, 21604)
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return 400, error_body(400, 21603)
        if not (form.get("Body") or form.get("ContentSid") or form.get("MediaUrl")):
            return 400, error_body(400, 21602)
        if form.get("ContentVariables"):
            try:
                json.loads(form["ContentVariables"])
            except ValueError:
                return 400, error_body(400, 21656)
        return None

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except ValueError:
            return False
        return user == self.fake.account_sid and password == self.fake.auth_token


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many senders connect at once

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (timeout test, interpreter exit) is not the fake's problem.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Drop(Exception):
    """Close the connection without answering."""


@pytest.fixture
def twilio_fake(settings) -> Iterator[TwilioFake]:
    """A running fake of Twilio that accepts the test settings' account SID and auth token."""
    fake = TwilioFake(settings.twilio.account_sid, settings.twilio.auth_token).start()
    yield fake
    fake.stop()
