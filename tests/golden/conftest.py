# The golden cases are programs that must not compile: the pytest plugin leaves them alone.
collect_ignore_glob = ["*.pflow", "*/*.pflow", "*/*/*.pflow", "*/*/*/*.pflow"]
