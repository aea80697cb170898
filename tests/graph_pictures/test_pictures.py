"""``pflow graph --format svg|png|html``: the layered layout and its drawings.

The layout is checked geometrically on a generated 50-statement flow: no two step
boxes intersect and every label lies inside its box (text measured with the
pictures' fixed monospace advance).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from promptflow_dsl import cli, loads

pytest.importorskip("grandalf", reason="the graph extra is not installed")

SVG_NS = "{http://www.w3.org/2000/svg}"


def big_program(n: int = 50) -> str:
    """A flow of ``n`` statements: chains of prompt calls, maps, branches, values."""
    lines = ['model m = "echo"',
             'prompt summarize(text: str) -> str {\n  model m\n  user "Summarize: {{ text }}"\n}',
             'prompt grade(text: str) -> int {\n  model m\n  user "Grade {{ text }}"\n}',
             "flow main(doc: str, items: list[str]) -> str {"]
    strs: list[int] = []
    for i in range(n):
        if i % 10 == 3:
            lines.append(f"  v{i} = [summarize(text=x) for x in items]")
            continue
        a = strs[-1] if strs else None
        b = strs[-4] if len(strs) >= 4 else a
        if i == 0:
            lines.append("  v0 = summarize(text=doc)")
        elif i % 10 == 7:
            lines.append(f"  v{i} = summarize(text=doc) if len(v{a}) > {i} else summarize(text=v{b})")
        elif i % 10 == 8:
            lines.append(f"  v{i} = str(grade(text=v{a}))")
        else:
            lines.append(f"  v{i} = summarize(text=v{a} + v{b})")
        strs.append(i)
    lines.append(f"  return v{n - 1} + str(len(v3))\n}}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def big():
    return loads(big_program())


def overlap(a, b) -> bool:
    return not (a.left + a.w <= b.left or b.left + b.w <= a.left
                or a.top + a.h <= b.top or b.top + b.h <= a.top)


def test_fifty_statement_plan_has_no_overlapping_boxes_and_labels_inside(big):
    from promptflow_dsl.picture import layout

    plan = big.plan("main")
    placed = layout(plan)
    boxes = list(placed.boxes.values())
    assert len(boxes) == len(plan.steps) >= 50
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not overlap(a, b), f"{a.id} and {b.id} overlap"
    for box in boxes:
        left, top, right, bottom = box.text_extent()
        assert box.left < left and right < box.left + box.w, box.id
        assert box.top < top and bottom < box.top + box.h, box.id
        assert 0 <= box.left and box.left + box.w <= placed.width
        assert 0 <= box.top and box.top + box.h <= placed.height
    # every drawn edge starts on its source box and ends on its target box
    for link in placed.links:
        for end, sid in ((link.points[0], link.source), (link.points[-1], link.target)):
            box = placed.boxes[sid]
            assert box.left - 0.5 <= end[0] <= box.left + box.w + 0.5
            assert box.top - 0.5 <= end[1] <= box.top + box.h + 0.5


def test_svg_marks_kinds_and_dashes_may_call_edges():
    from promptflow_dsl.picture import draw

    program = loads(
        'model m = "echo"\n'
        'prompt leaf(q: str) -> str {\n  model m\n  user "{{ q }}"\n}\n'
        'decompose solve(q: str) -> str {\n  model m\n  handlers { leaf: leaf, again: solve }\n'
        '  prompt """QS: [EOQ]"""\n}\n'
        "flow main(q: str, qs: list[str]) -> str {\n"
        "  a = [leaf(q=x) for x in qs]\n"
        "  b = solve(q=q) if len(a) > 1 else leaf(q=q)\n"
        "  return b\n}\n")
    svg = draw(program.plan("main"), "svg", "k.pflow: main").decode()
    root = ET.fromstring(svg)
    classes = {g.get("class") for g in root.iter(f"{SVG_NS}g")}
    assert {"node map", "node branch", "node call", "node input", "node return"} <= classes
    may = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "edge may_call"]
    assert may, "the decompose's may-call edge is drawn"
    assert all(p.get("stroke-dasharray") for g in may for p in g.iter(f"{SVG_NS}path"))
    data = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "edge data"]
    assert data and not any(p.get("stroke-dasharray") for g in data for p in g.iter(f"{SVG_NS}path"))
    legend = next(g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "legend")
    texts = {t.text for t in legend.iter(f"{SVG_NS}text")}
    assert {"map (one call per item)", "branch (if / else)", "may call"} <= texts
    # map and branch look different from a plain call: shape and colour
    fills = {}
    for g in root.iter(f"{SVG_NS}g"):
        if (g.get("class") or "").startswith("node "):
            shape = next(iter(g.iter(f"{SVG_NS}polygon")), None)
            if shape is None:
                shape = next(g.iter(f"{SVG_NS}rect"))
            fills[g.get("class")] = (shape.tag, shape.get("fill"))
    assert fills["node branch"][0].endswith("polygon")
    assert len({fills["node map"], fills["node branch"], fills["node call"]}) == 3


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "big.pflow"
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_writes_svg_png_html(tmp_path, capsys):
    path = write(tmp_path, big_program(12))
    for fmt, magic in (("svg", b"<svg"), ("png", b"\x89PNG\r\n\x1a\n"), ("html", b"<!DOCTYPE html>")):
        out = tmp_path / f"g.{fmt}"
        assert cli.main(["graph", str(path), "main", "--format", fmt, "-o", str(out)]) == 0
        assert out.read_bytes().startswith(magic), fmt
    page = (tmp_path / "g.html").read_text(encoding="utf-8")
    assert "<svg" in page and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    # the call graph of the file, without a handler
    out = tmp_path / "calls.svg"
    assert cli.main(["graph", str(path), "--format", "svg", "-o", str(out)]) == 0
    assert "handler:summarize" in out.read_text(encoding="utf-8")


def test_cli_open_uses_the_browser(tmp_path, capsys, monkeypatch):
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url, *a, **k: opened.append(url) or True)
    path = write(tmp_path, big_program(5))
    out = tmp_path / "g.html"
    assert cli.main(["graph", str(path), "main", "--format", "html", "-o", str(out), "--open"]) == 0
    assert opened == [out.resolve().as_uri()]
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert cli.main(["graph", str(path), "main", "--format", "svg", "--open"]) == 0
    assert opened[-1] == (tmp_path / "pflow-graph-main.svg").resolve().as_uri()


def test_cli_refuses_open_on_text_formats(tmp_path, capsys):
    path = write(tmp_path, big_program(5))
    assert cli.main(["graph", str(path), "main", "--open"]) == 2
    assert "--open needs a picture format" in capsys.readouterr().err


def test_without_the_extra_exit_2_with_the_install_command(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, big_program(5))
    monkeypatch.setitem(sys.modules, "grandalf", None)
    monkeypatch.setitem(sys.modules, "grandalf.graphs", None)
    assert cli.main(["graph", str(path), "main", "--format", "svg", "-o",
                     str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "promptflow-dsl[graph]"' in err and not (tmp_path / "x.svg").exists()
