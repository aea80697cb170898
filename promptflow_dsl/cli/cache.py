"""``pflow cache info|clear``: the project's response cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_FAILED, EXIT_OK, project_dir, rel


def cmd_cache(args: argparse.Namespace) -> int:
    from ..runtime.cache import ResponseCache, default_cache_dir

    directory = Path(args.cache_dir) if args.cache_dir else default_cache_dir(project_dir(args))
    if args.action == "info":
        if not directory.exists():
            print(f"cache: {rel(directory)} (empty: no cache yet)")
            return EXIT_OK
        with ResponseCache(directory) as cache:
            info = cache.info()
        if "error" in info:
            print(f"pflow cache info: the cache in {rel(directory)} cannot be read "
                  f"({info['error']}); runs treat it as empty; `pflow cache clear` recreates it",
                  file=sys.stderr)
            return EXIT_FAILED
        print(f"cache: {rel(directory)}\nentries: {info.get('entries', 0)}\n"
              f"size: {info.get('size', 0)} bytes\nformat: {info.get('format')}")
        return EXIT_OK
    if not directory.exists():
        print(f"cache: {rel(directory)} is already empty")
        return EXIT_OK
    try:
        with ResponseCache(directory) as cache:
            n = cache.clear()
    except OSError as exc:
        print(f"pflow cache clear: cannot clear {rel(directory)}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if cache.recreated:
        print(f"cache: {rel(directory)} could not be read (corrupt); recreated it empty")
        return EXIT_OK
    print(f"cache: removed {n} entr{'y' if n == 1 else 'ies'} from {rel(directory)}")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    c2 = sub.add_parser("cache", help="show or clear the response cache",
                        description="The response cache of the project in the current folder "
                                    "(.pflow-cache/responses, or PFLOW_CACHE_DIR).")
    c2.add_argument("action", choices=("info", "clear"))
    c2.add_argument("--cache-dir", metavar="DIR")
    c2.add_argument("--project", metavar="PATH", help="a file or folder of the project")
    c2.set_defaults(func=cmd_cache)
