"""Print the packages whose installed version differs from the lock (information only).

Usage: python .ci/lock_diff.py LOCK FREEZE  -- both in `name==version` lines.
"""

from __future__ import annotations

import re
import sys


def read(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                out[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return out


def main() -> int:
    lock, now = read(sys.argv[1]), read(sys.argv[2])
    changed = [(n, lock[n], now[n]) for n in sorted(lock.keys() & now.keys()) if lock[n] != now[n]]
    added = sorted(now.keys() - lock.keys())
    for name, old, new in changed:
        print(f"  {name}: {old} -> {new}")
    for name in added:
        print(f"  {name}: new, {now[name]}")
    print(f"{len(changed)} changed, {len(added)} not in the lock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
