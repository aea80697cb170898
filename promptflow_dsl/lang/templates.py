"""The Jinja2 environment of ``.pflow`` templates, shared by the checker (which parses
templates) and the runtime (which renders them): sandboxed, ``StrictUndefined``,
``trim_blocks``, ``lstrip_blocks``, no autoescaping, trailing newlines kept.  Jinja2
is imported on first use.

The sandbox bounds what one expression can build, so that neither checking nor
rendering a template can run for minutes or fill the memory:

- nothing is evaluated while a template is compiled: Jinja folds constant
  expressions (``{{ 9 ** (9 ** 9) }}``, ``{{ 'x' | center(2000000000) }}``) at
  compile time unless the operator is intercepted by the sandbox or the filter
  needs the render context, so ``**``, ``*`` and ``%`` are intercepted and every
  filter is wrapped as a context filter;
- when rendering, ``**`` and ``*`` on integers may not give more than
  :data:`MAX_INT_DIGITS` digits; repeating a string or list (``*``), padding
  (``center``, ``indent``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs``), batching
  (``batch``, ``slice``), ``lipsum`` and the widths and precisions of ``%`` /
  ``format`` / ``str.format`` may not ask for more than :data:`MAX_REPEAT` characters
  or items; ``range`` is capped by Jinja's own sandbox.

Going over a bound raises :class:`TemplateLimit` (a Jinja ``SecurityError``) with a
message that names the bound.
"""

from __future__ import annotations

import math
import re
import string
from functools import lru_cache
from typing import Any

from ..syntax import ast
from .holes import offset_to_line_col

__all__ = ["template_env", "locate", "MAX_REPEAT", "MAX_INT_DIGITS"]

#: the most characters or items a repetition, padding, batch or format width may ask for
MAX_REPEAT = 1_000_000
#: the most digits an integer computed by ``**`` or ``*`` in a template may have
MAX_INT_DIGITS = 4300

_MAX_INT_BITS = int(MAX_INT_DIGITS * math.log2(10))
_STR_PADDERS = frozenset({"center", "ljust", "rjust", "zfill"})
_PRINTF_NUMBERS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+)?(?:\.(\d+))?")


def _limit_error(what: str) -> Exception:
    return _error_class()(f"template limit: {what}")


@lru_cache(maxsize=1)
def _error_class() -> type[Exception]:
    from jinja2.sandbox import SecurityError

    class TemplateLimit(SecurityError):
        """An expression of a template asked for more than the sandbox allows."""

    return TemplateLimit


def _check_count(n: Any, what: str) -> None:
    if isinstance(n, int) and not isinstance(n, bool) and n > MAX_REPEAT:
        raise _limit_error(f"{what} of {n} is over {MAX_REPEAT:,}")


def _check_printf(fmt: Any) -> None:
    """Widths and precisions of a printf-style format (``"%10s" % x``, ``|format``)."""
    if not isinstance(fmt, str):
        return
    for m in _PRINTF_NUMBERS.finditer(fmt):
        for group in m.groups():
            if group is not None and (len(group) > 7 or int(group) > MAX_REPEAT):
                raise _limit_error(f"a format width or precision of {group[:20]} is over "
                                   f"{MAX_REPEAT:,}")


def _check_brace_format(fmt: str, depth: int = 0) -> None:
    """Widths and precisions of a ``str.format`` string; a width given by a field
    (``{:{w}}``) is refused, since it is only known while formatting."""
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # Python reports the bad format itself when it is used
    for _, _, spec, _ in parsed:
        if not spec:
            continue
        if "{" in spec:
            raise _limit_error("a format width given by another field is not allowed")
        for digits in re.findall(r"\d+", spec):
            if len(digits) > 7 or int(digits) > MAX_REPEAT:
                raise _limit_error(f"a format width or precision of {digits[:20]} is over "
                                   f"{MAX_REPEAT:,}")


def _check_power(left: Any, right: Any) -> None:
    if (isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
            and right * math.log2(abs(left)) > _MAX_INT_BITS):
        raise _limit_error(f"the result of ** would have more than {MAX_INT_DIGITS} digits")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if abs(left).bit_length() + abs(right).bit_length() > _MAX_INT_BITS + 2:
            raise _limit_error(f"the result of * would have more than {MAX_INT_DIGITS} digits")
        return
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and n > 0:
            if len(seq) * n > MAX_REPEAT:
                raise _limit_error(f"repeating {len(seq):,} characters or items {n} times "
                                   f"is over {MAX_REPEAT:,}")


# filter name -> the keyword of its count (also its first argument after the value)
_COUNT_ARGS: dict[str, str] = {"center": "width", "indent": "width", "batch": "linecount",
                               "slice": "slices"}


def _bounded_filter(name: str, func: Any) -> Any:
    """``func`` as a context filter (so Jinja never calls it while compiling) whose
    counts and format widths are checked first."""
    from jinja2.utils import _PassArg, pass_context

    passing = _PassArg.from_obj(func)

    @pass_context
    def bounded(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if name in _COUNT_ARGS:
            keyword = _COUNT_ARGS[name]
            count = args[0] if args else kwargs.get(keyword)
            if name == "indent" and isinstance(count, int) and isinstance(value, str):
                count *= value.count("\n") + 1  # every line is indented
            _check_count(count, f"{name}({keyword}=...)")
        elif name == "format":
            _check_printf(value)
        if passing is _PassArg.context:
            return func(context, value, *args, **kwargs)
        if passing is _PassArg.eval_context:
            return func(context.eval_ctx, value, *args, **kwargs)
        if passing is _PassArg.environment:
            return func(context.environment, value, *args, **kwargs)
        return func(value, *args, **kwargs)

    bounded.__name__ = getattr(func, "__name__", name)
    bounded.__doc__ = getattr(func, "__doc__", None)
    return bounded


def _bounded_lipsum(func: Any) -> Any:
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # noqa: A002
        _check_count(n, "lipsum(n=...)")
        _check_count(n * max if isinstance(n, int) and isinstance(max, int) else 0,
                     "lipsum(n * max)")
        return func(n=n, html=html, min=min, max=max)

    return lipsum


@lru_cache(maxsize=1)
def _environment_class() -> type:
    from jinja2.sandbox import SandboxedEnvironment

    class BoundedSandbox(SandboxedEnvironment):
        """Jinja's sandbox with the bounds of this module (see the module docstring)."""

        intercepted_binops = frozenset({"**", "*", "%"})

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
            if "lipsum" in self.globals:
                self.globals["lipsum"] = _bounded_lipsum(self.globals["lipsum"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**":
                _check_power(left, right)
            elif operator == "*":
                _check_product(left, right)
            elif operator == "%":
                _check_printf(left)
            return super().call_binop(context, operator, left, right)

        def wrap_str_format(self, value: Any) -> Any:
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:
                _check_brace_format(value.__self__)
            return wrapped

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str):
                name = getattr(__obj, "__name__", "")
                if name in _STR_PADDERS and args:
                    _check_count(args[0], f"str.{name}(width)")
                elif name == "expandtabs":
                    size = args[0] if args else kwargs.get("tabsize", 8)
                    if isinstance(size, int):
                        _check_count(size * owner.count("\t"), "str.expandtabs(tabsize)")
            return super().call(__context, __obj, *args, **kwargs)

    return BoundedSandbox


@lru_cache(maxsize=1)
def template_env() -> Any:
    """The sandboxed, bounded Jinja2 environment shared by checker and runtime."""
    from jinja2 import StrictUndefined

    return _environment_class()(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                autoescape=False, keep_trailing_newline=True)


def locate(node: ast.Str, text: str, offset: int) -> tuple[int, int]:
    """Source (line, col) of character ``offset`` of ``text`` (the value of ``node``);
    a binary search in the text's line starts, which are computed once per text."""
    line_index, col_index = offset_to_line_col(text, offset)
    return node.origin(line_index, col_index)
