"""Python helper for multihop.pflow: paths of the files beside this module."""
from pathlib import Path


def here(name: str) -> str:
    """The absolute path of ``name``, relative to this folder (``data/corpus.jsonl``)."""
    return str(Path(__file__).resolve().parent / name)
