"""Handler kinds, one package each (``prompt``, ``tool``, ``flow``, ``decompose``,
``route``, ``sketch``); :mod:`.registry` lists them.  See README.md in this folder.

Nothing is imported here: each stage imports the modules of its own stage, through
the registry.
"""
