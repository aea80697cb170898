"""The trace viewer and the eval report in a real browser: headless chromium driven
by selenium. Every test fails on any console error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from headless import console_errors, find_browser, start, time_to_rows
from report_fixtures import EVIL, big_trace, make_eval_run, write_small

from promptflow_dsl import cli
from promptflow_dsl.runtime.trace import write_trace

_, _, MISSING = find_browser()
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "img" / "trace-viewer.png"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    d = start(tmp_path_factory.mktemp("chromium-profile"))
    yield d
    d.quit()


@pytest.fixture
def page(tmp_path: Path) -> Path:
    trace = write_small(tmp_path / "traces")
    out = tmp_path / "view.html"
    assert cli.main(["trace", "view", str(trace), "-o", str(out)]) == 0
    return out


def rows(driver) -> dict[str, object]:
    from selenium.webdriver.common.by import By

    return {r.get_attribute("data-id"): r for r in driver.find_elements(By.CSS_SELECTOR, ".row")}


def detail_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "detail").text


def test_expand_a_step_and_read_its_reply(driver, page: Path, tmp_path: Path):
    from selenium.webdriver.common.by import By

    driver.get(page.as_uri())
    assert driver.execute_script("return document.body.getAttribute('data-ready')") == "1"
    driver.find_element(By.ID, "collapse").click()
    assert list(rows(driver)) == ["s1"]
    rows(driver)["s1"].find_element(By.CSS_SELECTOR, "[data-toggle]").click()
    assert "s5" in rows(driver) and "s6" not in rows(driver)
    rows(driver)["s5"].find_element(By.CSS_SELECTOR, "[data-toggle]").click()  # expand solve
    assert "s6" in rows(driver)
    rows(driver)["s6"].click()
    text = detail_text(driver)
    assert "raw reply" in text and "Paris" in text
    rows(driver)["s2"].click()
    reply = driver.find_element(By.CSS_SELECTOR, "#detail pre.reply").text
    assert reply == "The capital of France is Paris."
    assert "Summarize: hello" in detail_text(driver) and "12 in + 5 out" in detail_text(driver)
    shot = tmp_path / "viewer.png"
    driver.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    if os.environ.get("PFLOW_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    assert console_errors(driver) == []


def test_a_reply_with_markup_is_shown_as_text(driver, page: Path):
    from selenium.webdriver.common.by import By

    driver.get(page.as_uri())
    rows(driver)["s3"].click()
    reply = driver.find_element(By.CSS_SELECTOR, "#detail pre.reply")
    assert reply.get_attribute("textContent") == EVIL
    assert driver.execute_script("return window.__pwned") is None
    assert driver.find_elements(By.CSS_SELECTOR, "#detail b") == [] or all(
        b.text != "bold" for b in driver.find_elements(By.CSS_SELECTOR, "#detail pre b"))
    assert console_errors(driver) == []


def test_events_hooks_decomposition_route_and_holes(driver, page: Path):
    from selenium.webdriver.common.by import By

    driver.get(page.as_uri())
    rows(driver)["s4"].click()
    assert driver.find_element(By.CSS_SELECTOR, "#detail mark.ins").text.strip() == "[calc: 5]"
    rows(driver)["s5"].click()
    assert "QS1: [lookup] What is the capital?" in detail_text(driver)
    driver.find_element(By.CSS_SELECTOR, "#detail .ev .linkish").click()  # the sub-call
    assert driver.find_element(By.CSS_SELECTOR, ".row.sel").get_attribute("data-id") == "s6"
    rows(driver)["s7"].click()
    bars = driver.find_elements(By.CSS_SELECTOR, "#detail .scorebar")
    assert [b.text.split()[0] for b in bars] == ["billing", "tech", "sales"]
    assert "best" in bars[0].get_attribute("class")
    rows(driver)["s8"].click()
    assert "-0.200 log-prob" in detail_text(driver)
    rows(driver)["s9"].click()
    text = detail_text(driver)
    assert "attempt 1: not JSON" in text and "retries (2 of 3 attempts rejected)" in text
    assert "missing field 'n'" in text
    assert console_errors(driver) == []


def test_search_and_filters(driver, page: Path):
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(page.as_uri())
    Select(driver.find_element(By.ID, "status")).select_by_value("failed")
    assert set(rows(driver)) == {"s1", "s10"}  # the failed step and its caller
    Select(driver.find_element(By.ID, "status")).select_by_value("")
    driver.find_element(By.ID, "search").send_keys("capital of france")
    time.sleep(0.4)
    assert set(rows(driver)) == {"s1", "s2"}
    driver.find_element(By.ID, "search").clear()
    driver.find_element(By.ID, "search").send_keys(" ")
    time.sleep(0.4)
    Select(driver.find_element(By.ID, "model")).select_by_value("default")
    assert "s10" not in rows(driver) and "s2" in rows(driver)
    assert console_errors(driver) == []


def test_a_hash_selects_its_step(driver, page: Path):
    driver.get(page.as_uri() + "#s6")
    assert "lookup" in detail_text(driver)
    driver.get(page.as_uri() + "#%E0%A4%A")  # malformed: nothing selected, no error
    driver.refresh()
    assert "Select a step" in detail_text(driver)
    assert console_errors(driver) == []


def test_eval_report_links_to_the_rows_trace(driver, tmp_path: Path, monkeypatch):
    from selenium.webdriver.common.by import By

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PFLOW_TRACE_DIR", raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    root, traces = tmp_path / ".pflow-cache" / "evals", tmp_path / ".pflow-cache" / "traces"
    make_eval_run(root, "20261204T100000.000Z-aaaaaa", traces)
    folder = make_eval_run(root, "20261204T110000.000Z-bbbbbb", traces, flip=True)
    assert cli.main(["eval", "--show", "last", "--compare", "20261204T10", "--html"]) == 0
    report = folder / "compare-20261204T100000.000Z-aaaaaa.html"
    driver.get(report.as_uri())
    assert driver.find_elements(By.CSS_SELECTOR, "svg.plot")
    assert driver.execute_script("return window.__pwned") is None
    driver.find_element(By.ID, "rowsearch").send_keys("q3")
    assert driver.find_element(By.ID, "rowcount").text == "1 of 4 rows"
    link = driver.find_element(By.CSS_SELECTOR, "table.changes a")
    link.click()
    assert driver.current_url.endswith("#row-2")
    assert driver.find_element(By.CSS_SELECTOR, ".row.sel").get_attribute("data-id") == "row-2"
    assert "row 2" in detail_text(driver)
    assert console_errors(driver) == []


def test_a_10000_step_trace_opens_lazily(driver, tmp_path: Path):
    path = write_trace(big_trace(10_000), tmp_path, durable=False)
    out = tmp_path / "big.html"
    assert cli.main(["trace", "view", str(path), "-o", str(out)]) == 0
    ms = time_to_rows(driver, out.as_uri())
    drawn = len(rows(driver))
    print(f"\n10,000-step trace ({out.stat().st_size / 1e6:.1f} MB page): first rows drawn "
          f"{ms:.0f} ms after navigation start, {drawn} rows in the DOM")
    assert 0 < drawn < 200  # only the rows in view (and a margin) exist
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "expand").click()
    assert driver.find_element(By.ID, "count").text == "10000 steps · 10000 shown"
    driver.execute_script("document.getElementById('list').scrollTop = 22 * 9000")
    driver.execute_script("return new Promise(r => requestAnimationFrame(() => r()))")
    assert any(int(i[1:]) > 8900 for i in rows(driver) if i.startswith("s"))
    assert console_errors(driver) == []


def test_console_errors_are_seen(driver, tmp_path: Path):
    """The guard of the other tests is not vacuous: a script error reaches the log."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>undefinedFunction()</script></body></html>")
    driver.get(bad.as_uri())
    errors = console_errors(driver)
    assert errors and "undefinedFunction" in errors[0]
