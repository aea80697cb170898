"""The ``prompt`` handler kind, and the ``hooks [...]`` it may generate with (see
``kinds/README.md`` for the module of each stage).  Nothing is imported here."""
