"""Syntax highlighting of ``.pflow`` files: a Pygments lexer and the word lists it and
the VS Code extension's TextMate grammar share (see ``README.md``)."""
