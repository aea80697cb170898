"""Language semantics shared by the checker and the runtime (see README.md).

Nothing here imports a stage: check and run both import these modules, never the
other way round.  Submodules are imported on demand; this package imports nothing.
"""
