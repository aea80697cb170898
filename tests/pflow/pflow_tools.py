"""Python tools for the .pflow tests in this folder."""


def words(text: str) -> list[str]:
    return text.split()


def shout(text: str) -> str:
    return text.upper()


def fail(text: str) -> str:
    raise ValueError(f"refusing {text!r}")
