"""Every console page on a phone (390×844 in Chromium): nothing scrolls sideways.

The pages are taken from the app's URL map (every GET route under ``/staff`` that answers with
a whole HTML page, plus the simulator), filled with ids from a seeded database whose data makes
pages wide: long institution, cohort, graduate and employer names, long messages with unbroken
words, many columns.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import chromium_page, needs_chromium, sign_in
from tests.live import serve
from tests.staff_helpers import PASSWORD
from tests.wide_pages import LONG_COHORT, LONG_WORD, page_urls, wide_fixture  # noqa: F401


@pytest.fixture
def app(settings, db):
    """The app as ``kabar demo`` serves it: the simulator answers on loopback without a
    sign-in, as a person trying it on a phone would find it."""
    from bot import create_app

    app = create_app(settings, db, demo=True)
    app.config["TESTING"] = True
    return app

pytestmark = [needs_chromium, pytest.mark.browser]

# The outermost elements that stick out on the right (named for the failure message).
CULPRITS = """() => Array.from(document.querySelectorAll('body *')).filter(el => {
  const r = el.getBoundingClientRect();
  return r.right > window.innerWidth + 1 && el.parentElement.getBoundingClientRect().right
    <= window.innerWidth + 1;
}).slice(0, 3).map(el => el.tagName.toLowerCase()
  + (typeof el.className === 'string' && el.className
     ? '.' + el.className.trim().split(/\\s+/).join('.') : ''))"""


@pytest.mark.parametrize(("language", "width"), [("id", 390), ("en", 390), ("id", 800)])
def test_no_console_page_scrolls_sideways_on_a_phone(app, wide, language, width):
    """At 390 px (a phone; also 800 px, a small tablet) no page is wider than the screen."""
    urls = page_urls(app, wide)
    assert {"/staff/dashboard", "/staff/log", "/staff/roster", f"/staff/jobs/{wide['job_id']}",
            "/simulator/"} <= set(urls)
    too_wide = {}
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": width, "height": 844})
        sign_in(page, "rina", PASSWORD)
        page.goto(f"/staff/dashboard?lang={language}")
        for url in urls:
            response = page.goto(url)
            assert response.status == 200, f"{url}: {response.status}"
            assert "text/html" in response.headers["content-type"], url
            widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            if widths[0] > widths[1]:
                too_wide[url] = (widths[0] - widths[1], page.evaluate(CULPRITS))
    assert too_wide == {}, f"pages wider than the phone (px too wide): {too_wide}"


def test_the_navigation_takes_one_line_on_a_phone(app, wide):
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, "rina", PASSWORD)
        header = page.locator("header.top").bounding_box()
        assert header["height"] <= 64  # one line: brand, menu button, language
        assert not page.locator("header.top nav a").first.is_visible()
        page.click("header.top .menu-button")
        page.locator("header.top nav a", has_text="Log balasan").wait_for()
        page.click("header.top nav a >> text=Log balasan")
        page.wait_for_url("**/staff/log")
        assert page.locator("table.replylog").is_visible()


@pytest.mark.parametrize(("language", "send", "kabar"), [
    ("id", "Kirim", "Kabar · pengumuman"), ("en", "Send", "Kabar · announcement")])
def test_the_simulator_on_a_phone(app, db, wide, language, send, kabar):
    """The list fills the screen; a graduate's chat then does, in the chosen language."""
    from bot.broadcasts import create_announcement
    from bot.dispatcher import Dispatcher

    with db.session() as session:
        create_announcement(session, app.extensions["kabar.settings"], [LONG_COHORT],
                            "Besok pelatihan lanjutan " + LONG_WORD, actor="rina")
    Dispatcher(app.extensions["kabar.settings"], db).run_once()
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"/simulator/?lang={language}")
        page.fill("#search", "nurhaliza")
        page.click(f".grad[data-id='{wide['graduate_id']}']")
        page.locator(".bubble.out .who", has_text=kabar).wait_for(timeout=10_000)
        chat = page.locator("#chat").bounding_box()
        assert chat["width"] >= 380  # the whole screen, not a sliver beside the list
        assert not page.locator("#roster").is_visible()
        assert page.locator("#composer button[type=submit]").text_content() == send
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.click("#back")
        assert page.locator("#roster").is_visible()


@pytest.mark.skipif(not os.environ.get("KABAR_SCREENSHOTS"),
                    reason="set KABAR_SCREENSHOTS=<directory> to save screenshots")
def test_phone_screenshots(app, db, wide):
    """``phone-log.png`` and ``phone-simulator.png`` (390×844) for the README."""
    folder = Path(os.environ["KABAR_SCREENSHOTS"])
    folder.mkdir(parents=True, exist_ok=True)
    with serve(app) as base, chromium_page(base) as page:
        page.set_viewport_size({"width": 390, "height": 844})
        sign_in(page, "rina", PASSWORD)
        page.goto("/staff/log")
        page.evaluate("window.scrollTo(0, document.querySelector('.log-actions').offsetTop)")
        page.screenshot(path=str(folder / "phone-log.png"))
        page.goto("/simulator/")
        page.click(".grad >> nth=0")
        page.locator(".bubble").first.wait_for(timeout=10_000)
        page.screenshot(path=str(folder / "phone-simulator.png"))
