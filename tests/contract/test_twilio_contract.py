"""Contract test: Kabar's Twilio requests against Twilio's official OpenAPI description.

Stoplight Prism (``prism mock``, installed by ``npm ci`` in this folder) serves a mock of the
Twilio REST API built from ``twilio_api_v2010.json`` (Twilio's twilio-oai repository, laid out
in ``../shared/twilio-oai`` beside the project). ``prism mock`` always validates each request
against the operation it matches (path, query, form body, formats and patterns, authentication)
and answers a request that violates the description with 422 (or 401), logging the violation;
``--errors`` adds that a mock *answer* that violates the description fails too (500). Each check
sends one kind of message Kabar sends through the real twilio transport
(``twilio.api_base_url`` pointed at Prism) and requires a 2xx answer, no ``sl-violations``
header and no violation in Prism's log.

The reconciliation list call is the exception on one point: every example answer Twilio's
description gives for listing messages breaks its own schema (relative ``uri``,
``first_page_uri`` ... where the schema says ``format: uri``), so under ``--errors`` Prism can
only answer it 500. That call goes to a second Prism without ``--errors``: the request must still
pass validation with no request violation, and the only violations allowed are those of Twilio's
example answer, which are printed.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from bot.config import Settings, load_settings
from bot.transports import OutboundRequest, SendResult, status_callback_url
from bot.transports.twilio import TwilioTransport

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]
SPEC = PROJECT_ROOT.parent / "shared" / "twilio-oai" / "twilio_api_v2010.json"
PRISM = HERE / "node_modules" / ".bin" / "prism"
START_TIMEOUT_SECONDS = 60.0
LOG_TIMEOUT_SECONDS = 10.0

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "contract-test-auth-token"
SENDER = "whatsapp:+14155238886"
MESSAGING_SERVICE_SID = "MG" + "a" * 32
TEMPLATE_SID = "HX" + "c" * 32
GRADUATE = "+6281234567890"

# What Prism logs for a request that breaks the description, and for any violation or error.
REQUEST_VIOLATION = re.compile(r"Violation: request|did not pass the validation|UNPROCESSABLE|"
                               r"NO_PATH_MATCHED|UNAUTHORIZED|INVALID_CONTENT_TYPE")
VIOLATION = re.compile(r"Violation|did not pass the validation|✖|UNPROCESSABLE|"
                       r"NO_PATH_MATCHED|UNAUTHORIZED|INVALID_CONTENT_TYPE|VIOLATIONS")
ANSWERED = re.compile(r"Responding with|Request terminated")
# The empty page among the description's examples of the list answer (one page, no next one).
EMPTY_LIST_EXAMPLE = "readEmptySentdateGreater"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SPEC.is_file(),
                       reason=f"Twilio's OpenAPI description is not at {SPEC} "
                              "(../shared/twilio-oai/twilio_api_v2010.json beside the project)"),
    pytest.mark.skipif(not PRISM.exists(),
                       reason=f"Stoplight Prism is not installed: run `npm ci` in {HERE}"),
]


class Prism:
    """``prism mock`` on a free loopback port, its output in a log file."""

    def __init__(self, log: Path, errors: bool = True) -> None:
        self.log = log
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [str(PRISM), "mock", str(SPEC), "-p", str(self.port), "-h", "127.0.0.1",
             *(["--errors"] if errors else [])],
            cwd=HERE, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self, start: int = 0) -> str:
        return self.log.read_bytes()[start:].decode("utf-8", errors="replace")

    def offset(self) -> int:
        return self.log.stat().st_size

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while "Prism is listening" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"prism exited with {self.proc.returncode}:\n"
                                     + self.output()[-3000:])
            if time.monotonic() > deadline:
                raise AssertionError(f"prism did not start in {START_TIMEOUT_SECONDS:g}s:\n"
                                     + self.output()[-3000:])
            time.sleep(0.05)

    def answers_since(self, start: int, count: int) -> str:
        """Prism's log since ``start`` once it has logged ``count`` answers (with a deadline)."""
        deadline = time.monotonic() + LOG_TIMEOUT_SECONDS
        while True:
            text = self.output(start)
            if len(ANSWERED.findall(text)) >= count:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"prism logged fewer than {count} answers:\n{text}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


@pytest.fixture(scope="module")
def prisms(tmp_path_factory) -> Iterator[dict[str, Prism]]:
    """Both servers, started side by side (each takes seconds to read the description)."""
    folder = tmp_path_factory.mktemp("prism")
    servers: dict[str, Prism] = {}
    try:
        servers["strict"] = Prism(folder / "prism-errors.log", errors=True)
        servers["lenient"] = Prism(folder / "prism.log", errors=False)
        for server in servers.values():
            server.wait_until_listening()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def prism(prisms) -> Prism:
    """``prism mock --errors``: invalid requests and invalid mock answers both fail."""
    return prisms["strict"]


@pytest.fixture
def prism_lenient(prisms) -> Prism:
    """``prism mock``: invalid requests fail; violations of the mock answers are only logged."""
    return prisms["lenient"]


def _settings(prism: Prism, **twilio) -> Settings:
    return load_settings(environ={}).with_overrides(
        app={"secret_key": "contract-secret", "public_url": "https://kabar.example.go.id"},
        transport={"kind": "twilio"},
        twilio={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
                "api_base_url": prism.url, **twilio},
    )


def _request(settings: Settings, **kw) -> OutboundRequest:
    """A request as ``bot.transports.request_for`` builds it: with Kabar's status callback."""
    return OutboundRequest(message_id=1, to=GRADUATE, status_callback=status_callback_url(settings),
                           **{"body": "Apa kabar, Siti? Balas 1-4.", **kw})


def _last_answer(transport: TwilioTransport):
    """The last HTTP answer the SDK got (status, lower-cased headers)."""
    response = transport.client.http_client._test_only_last_response
    assert response is not None
    return response.status_code, {k.lower(): v for k, v in (response.headers or {}).items()}


def _assert_clean(prism: Prism, transport: TwilioTransport, start: int, requests_made: int):
    """Every request got a 2xx, no violation header, no violation in Prism's log."""
    log = prism.answers_since(start, requests_made)
    status, headers = _last_answer(transport)
    assert 200 <= status < 300, (status, log)
    assert "sl-violations" not in headers, headers["sl-violations"]
    assert not VIOLATION.search(log), log
    assert log.count("The request passed the validation rules") == requests_made, log


def _send(prism: Prism, settings: Settings, req: OutboundRequest) -> SendResult:
    transport = TwilioTransport(settings)
    start = prism.offset()
    result = transport.send(req)
    _assert_clean(prism, transport, start, 1)
    assert result.sid.startswith("SM")
    return result


def test_prism_rejects_a_request_that_breaks_the_description(prism):
    """The check can fail: a message without ``To`` is refused by Prism, with the violation."""
    start = prism.offset()
    answer = requests.post(f"{prism.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                           data={"From": SENDER, "Body": "Halo"},
                           auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)

    assert answer.status_code == 422
    assert "'To'" in answer.text
    assert VIOLATION.search(prism.answers_since(start, 1))


def test_free_form_body_from_the_whatsapp_sender(prism):
    settings = _settings(prism, whatsapp_from=SENDER)

    _send(prism, settings, _request(settings))


def test_template_with_content_variables_from_the_whatsapp_sender(prism):
    settings = _settings(prism, whatsapp_from=SENDER)

    _send(prism, settings, _request(settings, content_sid=TEMPLATE_SID,
                                    content_variables={"1": "Siti Aminah", "2": "Menjahit 3"}))


def test_free_form_body_through_a_messaging_service(prism):
    settings = _settings(prism, messaging_service_sid=MESSAGING_SERVICE_SID)

    _send(prism, settings, _request(settings))


def test_template_through_a_messaging_service(prism):
    settings = _settings(prism, messaging_service_sid=MESSAGING_SERVICE_SID)

    _send(prism, settings, _request(settings, content_sid=TEMPLATE_SID,
                                    content_variables={"1": "Operator jahit", "2": "PT Sepatu",
                                                       "3": "Pekalongan", "4": "30 Juni",
                                                       "5": "J7K2"}))


def test_reconciliation_lists_the_recipients_messages(prism_lenient):
    """``find_sent``: the message list filtered by recipient, read through the SDK."""
    prism = prism_lenient
    settings = _settings(prism, whatsapp_from=SENDER)
    transport = TwilioTransport(settings)
    http = transport.client.http_client
    send = http.request
    asked = []

    def request_empty_page(method, url, **kw):  # Prism: answer with the empty-page example
        asked.append((method, kw.get("params")))
        kw["headers"] = {**(kw.get("headers") or {}), "Prefer": f"example={EMPTY_LIST_EXAMPLE}"}
        return send(method, url, **kw)

    http.request = request_empty_page
    start = prism.offset()

    found = transport.find_sent(_request(settings), datetime.now(UTC) - timedelta(minutes=2))

    log = prism.answers_since(start, 1)
    status, headers = _last_answer(transport)
    assert status == 200, log
    assert found is None
    assert [(method, params.get("To")) for method, params in asked] == [
        ("GET", f"whatsapp:{GRADUATE}")]
    assert log.count("The request passed the validation rules") == 1, log
    assert not REQUEST_VIOLATION.search(log), log
    violations = json.loads(headers.get("sl-violations", "[]"))
    assert all(v["location"][0] == "response" for v in violations), violations
    assert {v["code"] for v in violations} <= {"format"}, violations
    for v in violations:  # Twilio's example answer against Twilio's schema, not Kabar's request
        print(f"twilio-oai example answer: {'.'.join(v['location'])}: {v['message']}")
