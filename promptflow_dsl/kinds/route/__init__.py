"""The ``route`` handler kind, mixture-of-prompts routing: embedders, centroids,
automatic experts (k-means demo assignment), the routers, the experts, and the
instruction optimizer and explanation behind ``pflow optimize`` and ``pflow route
explain``.  See README.md in this folder.  Nothing is imported here; modules that do
numerics import numpy, so import them where they are used.
"""
