"""Response headers for every page and download, the client address behind a reverse proxy,
and who may reach the simulator.

Headers: a Content Security Policy that allows scripts, styles and requests only from Kabar
itself (no inline script or style: the console's scripts are files under
``bot/staff/static/``), no framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``),
``nosniff``, a referrer policy that sends no path to other sites, HSTS when ``app.public_url``
is https, and ``Cache-Control: no-store`` on the console and the simulator: their pages and
downloads carry graduates' names, numbers and answers.

The simulator skips Twilio's signature check and shows every graduate, so it answers only in
``kabar demo`` (bound to loopback, and only to requests whose Host header names a loopback
address, so a web page elsewhere cannot reach it through DNS rebinding), or with an explicit
``transport.kind = "simulator"`` to a signed-in admin or staff user.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, abort, current_app, redirect, request, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HSTS = "max-age=31536000; includeSubDomains"
PRIVATE_PREFIXES = ("/staff", "/simulator")
LOOPBACK_NAMES = {"localhost"}


def init_app(app: Flask) -> None:
    settings = app.extensions["kabar.settings"]
    if settings.app.trusted_proxies:
        hops = settings.app.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    https = settings.app.public_url.startswith("https://")

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if https:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith(PRIVATE_PREFIXES) and not _is_static(request.path):
            headers["Cache-Control"] = "no-store"
            headers.pop("Expires", None)
            headers.pop("Last-Modified", None)
            headers.pop("ETag", None)
        return response


def _is_static(path: str) -> bool:
    return "/static/" in path


def is_loopback_host(host: str) -> bool:
    """'127.0.0.1:5000', 'localhost', '[::1]:5000' -> True; anything else -> False."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def guard_simulator():
    """Before every simulator request: demo on loopback, or a signed-in admin/staff user."""
    if current_app.config.get("KABAR_DEMO"):
        if not is_loopback_host(request.host):
            abort(404)
        return None
    from flask_login import current_user

    if not current_user.is_authenticated:
        if request.method == "GET" and not request.path.startswith("/simulator/api/"):
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
        abort(401)
    if not current_user.can_write:
        abort(403)
    return None
