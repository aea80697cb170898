"""The driver side of a distributed dataset run: a pool of Ray actors behind one row
function.

:class:`RayExecutor` gives the dataset engine (:func:`~promptflow_dsl.datasets.run_rows`)
an ordinary ``run_row(line, row)``; everything else stays on the driver — reading
the rows, the progress display, Ctrl-C, ``--max-errors`` and the only writer of the
results file — so a distributed run records every row exactly once by the same code
as a local one.

Each call sends one row to the least busy worker and awaits the outcome; outcomes
come back as rows finish, in any order. A worker process or node lost mid-row
raises a Ray actor error on the driver: the row is sent again to another worker (at
most ``max_reruns`` times), and its result line says how many times it was re-run.
Ray restarts a lost worker (``max_restarts``), which checks the program again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .spec import WorkerSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..check.program import CheckedProgram
    from ..datasets import RowFunction, RowOutcome
    from ..runtime.context import RunConfig

INSTALL_HINT = "pip install 'promptflow-dsl[ray]'"

UPLOAD_EXCLUDES = [".pflow-cache", ".git", ".venv", "venv", "__pycache__", "*.pyc",
                   "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache"]
"""What ``working_dir`` leaves out when the project travels to a remote cluster."""


class RayUnavailableError(Exception):
    """``--executor ray`` without Ray installed."""


class ClusterError(Exception):
    """The cluster cannot be reached, or its workers cannot start."""


@dataclass(frozen=True)
class RayOptions:
    """How to run rows on Ray.

    ``address``: ``None`` starts a local Ray instance for the run (stopped after it);
    ``"auto"``, ``HOST:PORT`` or ``ray://HOST:PORT`` joins an existing cluster.
    ``workers``: how many worker processes (default: one per CPU the cluster has,
    ``cpus_per_worker`` each). ``env``: names of environment variables the workers get
    from the driver (with every ``api_key_env`` the program's models name).
    ``upload``: ship the project folder to the workers as Ray's ``working_dir``
    (default: when joining a cluster, since its nodes may not have the files).
    ``local_cpus``: the CPUs a local instance declares (default: the machine's).
    ``max_reruns``: how many times a row whose worker was lost is sent again.
    ``max_restarts``: how many times Ray restarts a lost worker.
    ``start_timeout``: seconds to wait for the workers to be ready.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    env: Sequence[str] = ()
    upload: bool | None = None
    local_cpus: int | None = None
    max_reruns: int = 3
    max_restarts: int = 3
    start_timeout: float = 120.0


@dataclass
class _Worker:
    actor: Any
    index: int
    in_flight: int = 0
    lost: int = 0


@dataclass
class PoolStats:
    """What a pool did: ``workers`` started, ``hosts`` they ran on, ``reruns`` of rows
    whose worker was lost, ``rows`` sent. Never raises."""

    workers: int = 0
    hosts: list[str] = field(default_factory=list)
    per_worker: int = 0
    reruns: int = 0
    rows: int = 0
    address: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As recorded in a run's meta. Never raises."""
        return {"kind": "ray", "address": self.address, "workers": self.workers,
                "hosts": sorted(set(self.hosts)), "concurrency_per_worker": self.per_worker}


def import_ray() -> Any:
    """The ``ray`` module. Raises :class:`RayUnavailableError` when it is not installed."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(f"--executor ray needs Ray, which is not installed: "
                                  f"{INSTALL_HINT}") from None
    return ray


def secret_env_names(program: CheckedProgram) -> list[str]:
    """The ``api_key_env`` variables the program's models name. Never raises."""
    names: set[str] = set()
    for module in program.modules.values():
        for info in module.models.values():
            value = info.params.get("api_key_env")
            if isinstance(value, str) and value:
                names.add(value)
    return sorted(names)


def _lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    names = ("RayActorError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError",
             "OwnerDiedError", "LocalRayletDiedError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def _ray_error_reason(exc: BaseException) -> str:
    """What went wrong on a worker, without Ray's traceback: the message of a
    ``WorkerSetupError`` (a worker that could not load the program) or the last
    non-empty line of the error (a worker that was lost or failed)."""
    text = str(exc)
    for line in reversed(text.splitlines()):
        if "WorkerSetupError:" in line:
            return line.split("WorkerSetupError:", 1)[1].strip()
    lines = [x for x in text.splitlines() if x.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _run_settings(config: RunConfig | None) -> dict[str, Any]:
    """The run settings a worker needs, as the fields of :class:`WorkerSpec`
    (the defaults of a run without a configuration when ``config`` is ``None``)."""
    if config is None:
        return {"models": {}, "cache": "default", "cache_dir": None, "trace_dir": None,
                "write_trace": True, "timeout": 120.0}
    return {"models": dict(config.models), "cache": str(config.cache),
            "cache_dir": str(config.cache_dir) if config.cache_dir else None,
            "trace_dir": str(Path(config.trace_dir).resolve()) if config.trace_dir else None,
            "write_trace": config.write_trace, "timeout": config.timeout}


class RayExecutor:
    """Runs the rows of a dataset run on Ray workers (see the module docstring)."""

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self.stats = PoolStats(address=self.options.address)

    def runtime_env(self, root: Path, env_names: Sequence[str]) -> dict[str, Any]:
        """The Ray ``runtime_env`` of the workers: the environment variables named (those
        set on the driver) and, when uploading, the project folder. Never raises."""
        env = {name: os.environ[name] for name in env_names if name in os.environ}
        runtime: dict[str, Any] = {"env_vars": env} if env else {}
        upload = self.options.upload
        if upload is None:
            upload = self.options.address is not None
        if upload:
            runtime["working_dir"] = str(root)
            runtime["excludes"] = list(UPLOAD_EXCLUDES)
        return runtime

    def _connect(self, ray: Any, runtime_env: Mapping[str, Any]) -> bool:
        """Join or start Ray; return whether this call started it. Raises
        :class:`ClusterError`."""
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {
            "runtime_env": dict(runtime_env) or None,
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        if self.options.address is None:
            kwargs["num_cpus"] = self.options.local_cpus
        else:
            kwargs["address"] = self.options.address
            kwargs.pop("include_dashboard")
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; all mean "cannot"
            where = self.options.address or "a local instance"
            raise ClusterError(f"cannot start Ray ({where}): {_ray_error_reason(exc)}") from None
        return True

    def _workers(self, ray: Any) -> int:
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        per = self.options.cpus_per_worker
        fits = int(cpus // per) if per > 0 else 1_000_000
        wanted = self.options.workers if self.options.workers is not None else max(fits, 1)
        if wanted < 1:
            raise ClusterError(f"--workers must be at least 1, got {wanted}")
        if wanted > fits:
            raise ClusterError(f"{wanted} workers of {per:g} CPU each do not fit: the cluster "
                               f"has {cpus:g} CPUs (fewer --workers, or a smaller "
                               "--worker-cpus)")
        return wanted

    @contextlib.asynccontextmanager
    async def rows(self, program: CheckedProgram, config: RunConfig | None, *, kind: str,
                   name: str, dataset: str | os.PathLike[str],
                   concurrency: int) -> AsyncIterator[RowFunction]:
        """Start the workers for one dataset run and yield its row function; stop them
        (and a local Ray instance this call started) on exit.

        ``kind`` is ``"handler"`` or ``"eval"``; ``concurrency`` the run's global limit
        of rows in flight, split evenly over the workers.

        Raises :class:`RayUnavailableError` without Ray, :class:`ClusterError` when Ray
        cannot start or be joined, too many workers are asked for, or a worker cannot
        run the program (it is missing on the worker's machine, does not check there,
        or differs from the driver's).
        """
        from ..datasets.programs import program_digest
        from .worker import RowWorker

        ray = import_ray()
        root = (program.root or Path.cwd()).resolve()
        entry = Path(program.entry.uri).resolve()
        try:
            rel = entry.relative_to(root).as_posix()
        except ValueError:
            raise ClusterError(f"{program.entry.uri} is outside its project root {root}: "
                               "workers find the program by its path in the project") from None
        env_names = sorted({*secret_env_names(program), *self.options.env})
        started = self._connect(ray, self.runtime_env(root, env_names))
        actors: list[_Worker] = []
        try:
            n = self._workers(ray)
            per = max(1, math.ceil(concurrency / n))
            spec = WorkerSpec(
                root=str(root), program=rel, kind=kind, name=name,
                dataset=os.fspath(dataset), digest=program_digest(program),
                concurrency=per, **_run_settings(config))
            remote = ray.remote(RowWorker).options(
                num_cpus=self.options.cpus_per_worker, max_concurrency=per,
                max_restarts=self.options.max_restarts, max_task_retries=0,
                scheduling_strategy="SPREAD")
            actors = [_Worker(remote.remote(spec), i) for i in range(n)]
            await self._await_ready(ray, actors)
            self.stats.workers, self.stats.per_worker = n, per
            yield self._row_function(ray, actors)
        finally:
            await self._stop(ray, actors, started)

    async def _await_ready(self, ray: Any, actors: list[_Worker]) -> None:
        refs = [w.actor.ready.remote() for w in actors]
        try:
            infos = await asyncio.wait_for(asyncio.gather(*refs),
                                           timeout=self.options.start_timeout)
        except TimeoutError:
            raise ClusterError(f"the {len(actors)} workers were not ready after "
                               f"{self.options.start_timeout:g} s") from None
        except Exception as exc:  # noqa: BLE001 - a worker's setup error comes back wrapped
            raise ClusterError(f"a worker cannot run the program: {_ray_error_reason(exc)}"
                               ) from None
        self.stats.hosts = [str(info.get("host")) for info in infos]

    def _row_function(self, ray: Any, workers: list[_Worker]) -> RowFunction:
        from ..datasets import RowOutcome

        lost = _lost_errors(ray)
        task_error = ray.exceptions.RayTaskError
        max_reruns = self.options.max_reruns
        stats = self.stats

        def pick(avoid: set[int]) -> _Worker:
            pool = [w for w in workers if w.index not in avoid] or workers
            return min(pool, key=lambda w: (w.in_flight, w.lost, w.index))

        async def run_row(line: int, row: Any) -> RowOutcome:
            reruns = 0
            avoid: set[int] = set()
            stats.rows += 1
            while True:
                worker = pick(avoid)
                worker.in_flight += 1
                ref = worker.actor.run.remote(line, row)
                try:
                    outcome: RowOutcome = await ref
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref)
                    raise
                except lost as exc:
                    worker.lost += 1
                    reruns += 1
                    stats.reruns += 1
                    if reruns > max_reruns:
                        return RowOutcome.failure(
                            f"the worker running the row was lost {reruns} times "
                            f"({_ray_error_reason(exc)})", error_type="WorkerLost",
                            fields={"reruns": reruns})
                    avoid.add(worker.index)
                    if len(avoid) >= len(workers):
                        avoid.clear()
                    await asyncio.sleep(min(0.25 * reruns, 2.0))
                    continue
                except task_error as exc:  # the row function itself raised
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise RuntimeError(_ray_error_reason(exc)) from None
                finally:
                    worker.in_flight -= 1
                if reruns:
                    outcome = replace(outcome, fields={**outcome.fields, "reruns": reruns})
                return outcome

        return run_row

    async def _stop(self, ray: Any, actors: list[_Worker], started: bool) -> None:
        if actors:
            closing = [w.actor.close.remote() for w in actors]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True),
                                       timeout=10)
            for w in actors:
                with contextlib.suppress(Exception):
                    ray.kill(w.actor)
        if started:
            with contextlib.suppress(Exception):
                ray.shutdown()
