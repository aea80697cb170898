"""What a worker needs to run rows: plain data that travels to every worker process.

A :class:`WorkerSpec` names the program (its project root and its path in the
project, never its text: a worker checks the program itself), what to run (a handler
or an eval), the run settings a :class:`~promptflow_dsl.runtime.context.RunConfig`
takes, and the digest the driver computed, so that a worker whose copy of the
program differs refuses to run rather than run another program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WorkerSpec:
    """One dataset run, as every worker of it sees it.

    ``root`` is the project root on the driver and ``program`` the entry file's path
    relative to it (POSIX); ``allow`` the extra folders the program may read, relative
    to the root when inside it. ``kind`` is ``"handler"`` or ``"eval"`` and ``name``
    its name; ``dataset`` the dataset's path as given (it only locates row errors: the
    driver reads the rows and sends them). ``concurrency`` is the worker's share of
    the global limit; ``models``, ``cache``, ``cache_dir``, ``trace_dir`` and
    ``write_trace`` are the run's settings (``None``: the worker's project default);
    ``digest`` the program digest the driver checked.
    """

    root: str
    program: str
    kind: str
    name: str
    dataset: str
    digest: str
    concurrency: int = 8
    models: dict[str, str] = field(default_factory=dict)
    cache: str = "default"
    cache_dir: str | None = None
    trace_dir: str | None = None
    write_trace: bool = True
    timeout: float = 120.0
    allow: tuple[str, ...] = ()

    def entry_file(self, cwd: Path) -> Path:
        """The entry file on this machine: under ``root`` when that folder exists here
        (the same machine, or a shared filesystem), else under ``cwd`` (the project as
        Ray's ``working_dir`` unpacked it). Never raises."""
        root = Path(self.root)
        base = root if (root / self.program).is_file() else cwd
        return base / self.program
