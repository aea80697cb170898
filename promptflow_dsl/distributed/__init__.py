"""Running the rows of a dataset run on many processes and machines (``--executor
ray``). See README.md in this folder.

Ray is an optional dependency (``pip install 'promptflow-dsl[ray]'``): this package
imports it only when a run starts.
"""

from .pool import (
    INSTALL_HINT,
    ClusterError,
    PoolStats,
    RayExecutor,
    RayOptions,
    RayUnavailableError,
    import_ray,
    secret_env_names,
)
from .spec import WorkerSpec
from .worker import RowWorker, WorkerSetupError

__all__ = ["INSTALL_HINT", "ClusterError", "PoolStats", "RayExecutor", "RayOptions",
           "RayUnavailableError", "RowWorker", "WorkerSetupError", "WorkerSpec", "import_ray",
           "secret_env_names"]
