"""A module's environment: its declarations by namespace, resolved types and signatures.

Three namespaces: *values* (handlers, hooks and import aliases), *types* and
*models* (tests and evals have their own too).  The environment is filled in two passes — names and signatures first,
bodies later — so declarations may refer to each other in any order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, Span, error, warning
from ..lang.types import (
    ANY,
    BOOL,
    FLOAT,
    INT,
    NONE,
    STR,
    DictType,
    Field,
    ListType,
    LiteralType,
    RecordType,
    Type,
    is_assignable,
    optional,
)
from ..syntax import ast
from ..syntax.builder import suggest
from .loader import LoadedModule, Project
from .model_ids import model_id_problem
from .program import CheckedModule, HandlerInfo, ModelInfo, ParamInfo, Signature

SCALARS: dict[str, Type] = {"str": STR, "int": INT, "float": FLOAT, "bool": BOOL, "any": ANY,
                            "none": NONE}
DEFAULT_MODEL_ID = "local/smollm2"

# Model parameters with a known type; others pass through to the provider untouched.
KNOWN_MODEL_PARAMS: dict[str, Type] = {
    "temperature": FLOAT, "max_tokens": INT, "top_p": FLOAT, "seed": INT, "timeout": FLOAT,
    "stop": ANY, "api_base": STR, "api_key": STR, "api_key_env": STR, "n_ctx": INT,
    "presence_penalty": FLOAT, "frequency_penalty": FLOAT, "concurrency": INT, "num_retries": INT,
    "repeat_penalty": FLOAT, "top_k": INT, "min_p": FLOAT, "client": STR,
    "server": STR, "chat_template": STR,  # the server profile (models/profiles.py)
    "fallbacks": ListType(STR),  # names of models of this module to try after a transport failure
    # capability overrides (see models/README.md)
    "completion": BOOL, "logprobs": BOOL, "grammar": BOOL, "prefill": BOOL, "json_schema": BOOL,
    "streaming": BOOL, "chat": BOOL, "embeddings": BOOL,
}

#: the values of the model parameter ``server`` (``models.profiles.KINDS``; a test keeps them equal)
SERVER_KINDS = ("openai", "vllm", "llama.cpp", "llama-cpp-python", "ollama", "tgi", "litellm-proxy")


class ModuleEnv:
    """Names, types and signatures of one module, and the diagnostics found resolving them."""

    def __init__(self, lm: LoadedModule, checked: dict[str, CheckedModule], project: Project,
                 diagnostics: list[Diagnostic]) -> None:
        assert lm.module is not None
        self.lm = lm
        self.module = lm.module
        self.file = lm.source.uri
        self.path: Path | None = lm.path
        self.project = project
        self.checked = checked
        self.diags = diagnostics
        self.cm = CheckedModule(lm.key, lm.source.uri, lm.path, lm.module, lm.std_name,
                                dict(lm.imports))
        self.values: dict[str, ast.Decl] = {}
        self.type_decls: dict[str, ast.TypeDecl] = {}
        self.model_decls: dict[str, ast.ModelDecl] = {}
        self.evals: dict[str, ast.EvalDecl] = {}
        self.failed_imports: set[str] = set()
        self._resolving: list[str] = []

    # ------------------------------------------------------------ diagnostics

    def err(self, span: Span, msg: str, *notes: tuple[Span, str]) -> None:
        self.diags.append(error(span, msg, *notes))

    def warn(self, span: Span, msg: str, *notes: tuple[Span, str]) -> None:
        self.diags.append(warning(span, msg, *notes))

    # ------------------------------------------------------------ pass 1: names

    def declare(self) -> None:
        """Index the declarations; report duplicates."""
        tests: dict[str, ast.TestDecl] = {}
        for d in self.module.decls:
            if isinstance(d, ast.TypeDecl):
                table: dict[str, Any] = self.type_decls
                what = "type"
            elif isinstance(d, ast.ModelDecl):
                table, what = self.model_decls, "model"
            elif isinstance(d, ast.TestDecl):
                table, what = tests, "test"
            elif isinstance(d, ast.EvalDecl):
                table, what = self.evals, "eval"
            else:
                table, what = self.values, "name"
                if isinstance(d, ast.ImportDecl) and d.name not in self.lm.imports:
                    self.failed_imports.add(d.name)
            if d.name in table:
                first = table[d.name]
                label = f"test \"{d.name}\"" if what == "test" else f"{what} '{d.name}'"
                self.err(d.name_span, f"duplicate {label}",
                         (first.name_span, "first declared here"))
                continue
            table[d.name] = d
            if d.name in SCALARS and isinstance(d, ast.TypeDecl):
                self.err(d.name_span, f"'{d.name}' is a built-in type and cannot be redeclared")

    # ------------------------------------------------------------ types

    def resolve_types(self) -> None:
        for name in self.type_decls:
            self.named_type(name, self.type_decls[name].name_span)

    def named_type(self, name: str, span: Span) -> Type:
        if name in self.cm.types:
            return self.cm.types[name]
        if name in SCALARS:
            return SCALARS[name]
        if "." in name:
            alias, _, rest = name.partition(".")
            mod = self.imported(alias, span)
            if mod is None:
                return ANY
            if rest not in mod.types:
                self.err(span, f"module '{alias}' has no type '{rest}'{suggest(rest, list(mod.types))}")
                return ANY
            return mod.types[rest]
        decl = self.type_decls.get(name)
        if decl is None:
            options = list(SCALARS) + list(self.type_decls) + ["list", "dict"]
            self.err(span, f"unknown type '{name}'{suggest(name, options)}")
            return ANY
        if name in self._resolving:
            chain = " -> ".join(self._resolving[self._resolving.index(name):] + [name])
            self.err(span, f"recursive type '{name}' is not supported ({chain})")
            return ANY
        self._resolving.append(name)
        try:
            t = self.type_of(decl.type, record_name=name)
        finally:
            self._resolving.pop()
        self.cm.types[name] = t
        return t

    def type_of(self, t: ast.TypeExpr, record_name: str | None = None) -> Type:
        """Resolve a type expression; unknown names are reported and become ``any``."""
        if isinstance(t, ast.NamedType):
            return self.named_type(t.name, t.span)
        if isinstance(t, ast.ListType):
            return ListType(self.type_of(t.item))
        if isinstance(t, ast.DictType):
            key = self.type_of(t.key)
            if key != STR:
                self.err(t.key.span, f"dict keys must be str, not {key.show()}")
            return DictType(self.type_of(t.value))
        if isinstance(t, ast.OptionalType):
            return optional(self.type_of(t.inner))
        if isinstance(t, ast.ConstrainedType):
            from .constraints import constrained

            return constrained(self, t, self.type_of(t.base))
        if isinstance(t, ast.LiteralType):
            return LiteralType((t.value,))
        if isinstance(t, ast.UnionType):
            values: list[str] = []
            for opt in t.options:
                if isinstance(opt, ast.LiteralType):
                    values.append(opt.value)
                elif isinstance(opt, ast.OptionalType) and isinstance(opt.inner, ast.LiteralType):
                    self.err(opt.span, "write `?` after the whole union: (\"a\" | \"b\")? is spelled "
                                       "as a field type `T?` with `type T = \"a\" | \"b\"`")
                else:
                    self.err(opt.span, "only string literals can be joined with `|` "
                                       "(use `T?` for an optional type)")
            if len(set(values)) != len(values):
                self.err(t.span, "duplicate value in literal union")
            return LiteralType(tuple(values)) if values else ANY
        if isinstance(t, ast.RecordType):
            fields = []
            seen: set[str] = set()
            for f in t.fields:
                if f.name in seen:  # reported by the builder; the first declaration wins
                    continue
                seen.add(f.name)
                ftype = self.type_of(f.type)
                default = None
                if f.default is not None:
                    default = self.constant(f.default, ftype, f"default of field '{f.name}'")
                required = f.default is None and not _is_optional(ftype)
                fields.append(Field(f.name, ftype, required, default))
            return RecordType(record_name, tuple(fields))
        return ANY

    # ------------------------------------------------------------ constants

    def constant(self, e: ast.Expr, want: Type | None, what: str) -> Any:
        """The Python value of a constant expression; reports non-constants and type errors."""
        value, t = self._const(e, what)
        if want is not None and t is not None:
            from .constraints import fits

            if fits(self, e, want, what) and not is_assignable(t, want):
                self.err(e.span, f"{what} must be {want.show()}, got {t.show()}")
        return value

    def _const(self, e: ast.Expr, what: str) -> tuple[Any, Type | None]:
        if isinstance(e, ast.Str):
            return e.value, LiteralType((e.value,))
        if isinstance(e, ast.Bool):
            return e.value, BOOL
        if isinstance(e, ast.Int):
            return e.value, INT
        if isinstance(e, ast.Float):
            return e.value, FLOAT
        if isinstance(e, ast.NoneLit):
            return None, NONE
        if isinstance(e, ast.ListExpr):
            vals = [self._const(i, what) for i in e.items]
            from ..lang.types import join

            item: Type | None = None
            for _, t in vals:
                item = t if item is None else (join(item, t) if t is not None else item)
            return [v for v, _ in vals], ListType(item or ANY)
        if isinstance(e, ast.RecordExpr):
            out = {}
            fields = []
            for en in e.entries:
                v, t = self._const(en.value, what)
                out[en.key] = v
                fields.append(Field(en.key, t or ANY, True))
            return out, RecordType(None, tuple(fields))
        self.err(e.span, f"{what} must be a constant (a literal, list or record of literals)")
        return None, None

    # ------------------------------------------------------------ imports and references

    def imported(self, alias: str, span: Span) -> CheckedModule | None:
        key = self.lm.imports.get(alias)
        if key is None:
            if alias not in self.failed_imports:
                self.err(span, f"unknown module '{alias}'; import it first")
            return None
        return self.checked.get(key)

    def _from_import(self, ref: ast.Ref, table: str, what: str) -> Any:
        """Look ``alias.name`` up in table ``table`` ("handlers", "hooks", "models") of an import."""
        alias, name = ref.parts
        mod = self.imported(alias, ref.span)
        if mod is None:
            return None
        entries = getattr(mod, table)
        found = entries.get(name)
        if found is None:
            self.err(ref.span, f"module '{alias}' has no {what} '{name}'{suggest(name, list(entries))}")
        return found

    def handler_by_ref(self, ref: ast.Ref, what: str) -> HandlerInfo | None:
        """Resolve ``name`` / ``alias.name`` to a handler; reports unknown names."""
        if len(ref.parts) == 2:
            return self._from_import(ref, "handlers", "handler")
        name = ref.parts[0]
        h = self.cm.handlers.get(name)
        if h is None:
            decl = self.values.get(name)
            if isinstance(decl, ast.HookDecl):
                self.err(ref.span, f"'{name}' is a hook, not a handler ({what})")
            elif isinstance(decl, ast.ImportDecl):
                self.err(ref.span, f"'{name}' is a module, not a handler ({what})")
            elif decl is None:
                self.err(ref.span, f"unknown handler '{name}' ({what}){suggest(name, list(self.cm.handlers))}")
        return h

    def hook_by_ref(self, ref: ast.Ref) -> Any:
        """Resolve ``name`` / ``alias.name`` to a :class:`HookInfo`; reports unknown names."""
        if len(ref.parts) == 2:
            return self._from_import(ref, "hooks", "hook")
        hk = self.cm.hooks.get(ref.parts[0])
        if hk is None:
            decl = self.values.get(ref.parts[0])
            hooks = [n for n, d in self.values.items() if isinstance(d, ast.HookDecl)]
            if decl is not None and not isinstance(decl, ast.HookDecl):
                self.err(ref.span, f"'{ref.parts[0]}' is not a hook")
            elif decl is None:
                self.err(ref.span, f"unknown hook '{ref.parts[0]}'{suggest(ref.parts[0], hooks)}")
        return hk

    def model_by_ref(self, ref: ast.Ref) -> ModelInfo | None:
        """Resolve ``name`` / ``alias.name`` to a declared model; reports unknown names."""
        if len(ref.parts) == 2:
            return self._from_import(ref, "models", "model")
        m = self.cm.models.get(ref.parts[0])
        if m is None:
            hint = suggest(ref.parts[0], list(self.cm.models)).removeprefix("; ")
            self.err(ref.span, f"unknown model '{ref.parts[0]}'" + (f" ({hint})" if hint else "")
                     + f"; declare it with `model {ref.parts[0]} = \"provider/model-id\"`")
        return m

    # ------------------------------------------------------------ models and signatures

    def declare_models(self) -> None:
        for name, d in self.model_decls.items():
            if not d.model_id.value.strip():
                self.err(d.model_id.span, "model id is empty")
            elif (problem := model_id_problem(d.model_id.value)) is not None:
                self.err(d.model_id.span, problem)
            params: dict[str, Any] = {}
            if d.params is not None:
                for en in d.params.entries:
                    want = KNOWN_MODEL_PARAMS.get(en.key)
                    params[en.key] = self.constant(en.value, want, f"model parameter '{en.key}'")
                    if want is None:
                        hint = suggest(en.key, list(KNOWN_MODEL_PARAMS))
                        if hint:
                            self.warn(en.span, f"unknown model parameter '{en.key}'{hint}")
                    if en.key == "server" and params[en.key] not in (*SERVER_KINDS, None):
                        self.err(en.span, f"unknown server kind {params[en.key]!r}; one of: "
                                          f"{', '.join(SERVER_KINDS)}")
            self.cm.models[name] = ModelInfo(name, d.model_id.value, d.embed, params, d.span)
        if "default" not in self.cm.models:
            self.cm.models["default"] = ModelInfo("default", DEFAULT_MODEL_ID, False, {}, None)

    def signature(self, d: ast.HandlerDecl) -> Signature:
        params = []
        seen_default = False
        for p in d.params:
            ptype = self.type_of(p.type)
            if p.default is not None:
                seen_default = True
                self.constant(p.default, ptype, f"default of parameter '{p.name}'")
            elif seen_default:
                self.err(p.span, f"parameter '{p.name}' without a default follows one with a default")
            params.append(ParamInfo(p.name, ptype, p.default))
        return Signature(tuple(params), self.type_of(d.returns))


def _is_optional(t: Type) -> bool:
    from ..lang.types import OptionalType

    return isinstance(t, OptionalType) or t == ANY
