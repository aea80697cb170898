"""promptflow-dsl: write, check and run modular LLM prompt programs (.pflow files)."""

from .diagnostics import CompileError, Diagnostic, Severity, Span

__version__ = "0.1.0"
__all__ = ["CompileError", "Diagnostic", "Severity", "Span", "__version__"]
