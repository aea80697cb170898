"""The system chromium, headless, driven by selenium through the system
chromedriver (Debian: ``apt-get install chromium chromium-driver``).  Used by the
browser tests and by bench/trace_view.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1400,900")


def find_browser() -> tuple[str | None, str | None, str]:
    """(chromium, chromedriver, why not) — the paths, or ``None`` and the reason."""
    browser = next((p for p in map(shutil.which, CHROMIUMS) if p), None)
    driver = shutil.which("chromedriver")
    missing = [name for name, p in (("chromium", browser), ("chromedriver", driver)) if not p]
    why = (f"{' and '.join(missing)} not installed (Debian: apt-get install chromium "
           "chromium-driver)") if missing else ""
    return browser, driver, why


def start(profile: Path) -> Any:
    """A headless chromium with a fresh profile in ``profile`` whose console messages
    are kept (``driver.get_log("browser")``). Raises ``RuntimeError`` when there is no
    chromium or chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver, why = find_browser()
    if browser is None or driver is None:
        raise RuntimeError(why)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def console_errors(driver: Any) -> list[str]:
    """The console messages of level SEVERE since the last call."""
    return [e.get("message", "") for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def time_to_rows(driver: Any, url: str) -> float:
    """Open ``url`` and return the milliseconds from navigation start to the viewer's
    ``pflow-rows-rendered`` mark (its first rows drawn)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.body.getAttribute('data-ready')") == "1")
    return float(driver.execute_script(
        "return performance.getEntriesByName('pflow-rows-rendered')[0].startTime"))
