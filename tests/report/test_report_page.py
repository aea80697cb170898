"""The page shell and the plots: data embedded safely, nothing loaded from the
network, the assets shipped as package data."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from promptflow_dsl.report import page as page_mod
from promptflow_dsl.report.page import CSP, asset, esc, page, script_json
from promptflow_dsl.report.svg import Bar, bar_chart, histogram, step_chart

REPO = Path(__file__).resolve().parents[2]
ASSETS = ("base.css", "viewer.css", "viewer.js", "report.css", "report.js")


def _blob(html: str) -> str:
    m = re.search(r'<script id="pflow-data" type="application/json">(.*?)</script>', html, re.S)
    assert m, "no data blob"
    return m.group(1)


def test_script_json_cannot_end_the_script_element():
    data = {"reply": "</script><script>alert(1)</script><!-- \u2028\u2029 &amp;"}
    text = script_json(data)
    assert "</" not in text and "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == data


def test_script_json_writes_non_finite_numbers_as_strings():
    assert json.loads(script_json({"x": float("nan"), "y": [float("inf")]})) == \
        {"x": "nan", "y": ["inf"]}


def test_page_embeds_data_once_and_round_trips():
    data = {"steps": [{"rep": "</script>"}]}
    html = page("t <b>", "<p>body</p>", data=data, scripts=("viewer.js",))
    assert html.count("</script>") == 2  # the data blob and the one script
    assert json.loads(_blob(html)) == data
    assert "<title>t &lt;b&gt;</title>" in html


def test_page_loads_nothing_from_the_network():
    html = page("t", "<p>x</p>", styles=("base.css", "viewer.css", "report.css"),
                scripts=("viewer.js", "report.js"))
    assert CSP in html and "default-src 'none'" in CSP
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "@import" not in html and "url(" not in html
    assert "http://" not in html.replace('http-equiv', '') and "https://" not in html


def test_esc_escapes_markup_and_quotes():
    assert esc('<a href="x">\'') == "&lt;a href=&quot;x&quot;&gt;&#x27;"


def test_assets_are_package_data():
    for name in ASSETS:
        assert asset(name).strip()
    with pytest.raises(FileNotFoundError):
        page_mod.asset("missing.css")


def test_plots_escape_labels_and_survive_edge_cases():
    svg = bar_chart([("<m>", [Bar(0.5, 0.2, 0.8)]), ("b", [Bar(None)])], title="t&")
    assert "&lt;m&gt;" in svg and "t&amp;" in svg and "not scored" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "nothing scored" in bar_chart([("a", [Bar(None)])])
    assert "no values" in histogram([], title="x")
    one = histogram([2.0, 2.0, float("nan")], title="lat")
    assert "(2 values)" in one
    assert "<rect" in histogram([0.1 * i for i in range(100)], title="lat", unit=" s")
    assert "nothing ran" in step_chart([], title="in flight", span=0)
    assert "at most 3" in step_chart([(0, 1), (5, 3), (9, 0)], title="in flight", span=10)


def test_wheel_ships_the_assets(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                        str(tmp_path), str(REPO)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip()[-300:]}")
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    for name in ASSETS:
        assert f"promptflow_dsl/report/assets/{name}" in names
