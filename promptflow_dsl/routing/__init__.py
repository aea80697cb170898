"""Mixture-of-prompts routing (``route`` handlers): embedders, centroids, automatic
experts (k-means demo assignment), the routers, and the instruction optimizer behind
``pflow optimize``.  See README.md in this folder.

Modules that do numerics import numpy; import them where they are used.
"""
