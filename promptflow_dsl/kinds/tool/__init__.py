"""The ``tool`` handler kind: a Python function.  Nothing is imported here."""
