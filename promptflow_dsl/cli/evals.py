"""``pflow eval FILE [EVAL ...]``: run a program's ``eval`` declarations over their
datasets into run folders (``.pflow-cache/evals/RUN``), print each summary, compare
runs; ``--list`` and ``--show`` read past runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, load_and_warn, rel

if TYPE_CHECKING:  # pragma: no cover
    from ..datasets import DatasetRun, RunFolder
    from ..program import Program

LABEL = "pflow eval"
CHANGES_SHOWN = 20


# ------------------------------------------------------------------ rendering

def _num(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _ci(ci: Any, signed: bool = False) -> str:
    if not ci:
        return "-"
    return f"[{_num(ci[0], signed)}, {_num(ci[1], signed)}]"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def render_summary(meta: dict[str, Any], summary: dict[str, Any], folder: Path) -> str:
    """A run's summary as text: the eval, the run, rows, time, tokens, cost, the cost
    estimated before the run, the metric table, the thresholds and where the results are."""
    from .data import estimate_line, rows_line

    options = meta.get("options") or {}
    name = options.get("eval", "?")
    lines = [f"eval {name} · run {summary.get('run_id') or meta.get('run_id')} · "
             f"{summary.get('status', '?')}", rows_line(summary)]
    estimated = estimate_line(summary)
    if estimated is not None:
        lines.append(estimated)
    metrics = summary.get("metrics") or {}
    errors = summary.get("metric_errors") or {}
    total = (summary.get("rows") or {}).get("ok", 0)
    if metrics:
        table = [["metric", "kind", "mean", "95% CI", "scored", "errors"]]
        for metric, m in metrics.items():
            table.append([metric, str(m.get("kind", "")), _num(m.get("mean")), _ci(m.get("ci")),
                          f"{m.get('scored', 0)}/{total}", str(errors.get(metric, 0) or "")])
        lines += _table(table)
    for t in summary.get("thresholds") or []:
        actual = "no rows scored" if t.get("actual") is None else f"{t['actual']:.4g}"
        lines.append(f"threshold {t.get('threshold')}: {actual} "
                     f"({'passed' if t.get('passed') else 'FAILED'})")
    lines.append(f"results: {rel(folder / 'results.jsonl')}")
    return "\n".join(lines)


def render_comparison(diffs: list[Any], a: str, b: str, note: str | None) -> str:
    """Per metric, b − a over the rows scored in both, with its interval, and the rows
    whose value changed."""
    lines = [f"compared with run {a} (run {b} minus it, over the rows scored in both)"]
    if note:
        lines.append(note)
    table = [["metric", "before", "after", "diff", "95% CI", "paired", "changed"]]
    for d in diffs:
        table.append([d.name, _num(d.mean_a), _num(d.mean_b), _num(d.diff, True),
                      _ci(d.ci, True), str(d.paired), str(len(d.changed))])
    lines += _table(table)
    for d in diffs:
        if not d.changed:
            continue
        shown = ", ".join(f"row {c.row}: {_short(c.a)} → {_short(c.b)}"
                          for c in d.changed[:CHANGES_SHOWN])
        more = len(d.changed) - CHANGES_SHOWN
        lines.append(f"{d.name} changed: {shown}" + (f", ... and {more} more" if more > 0 else ""))
    return "\n".join(lines)


def _short(x: float | None) -> str:
    if x is None:
        return "not scored"
    return f"{x:g}"


# ------------------------------------------------------------------ past runs

def _root(args: argparse.Namespace) -> Path:
    from ..check.loader import find_project_root

    if args.file:
        p = Path(args.file)
        start = p if p.is_dir() else p.parent
    else:
        start = Path.cwd()
    return find_project_root(start) / ".pflow-cache" / "evals"


def _load(root: Path, run: str) -> RunFolder:
    from ..datasets import RunFolderError, load_run

    try:
        return load_run(root, run)
    except RunFolderError as exc:
        raise UsageError(f"{LABEL}: {exc}") from None


def _read(folder: RunFolder) -> tuple[dict[str, Any], dict[str, Any]]:
    from ..datasets import RunFolderError

    try:
        meta = folder.read_meta()
        summary = folder.read_summary() or {}
    except RunFolderError as exc:
        raise UsageError(f"{LABEL}: {exc}") from None
    return meta, summary


def cmd_list(args: argparse.Namespace) -> int:
    from ..datasets import RunFolderError, list_runs

    root = _root(args)
    try:
        runs = list_runs(root)
    except RunFolderError as exc:
        raise UsageError(f"{LABEL}: {exc}") from None
    program = None
    if args.file:
        try:
            program = Path(args.file).resolve().relative_to(root.parent.parent).as_posix()
        except ValueError:
            program = args.file
    wanted = set(args.evals)
    out = []
    for info in runs:
        meta, summary = info.meta or {}, info.summary or {}
        options = meta.get("options") or {}
        if program is not None and options.get("program") != program:
            continue
        if wanted and options.get("eval") not in wanted:
            continue
        out.append((info, meta, summary))
    if args.json:
        print(json.dumps([{"run_id": i.run_id, "path": str(i.path), "eval": m.get("options", {})
                           .get("eval"), "meta": m, "summary": s} for i, m, s in out],
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    if not out:
        print(f"no eval runs in {rel(root)}")
        return EXIT_OK
    table = [["run", "eval", "status", "rows ok/failed/total", "metrics"]]
    for info, meta, summary in out:
        rows = summary.get("rows") or {}
        means = ", ".join(f"{k} {_num(v.get('mean'))}"
                          for k, v in (summary.get("metrics") or {}).items())
        table.append([info.run_id, str((meta.get("options") or {}).get("eval", "?")),
                      str(summary.get("status", "running or killed")),
                      f"{rows.get('ok', '?')}/{rows.get('failed', '?')}/{rows.get('total', '?')}",
                      means])
    print("\n".join(_table(table)))
    return EXIT_OK


def _compare(root: Path, base: str, folder: RunFolder, as_json: bool) -> None:
    from ..datasets import compare_runs

    other = _load(root, base)
    meta_a, _ = _read(other)
    meta_b, _ = _read(folder)
    note = None
    da, db = meta_a.get("dataset") or {}, meta_b.get("dataset") or {}
    if da.get("digest") != db.get("digest"):
        note = (f"note: the runs used different datasets ({da.get('path')} and {db.get('path')}); "
                "rows are paired by line number")
    diffs = compare_runs(other.path, folder.path)
    if as_json:
        print(json.dumps({"a": other.run_id, "b": folder.run_id, "note": note,
                          "metrics": {d.name: d.to_json() for d in diffs}},
                         ensure_ascii=False, indent=2))
    else:
        print(render_comparison(diffs, other.run_id, folder.run_id, note))


def cmd_show(args: argparse.Namespace) -> int:
    root = _root(args)
    folder = _load(root, args.show)
    if args.compare:
        args.compare = _load(root, args.compare).run_id
    meta, summary = _read(folder)
    if args.json:
        print(json.dumps({"meta": meta, "summary": summary}, ensure_ascii=False, indent=2))
    else:
        print(render_summary(meta, summary, folder.path))
    if args.compare:
        _compare(root, args.compare, folder, args.json)
    if args.html:
        write_report(args, folder, _load(root, args.compare) if args.compare else None)
    return EXIT_FAILED if summary.get("passed") is False else EXIT_OK


# ------------------------------------------------------------------ HTML reports

def _report_run(args: argparse.Namespace, folder: RunFolder, out: Path) -> Any:
    """The report's view of one run; writes the trace viewer page of its rows beside
    ``out`` when any row has a trace. Raises :class:`UsageError`."""
    from ..report.eval_report import RunData
    from ..report.sources import ReportError, folder_view, read_json, read_rows
    from ..report.trace_page import trace_page
    from .trace import write_page

    trace_dir = Path(args.trace_dir) if args.trace_dir else None
    try:
        rows = read_rows(folder.path, trace_dir)
    except ReportError as exc:
        raise UsageError(f"{LABEL}: {exc}") from None
    href = None
    if any(r.trace is not None for r in rows):
        traces = out.with_name(f"{out.stem}.trace-{folder.run_id}.html")
        view = folder_view(folder.path, trace_dir)
        write_page(traces, trace_page(view, f"eval run {folder.run_id}: traces"))
        href = traces.name
    return RunData(folder.run_id, read_json(folder.meta_path), read_json(folder.summary_path),
                   [r.result for r in sorted(rows, key=lambda r: r.row)], href)


def write_report(args: argparse.Namespace, folder: RunFolder, base: RunFolder | None) -> Path:
    """Write the HTML report of ``folder`` (compared with ``base`` when given) to
    ``-o FILE`` or into the run folder, and the trace pages of its rows beside it;
    print where it went; open it with ``--open``. Raises :class:`UsageError`."""
    from ..report.eval_report import compare_report, eval_report
    from .trace import open_page, write_page

    if args.output:
        out = Path(args.output)
    elif base is None:
        out = folder.path / "report.html"
    else:
        out = folder.path / f"compare-{base.run_id}.html"
    if out.is_dir():
        raise UsageError(f"{LABEL}: -o {out}: is a folder; name the .html file to write")
    run = _report_run(args, folder, out)
    if base is None:
        html = eval_report(run)
    else:
        from ..datasets import RunFolderError, compare_runs

        other = _report_run(args, base, out)
        try:
            diffs = compare_runs(base.path, folder.path)
        except RunFolderError as exc:
            raise UsageError(f"{LABEL}: {exc}") from None
        da = other.meta.get("dataset") or {}
        db = run.meta.get("dataset") or {}
        note = None
        if da.get("digest") != db.get("digest"):
            note = (f"the runs used different datasets ({da.get('path')} and "
                    f"{db.get('path')}); rows are paired by line number")
        html = compare_report(other, run, diffs, note)
    write_page(out, html)
    print(f"report: {rel(out)}", file=sys.stderr)
    if args.open:
        open_page(out)
    return out


# ------------------------------------------------------------------ running

def _metric_errors(results: Path) -> dict[str, int]:
    """How many rows recorded an error for each metric (ok lines only: an ok line is
    never superseded). Reads only the lines that mention ``metric_errors``."""
    counts: dict[str, int] = {}
    try:
        with open(results, "rb") as f:
            for raw in f:
                if b'"metric_errors"' not in raw or not raw.endswith(b"\n"):
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict) and line.get("status") == "ok":
                    for name in line.get("metric_errors") or {}:
                        counts[name] = counts.get(name, 0) + 1
    except OSError:
        return counts
    return counts


def _run_one(args: argparse.Namespace, program: Program, name: str, *,
             resume: str | None) -> tuple[int, DatasetRun | None]:
    import asyncio

    from ..datasets import DatasetError, RunFolderError, ThresholdError
    from ..datasets.programs import eval_root, run_eval
    from ..distributed import ClusterError
    from .data import data_options, executor_line, print_resume
    from .run import run_config

    config = run_config(args, LABEL)
    config.progress = None
    options = data_options(args, LABEL, resume=resume, concurrency=config.concurrency)
    meta = getattr(args, "resume_meta", None)
    if meta is not None:  # a resume continues the run's own rows unless told otherwise
        from ..datasets import Selection

        if args.limit is None and args.sample is None:
            try:
                options.selection = Selection.from_json(meta.get("selection"))
            except (TypeError, ValueError):
                pass
    try:
        run = asyncio.run(run_eval(program, name, config=config, options=options))
    except (DatasetError, RunFolderError, ThresholdError, ClusterError) as exc:
        raise UsageError(f"{LABEL}: {exc}") from None
    assert run.folder is not None
    ran_on = executor_line(options.executor)
    if ran_on is not None and not args.quiet:
        print(ran_on, file=sys.stderr)
    summary = run.summary
    errors = _metric_errors(run.results_path)
    if errors:
        summary["metric_errors"] = errors
        run.folder.write_summary(summary)
    if args.json:
        print(json.dumps({"run_id": run.run_id, "path": str(run.folder.path),
                          "summary": summary}, ensure_ascii=False, indent=2))
    else:
        print(render_summary(run.folder.read_meta(), summary, run.folder.path))
    if run.changes:
        print(f"{LABEL}: resumed with --force although " + "; ".join(run.changes),
              file=sys.stderr)
    if args.compare:
        _compare(eval_root(program), args.compare, run.folder, args.json)
    status = run.result.status
    if status == "interrupted":
        print_resume(run)
        print("pflow: interrupted", file=sys.stderr)
        return 130, run
    if status == "stopped":
        print(f"{LABEL}: stopped after {run.result.failed} failed rows "
              f"(--max-errors {args.max_errors})", file=sys.stderr)
        print_resume(run)
        return EXIT_FAILED, run
    return (EXIT_OK if run.passed else EXIT_FAILED), run


def _eval_of(args: argparse.Namespace, option: str) -> str | None:
    """The eval of the run ``--resume`` or ``--compare`` names (replaced by its full id
    in ``args``), checked against the EVALs named. Raises :class:`UsageError`."""
    ref = getattr(args, option)
    if not ref:
        return None
    folder = _load(_root(args), ref)
    meta, _ = _read(folder)
    name = str((meta.get("options") or {}).get("eval") or "")
    if args.evals and args.evals != [name]:
        raise UsageError(f"{LABEL}: run {folder.run_id} (--{option}) is of eval '{name}', "
                         f"not {', '.join(args.evals)}")
    setattr(args, option, folder.run_id)
    if option == "resume":
        args.resume_meta = meta
    return name


def cmd_eval(args: argparse.Namespace) -> int:
    if (args.output or args.open) and not args.html:
        raise UsageError(f"{LABEL}: -o/--output and --open go with --html")
    if args.html and args.list:
        raise UsageError(f"{LABEL}: --html goes with --show RUN or with a run, not --list")
    if args.list:
        return cmd_list(args)
    if args.show is not None:
        return cmd_show(args)
    if args.force and not args.resume:
        raise UsageError(f"{LABEL}: --force goes with --resume RUN (resume a run whose "
                         "program or dataset changed)")
    if args.file is None:
        raise UsageError(f"{LABEL}: name the .pflow file whose evals to run")
    resume_name = _eval_of(args, "resume")
    compare_name = _eval_of(args, "compare")
    if resume_name and compare_name and compare_name != resume_name:
        raise UsageError(f"{LABEL}: run {args.compare} is of eval '{compare_name}', and run "
                         f"{args.resume} of '{resume_name}'")
    program = load_and_warn(args)
    if program is None:
        return EXIT_USAGE
    evals = program.evals
    if not evals:
        raise UsageError(f"{LABEL}: {args.file} declares no eval")
    only = resume_name or compare_name
    names = [only] if only else (args.evals or list(evals))
    for name in names:
        if name not in evals:
            raise UsageError(f"{LABEL}: no eval '{name}' in {args.file} "
                             f"(evals: {', '.join(evals)})")
    if args.output and len(names) > 1:
        raise UsageError(f"{LABEL}: -o/--output writes one report: name one EVAL "
                         f"(this file has {', '.join(names)})")
    status = EXIT_OK
    for i, name in enumerate(names):
        if i:
            print()
        code, run = _run_one(args, program, name, resume=args.resume)
        if code == 130:
            return code
        if args.html and run is not None and run.folder is not None:
            base = _load(_root(args), args.compare) if args.compare else None
            write_report(args, run.folder, base)
        status = max(status, code)
    return status


def add_parser(sub: Any) -> None:
    from .data import add_executor_options, add_model_options, add_row_options

    e = sub.add_parser("eval", help="run a program's evals over their datasets and score them",
                       description="Run each `eval` of FILE (or the EVALs named): its `run` "
                                   "once per dataset row, then its metrics; write a run folder "
                                   "under .pflow-cache/evals of the project, print the summary. "
                                   "Exit status 1 when a threshold fails.")
    e.add_argument("file", nargs="?", metavar="FILE")
    e.add_argument("evals", nargs="*", metavar="EVAL")
    e.add_argument("--list", action="store_true", help="list the eval runs, newest first "
                                                       "(of FILE and EVALs, when given)")
    e.add_argument("--show", metavar="RUN", help="print the summary of a run (an id, a "
                                                 "unique prefix, or `last`)")
    e.add_argument("--compare", metavar="RUN", help="compare this run (or --show's) with RUN: "
                                                    "per metric the paired difference and its "
                                                    "95%% interval, and the rows that changed")
    e.add_argument("--resume", metavar="RUN", help="continue RUN: only rows without a line")
    add_row_options(e, mapping=False,
                    force="with --resume: resume a run whose program or dataset changed")
    add_model_options(e, concurrency="rows in flight, and most model and tool calls in flight "
                                     "(default 64)",
                      trace_dir="where to write each row's trace", no_trace="write no row traces")
    add_executor_options(e)
    e.add_argument("--json", action="store_true", help="print summaries, lists and comparisons "
                                                       "as JSON")
    e.add_argument("--html", action="store_true",
                   help="also write an HTML report of the run (with --compare: of both runs), "
                        "and the trace pages of its rows beside it")
    e.add_argument("-o", "--output", metavar="FILE.html",
                   help="with --html: where to write the report (default: report.html, or "
                        "compare-RUN.html, in the run folder)")
    e.add_argument("--open", action="store_true", help="with --html: open the report in the "
                                                         "default browser")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress or warning count")
    e.add_argument("-v", "--verbose", action="store_true", help="print check warnings")
    e.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    e.set_defaults(func=cmd_eval)
