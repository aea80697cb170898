"""The ``decompose`` handler kind: Decomposed Prompting (see
docs/techniques/decompose.md).  Nothing is imported here."""
