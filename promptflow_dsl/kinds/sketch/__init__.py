"""The ``sketch`` handler kind: a template whose holes a model fills (see
docs/techniques/sketch.md).  Nothing is imported here."""
