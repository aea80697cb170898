"""``pflow estimate FILE HANDLER|EVAL [--data PATH]``: model calls, tokens and cost
before any call (see ``promptflow_dsl/estimate``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .common import EXIT_OK, EXIT_USAGE, UsageError, load_or_report, parse_models, rel

LABEL = "pflow estimate"


def _check_options(args: argparse.Namespace, is_eval: bool) -> None:
    for option, value, least in (("--limit", args.limit, 0), ("--sample", args.sample, 0),
                                 ("--max-rows", args.max_rows, 1)):
        if value is not None and value < least:
            raise UsageError(f"{LABEL}: {option} must be at least {least}")
    if args.limit is not None and args.sample is not None:
        raise UsageError(f"{LABEL}: --limit and --sample cannot be used together")
    if is_eval and args.map:
        raise UsageError(f"{LABEL}: --map is for handlers (an eval's `run` reads its columns)")
    if args.data is None and not is_eval:
        for option, given in (("--map", bool(args.map)), ("--limit", args.limit is not None),
                              ("--sample", args.sample is not None),
                              ("--max-rows", args.max_rows is not None)):
            if given:
                raise UsageError(f"{LABEL}: {option} needs --data")


def cmd_estimate(args: argparse.Namespace) -> int:
    models = parse_models(args.model, LABEL)
    from ..datasets import parse_mapping

    try:
        mapping = parse_mapping(args.map or [])
    except ValueError as exc:
        raise UsageError(f"{LABEL}: {exc}") from None
    program = load_or_report(args)
    if program is None:
        return EXIT_USAGE
    from ..check.program import HandlerInfo
    from ..estimate import EstimateError, estimate, resolve

    try:
        _check_options(args, not isinstance(resolve(program, args.name), HandlerInfo))
        result = estimate(program, args.name, args.data, models=models, mapping=mapping,
                          limit=args.limit, sample=args.sample, seed=args.seed,
                          max_rows=args.max_rows)
    except EstimateError as exc:
        raise UsageError(f"{LABEL}: {exc}") from None
    if result.data is not None:  # an eval's data is an absolute path: shown from here
        result.data = rel(Path(result.data))
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        print(result.render())
    return EXIT_OK


def add_parser(sub: Any) -> None:
    e = sub.add_parser("estimate", help="estimate model calls, tokens and cost before running",
                       description="Estimate what running HANDLER (or every row of EVAL) would "
                                   "take, without calling a model: model calls (min..max), input "
                                   "tokens counted with each model's tokenizer, output tokens "
                                   "(typical and max_tokens), and the cost from litellm's price "
                                   "map.")
    e.add_argument("file", metavar="FILE")
    e.add_argument("name", metavar="HANDLER|EVAL")
    e.add_argument("--data", metavar="PATH",
                   help="a JSONL or CSV dataset: estimate one call per row (an eval: instead of "
                        "its own data)")
    e.add_argument("--map", action="append", metavar="PARAM=COLUMN",
                   help="parameter PARAM takes column COLUMN (repeatable)")
    e.add_argument("--limit", type=int, metavar="N", help="only the first N rows")
    e.add_argument("--sample", type=int, metavar="N", help="N rows sampled with --seed")
    e.add_argument("--seed", type=int, default=0, metavar="S", help="the sample's seed (default 0)")
    e.add_argument("--max-rows", type=int, metavar="N",
                   help="estimate a seeded sample of N rows and scale to all (default: every row)")
    e.add_argument("-m", "--model", action="append", metavar="ID|NAME=ID",
                   help="use model ID for `default` (ID alone) or for the model named NAME")
    e.add_argument("--json", action="store_true", help="print the estimate as JSON")
    e.add_argument("--allow-path", action="append", default=[], metavar="DIR")
    e.set_defaults(func=cmd_estimate)
