"""gunicorn settings for Kabar's web service:
``gunicorn --config gunicorn.conf.py "bot:create_app()"``.

Read from the environment, so the systemd unit and the Procfile share one file:
``KABAR_WEB_BIND`` (default 127.0.0.1:8000) and ``KABAR_WEB_WORKERS`` (default 4).
"""

import os

bind = os.environ.get("KABAR_WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("KABAR_WEB_WORKERS", "4"))
worker_class = "sync"
# The largest downloads (every message of a year as XLSX) take minutes on a big database.
timeout = 300
graceful_timeout = 30
# A worker is replaced after this many requests, so a slow growth of memory never adds up.
max_requests = 2000
max_requests_jitter = 200
# No query strings in the access log: they can hold searched names and numbers.
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
