"""The baseline for ``benchmarks/webhook.py``: the least a Flask app can do for a Twilio webhook.

One POST endpoint at the same path as Kabar's, parsing the same form body and answering the same
empty TwiML, with no signature check and no database. Served by the same gunicorn command (two
sync workers), it shows what Flask + gunicorn + wrk cost on this machine, so the project's
throughput can be read as a ratio of it.

Run by the harness as ``gunicorn -w 2 --pythonpath benchmarks bare_app:app``.
"""

from __future__ import annotations

from flask import Flask, request
from twilio.twiml.messaging_response import MessagingResponse

app = Flask(__name__)


@app.post("/twilio/inbound")
def inbound():
    # Parse the form, as the real webhook must, so body parsing costs the same on both sides.
    request.form.get("Body")
    return str(MessagingResponse()), 200, {"Content-Type": "text/xml"}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
