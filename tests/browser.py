"""Headless Chromium (Debian's package) driven by Playwright, for tests of pages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(Debian: apt-get install chromium)")


@contextmanager
def chromium_page(base_url: str | None = None) -> Iterator:
    """A fresh browser page (its own profile); closed afterwards."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base_url, locale="id-ID",
                                          timezone_id="Asia/Jakarta")
            yield context.new_page()
        finally:
            browser.close()


def sign_in(page, name: str, password: str) -> None:
    """Sign in through the login form, as a person would."""
    page.goto("/staff/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/staff/dashboard")
