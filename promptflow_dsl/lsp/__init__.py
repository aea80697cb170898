"""``pflow lsp``: a language server for ``.pflow`` files over stdio (see README.md).

The server needs the optional ``lsp`` extra (pygls and lsprotocol); the modules that
do not talk the protocol (analysis, index, the features' logic) need only the checker.
"""
