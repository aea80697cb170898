"""The ``flow`` handler kind: a dataflow graph of calls.  Nothing is imported here."""
