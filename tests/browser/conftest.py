"""Playwright against a live server, driving Debian's Chromium (headless).

Without /usr/bin/chromium the browser tests are skipped with the reason, except
under CI=true, where a missing browser fails them: CI must never skip silently.
Screenshots (1280x800) land in tests/screenshots/, which git ignores.

Every page is watched for Content-Security-Policy violations, both as the browser
reports them on the console ("Refused to ... Content Security Policy") and as
``securitypolicyviolation`` events; a test during which one happened fails. Under the
policy a page cannot eval: give ``page.wait_for_function`` a function (``"() => ..."``),
which Playwright calls itself, not an expression, which the page would have to compile.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made by
# the test itself (building data) would otherwise be refused as "async unsafe".
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, so the browser tests must run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield browser
        browser.close()


# Runs in every document before its own scripts (Playwright injects it outside the
# page's policy), so violations in the first parse are caught too.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(
    "CSP violation (event): " + event.effectiveDirective + " blocked "
    + (event.blockedURI || "inline") + " at " + event.sourceFile + ":" + event.lineNumber
  );
}, true);
"""
CSP_MESSAGE = ("Content Security Policy", "CSP violation")


@pytest.fixture
def csp_violations() -> list[str]:
    """Every CSP violation a page of this test reported (the page fixture fails on any)."""
    return []


def watch_csp(page, violations: list[str]) -> None:
    def on_console(message) -> None:
        if any(marker in message.text for marker in CSP_MESSAGE):
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)


@pytest.fixture
def page(browser, csp_violations):
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    watch_csp(page, csp_violations)
    # Pages the test opens later (popups, new tabs) are watched too.
    context.on("page", lambda other: other is not page and watch_csp(other, csp_violations))
    page.set_default_timeout(10_000)
    yield page
    context.close()
    if csp_violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(csp_violations))


@pytest.fixture
def screenshot(page):
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        # caret="initial": hiding the caret leaves style="" on inputs, which htmx's history
        # restore would then re-apply as an inline style the policy refuses.
        page.screenshot(path=str(path), caret="initial")
        return path

    return take
