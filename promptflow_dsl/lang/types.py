"""Resolved types of the ``.pflow`` language, as used by the static checker.

The type system
---------------
* Scalars: ``str``, ``int``, ``float``, ``bool``, ``any`` and ``none`` (the type of
  the ``none`` literal).  One instance of each: :data:`STR`, :data:`INT`, ... .
* ``list[T]`` and ``dict[str, T]`` (keys are always strings).
* ``T?``: *T or none*.  Always built with :func:`optional`, which keeps the form
  canonical: ``T??`` is ``T?``, ``none?`` is ``none``, ``any?`` is ``any``.
* String-literal unions ``"positive" | "negative"`` (:class:`LiteralType`): values in
  declared order, duplicates dropped; two unions with the same values in another
  order are the same type.
* Records, named (``type Verdict { ... }``) or inline (``{a: str, b: int}``).  A
  field is *not required* when it has a default or an optional type.  Records are
  structural: a name is for display, JSON-schema titles and model class names.

Subtyping (:func:`is_assignable`) is what every edge between handlers is checked
with: ``any`` goes both ways; literal unions are subtypes of ``str`` and of any
union holding their values; ``int`` is a subtype of ``float``; ``T`` and ``none``
are subtypes of ``T?``; lists and dicts are covariant (values are immutable);
records are width- and depth-subtyped (extra source fields are allowed).
``bool`` is *not* a subtype of ``int``.

Field constraints (``str(max_length=200)``, ``int(min=1, max=5)``, ``float(min=0.0)``,
``list[T](min_items=1)``, :mod:`.constraints`) ride on ``StrType``, ``IntType``,
``FloatType`` and ``ListType``; the unconstrained types are the singletons.  A
constrained type is assignable to its base and to any type its base is assignable to.
The other way, a type is assignable to a constrained one when its base is, and the
constraints are checked where a value arrives (every handler edge validates its
values) — except when the answer is known statically: a string-literal type whose
values break the constraints, or two constraints no value meets together
(``int(min=10)`` where ``int(max=5)`` is wanted), are mismatches.  The join of two
types with different constraints drops them (the join of the bases).

At run time each record becomes a pydantic model (:func:`pydantic_model`) and
values decoded from JSON are checked with :func:`validate`.  pydantic is imported
lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import copy
import functools
import json
import keyword
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .constraints import Constraints, disjoint

if TYPE_CHECKING:  # pragma: no cover
    import pydantic

__all__ = [
    "ANY", "BOOL", "FLOAT", "INT", "NONE", "STR",
    "AnyType", "BoolType", "DictType", "Field", "FloatType", "IntType", "ListType",
    "LiteralType", "NoneType_", "OptionalType", "RecordType", "StrType", "Type",
    "TypeValidationError", "constraints_of", "explain_mismatch", "extra_fields",
    "has_constraints", "is_assignable", "join", "json_schema", "optional", "pydantic_model",
    "unconstrained", "validate",
]

# --------------------------------------------------------------------------- classes


@dataclass(frozen=True)
class Type:
    """Base of all resolved types; ``show()`` (and ``str()``) give the pflow spelling."""

    def show(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.show()


@dataclass(frozen=True)
class _Scalar(Type):
    def show(self) -> str:
        return _SCALAR_NAMES[type(self)]


@dataclass(frozen=True)
class _Constrainable(_Scalar):
    """A scalar that may carry field constraints (``str(max_length=200)``); the
    unconstrained one is the singleton (``STR``...)."""

    constraints: Constraints | None = None

    def show(self) -> str:
        base = _SCALAR_NAMES[type(self)]
        return base if self.constraints is None else f"{base}({self.constraints.show()})"


@dataclass(frozen=True)
class StrType(_Constrainable):
    pass


@dataclass(frozen=True)
class IntType(_Constrainable):
    pass


@dataclass(frozen=True)
class FloatType(_Constrainable):
    pass


@dataclass(frozen=True)
class BoolType(_Scalar):
    pass


@dataclass(frozen=True)
class AnyType(_Scalar):
    pass


@dataclass(frozen=True)
class NoneType_(_Scalar):  # noqa: N801 - the underscore avoids clashing with types.NoneType
    pass


_SCALAR_NAMES: dict[type, str] = {
    StrType: "str", IntType: "int", FloatType: "float",
    BoolType: "bool", AnyType: "any", NoneType_: "none",
}
STR, INT, FLOAT, BOOL, ANY, NONE = StrType(), IntType(), FloatType(), BoolType(), AnyType(), NoneType_()


@dataclass(frozen=True)
class ListType(Type):
    item: Type
    constraints: Constraints | None = None

    def show(self) -> str:
        shown = f"list[{self.item.show()}]"
        return shown if self.constraints is None else f"{shown}({self.constraints.show()})"


@dataclass(frozen=True)
class DictType(Type):
    value: Type

    def show(self) -> str:
        return f"dict[str, {self.value.show()}]"


@dataclass(frozen=True)
class OptionalType(Type):
    """``inner?``.  Build it with :func:`optional`; the constructor raises TypeError
    for a non-canonical inner type (an optional, ``none`` or ``any``)."""

    inner: Type

    def __post_init__(self) -> None:
        if isinstance(self.inner, (OptionalType, NoneType_, AnyType)):
            raise TypeError(f"OptionalType({self.inner.show()}) is not canonical; use optional()")

    def show(self) -> str:
        inner = self.inner.show()
        if isinstance(self.inner, LiteralType) and len(self.inner.values) > 1:
            inner = f"({inner})"
        return inner + "?"


def constraints_of(t: Type) -> Constraints | None:
    """The field constraints ``t`` itself carries (``None`` for most types)."""
    return getattr(t, "constraints", None)


def unconstrained(t: Type) -> Type:
    """``t`` without its own constraints (those of list items are kept)."""
    if constraints_of(t) is None:
        return t
    if isinstance(t, ListType):
        return ListType(t.item)
    return type(t)()


def has_constraints(t: Type) -> bool:
    """Whether ``t`` or a type inside it carries constraints.  Never raises."""
    if constraints_of(t) is not None:
        return True
    if isinstance(t, ListType):
        return has_constraints(t.item)
    if isinstance(t, DictType):
        return has_constraints(t.value)
    if isinstance(t, OptionalType):
        return has_constraints(t.inner)
    if isinstance(t, RecordType):
        return any(has_constraints(f.type) for f in t.fields)
    return False


def optional(t: Type) -> Type:
    """``t?`` in canonical form: ``T??`` → ``T?``, ``none?`` → ``none``, ``any?`` → ``any``."""
    if isinstance(t, (OptionalType, NoneType_, AnyType)):
        return t
    return OptionalType(t)


@dataclass(frozen=True, eq=False)
class LiteralType(Type):
    """A union of string literals; declared order kept, duplicates dropped.

    Equality and hashing ignore order.  Raises ValueError when empty."""

    values: tuple[str, ...]

    def __post_init__(self) -> None:
        values = tuple(dict.fromkeys(self.values))
        if not values:
            raise ValueError("a literal type needs at least one value")
        object.__setattr__(self, "values", values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LiteralType) and set(self.values) == set(other.values)

    def __hash__(self) -> int:
        return hash((LiteralType, frozenset(self.values)))

    def show(self) -> str:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in self.values)


_NO_DEFAULT: Any = object()


@dataclass(frozen=True)
class Field:
    """A record field.  ``default`` is the value used when the field is absent and
    only means something when ``required`` is false (optional fields default to
    ``None``).  The default is compared but not hashed (it may be a list)."""

    name: str
    type: Type
    required: bool
    default: object = field(default=None, hash=False)

    @classmethod
    def of(cls, name: str, type: Type, default: object = _NO_DEFAULT) -> Field:
        """A field whose ``required`` flag follows the rule: no default, not optional."""
        if default is _NO_DEFAULT:
            return cls(name, type, required=not isinstance(type, OptionalType))
        return cls(name, type, required=False, default=default)


@dataclass(frozen=True)
class RecordType(Type):
    """A record; ``name`` is None for inline records.  Raises ValueError on duplicate field names."""

    name: str | None
    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields))
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate field names in record {self.show()}")

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def show(self) -> str:
        if self.name is not None:
            return self.name
        parts = []
        for f in self.fields:
            part = f"{f.name}: {f.type.show()}"
            if not f.required and not isinstance(f.type, OptionalType):
                part += f" = {_show_value(f.default)}"
            parts.append(part)
        return "{" + ", ".join(parts) + "}"


def _show_value(v: object) -> str:
    """A constant in pflow spelling (``none``, ``true``, ``"s"``, lists, records)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_show_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_show_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


# --------------------------------------------------------------------------- subtyping


def is_assignable(src: Type, dst: Type) -> bool:
    """True when a value of type ``src`` may flow where ``dst`` is expected.  Never raises."""
    return _mismatch(src, dst) is None


def explain_mismatch(src: Type, dst: Type) -> str:
    """One-line reason why ``src`` is not assignable to ``dst``; "" when it is."""
    return _mismatch(src, dst) or ""


def _mismatch(src: Type, dst: Type) -> str | None:
    """The single implementation of subtyping: None when assignable, else a reason."""
    if src == dst or isinstance(src, AnyType) or isinstance(dst, AnyType):
        return None
    want, have = constraints_of(dst), constraints_of(src)
    if want is not None or have is not None:
        if want is not None:
            if isinstance(src, LiteralType) and isinstance(dst, StrType):
                for v in src.values:  # the values are known: check them now
                    problem = want.violation(v)
                    if problem is not None:
                        return f"{json.dumps(v, ensure_ascii=False)}: {problem}"
            if have is not None and (why := disjoint(have, want)) is not None:
                return f"{src.show()} is never {dst.show()}: {why}"
        # otherwise constraints are checked where a value arrives (see the module docstring)
        return _mismatch(unconstrained(src), unconstrained(dst))
    if isinstance(dst, OptionalType):
        if isinstance(src, NoneType_):
            return None
        return _mismatch(src.inner if isinstance(src, OptionalType) else src, dst.inner)
    if isinstance(src, OptionalType):
        return f"{src.show()} may be none, but {dst.show()} is not optional"
    if isinstance(src, NoneType_):
        return f"none is not {dst.show()} (declare it optional: {optional(dst).show()})"
    if isinstance(src, LiteralType):
        if isinstance(dst, StrType):
            return None
        if isinstance(dst, LiteralType):
            extra = [v for v in src.values if v not in dst.values]
            if not extra:
                return None
            shown = ", ".join(json.dumps(v, ensure_ascii=False) for v in extra)
            verb = "is" if len(extra) == 1 else "are"
            return f"{shown} {verb} not one of {dst.show()}"
    if isinstance(src, IntType) and isinstance(dst, FloatType):
        return None
    if isinstance(src, ListType) and isinstance(dst, ListType):
        reason = _mismatch(src.item, dst.item)
        return None if reason is None else f"list item: {reason}"
    if isinstance(src, DictType) and isinstance(dst, DictType):
        reason = _mismatch(src.value, dst.value)
        return None if reason is None else f"dict value: {reason}"
    if isinstance(src, RecordType) and isinstance(dst, DictType):
        for f in src.fields:  # a record literal is a valid dict when every value fits
            reason = _mismatch(f.type, dst.value)
            if reason is not None:
                return f"field '{f.name}': {reason}"
        return None
    if isinstance(src, RecordType) and isinstance(dst, RecordType):
        for f in dst.fields:
            mine = src.field(f.name)
            if mine is None:
                if f.required:
                    return f"missing field '{f.name}'"
                continue
            reason = _mismatch(mine.type, f.type)
            if reason is not None:
                return f"field '{f.name}': {reason}"
        return None
    return f"{src.show()} is not {dst.show()}"


def extra_fields(src: RecordType, dst: RecordType) -> list[str]:
    """Names of the fields of ``src`` that ``dst`` lacks, in ``src`` order."""
    return [f.name for f in src.fields if dst.field(f.name) is None]


def join(a: Type, b: Type) -> Type:
    """The least common type of two conditional branches (``ANY`` when there is none)."""
    if a == b:
        return a
    if isinstance(a, AnyType) or isinstance(b, AnyType):
        return ANY
    if constraints_of(a) is not None or constraints_of(b) is not None:
        return join(unconstrained(a), unconstrained(b))  # what both may hold: the bases
    if isinstance(a, NoneType_):
        return optional(b)
    if isinstance(b, NoneType_):
        return optional(a)
    if isinstance(a, OptionalType) or isinstance(b, OptionalType):
        strip = lambda t: t.inner if isinstance(t, OptionalType) else t  # noqa: E731
        return optional(join(strip(a), strip(b)))
    if isinstance(a, LiteralType) and isinstance(b, LiteralType):
        return LiteralType(a.values + b.values)
    if isinstance(a, ListType) and isinstance(b, ListType):
        return ListType(join(a.item, b.item))
    if isinstance(a, DictType) and isinstance(b, DictType):
        return DictType(join(a.value, b.value))
    # literal + str, int + float, a record and a wider record, ...
    if is_assignable(a, b):
        return b
    if is_assignable(b, a):
        return a
    return ANY


# --------------------------------------------------------------------------- JSON schema

_JSON_SCALARS: dict[type, dict[str, Any]] = {
    StrType: {"type": "string"}, IntType: {"type": "integer"}, FloatType: {"type": "number"},
    BoolType: {"type": "boolean"}, NoneType_: {"type": "null"}, AnyType: {},
}


def json_schema(t: Type) -> dict[str, Any]:
    """JSON Schema (2020-12 subset, OpenAI structured-output style) for ``t``.

    Nested records are inlined (no ``$defs``); defaults are not emitted.
    Raises TypeError for an unknown Type subclass."""
    if type(t) in _JSON_SCALARS:
        out = dict(_JSON_SCALARS[type(t)])
        c = constraints_of(t)
        return out if c is None else {**out, **c.schema()}
    if isinstance(t, LiteralType):
        return {"type": "string", "enum": list(t.values)}
    if isinstance(t, ListType):
        schema_ = {"type": "array", "items": json_schema(t.item)}
        return schema_ if t.constraints is None else {**schema_, **t.constraints.schema()}
    if isinstance(t, DictType):
        return {"type": "object", "additionalProperties": json_schema(t.value)}
    if isinstance(t, OptionalType):
        return {"anyOf": [json_schema(t.inner), {"type": "null"}]}
    if isinstance(t, RecordType):
        schema: dict[str, Any] = {"type": "object"}
        if t.name is not None:
            schema["title"] = t.name
        schema["properties"] = {f.name: json_schema(f.type) for f in t.fields}
        schema["required"] = [f.name for f in t.fields if f.required]
        schema["additionalProperties"] = False
        return schema
    raise TypeError(f"no JSON schema for {t!r}")


# --------------------------------------------------------------------------- pydantic models

_RESERVED_EXTRA = {"fields", "schema", "json", "dict", "copy", "construct", "validate"}


def _python_name(name: str, taken: set[str], base: type) -> str:
    """A field name pydantic accepts: an identifier, no leading underscore, no clash."""
    py = re.sub(r"\W", "_", name) or "field"
    if py[0].isdigit() or py.startswith(("_", "model_")):
        py = "f_" + py.lstrip("_")
    while keyword.iskeyword(py) or py in _RESERVED_EXTRA or hasattr(base, py) or py in taken:
        py += "_"
    return py


def _class_name(rec: RecordType) -> str:
    if rec.name is None:
        return "InlineRecord"
    name = re.sub(r"\W", "_", rec.name)
    return name if name.isidentifier() else "R_" + name


@functools.cache
def pydantic_model(rec: RecordType) -> type[pydantic.BaseModel]:
    """A pydantic model for ``rec``, built once per (hashable) record type.

    The model forbids extra keys and uses strict scalars (no str→int coercion,
    bools are not numbers; ints are accepted for floats).  A field whose pflow
    name is not a usable Python attribute (``model_config``, ``json``, ``a-b``,
    ``class``...) gets a mangled attribute name and the pflow name as alias:
    validate with pflow names (aliases only) and dump with ``model_dump(by_alias=True)``.
    ``Model.__pflow_type__`` is ``rec`` and ``Model.__pflow_fields__`` maps pflow
    names to attribute names.  Raises TypeError if ``rec`` is not a RecordType."""
    import pydantic

    if not isinstance(rec, RecordType):
        raise TypeError(f"pydantic_model() needs a record type, got {rec!r}")
    definitions: dict[str, Any] = {}
    names: dict[str, str] = {}
    for f in rec.fields:
        py = _python_name(f.name, set(names.values()), pydantic.BaseModel)
        names[f.name] = py
        kwargs: dict[str, Any] = {"alias": f.name} if py != f.name else {}
        if f.required:
            info = pydantic.Field(**kwargs)
        elif isinstance(f.default, (list, dict, set)):
            info = pydantic.Field(default_factory=functools.partial(copy.deepcopy, f.default), **kwargs)
        else:
            info = pydantic.Field(default=f.default, **kwargs)
        definitions[py] = (_annotation(f.type), info)
    config = pydantic.ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())
    model = pydantic.create_model(_class_name(rec), __config__=config, **definitions)
    model.__pflow_type__ = rec
    model.__pflow_fields__ = names
    return model


def _annotation(t: Type) -> Any:
    """The Python annotation pydantic validates ``t`` with (field constraints as an
    after-validator with the rules of :meth:`Constraints.violation`)."""
    import pydantic

    c = constraints_of(t)
    if c is not None:
        def meets(value: Any, c: Constraints = c) -> Any:
            problem = c.violation(value)
            if problem is not None:
                raise ValueError(problem)
            return value

        return typing.Annotated[_annotation(unconstrained(t)), pydantic.AfterValidator(meets)]
    if isinstance(t, StrType):
        return pydantic.StrictStr
    if isinstance(t, IntType):
        return pydantic.StrictInt
    if isinstance(t, FloatType):
        return typing.Annotated[float, pydantic.Strict()]
    if isinstance(t, BoolType):
        return pydantic.StrictBool
    if isinstance(t, AnyType):
        return typing.Any
    if isinstance(t, NoneType_):
        return None
    if isinstance(t, LiteralType):
        return typing.Literal[t.values]  # Literal[("a", "b")] == Literal["a", "b"]
    if isinstance(t, ListType):
        return list[_annotation(t.item)]  # type: ignore[misc]
    if isinstance(t, DictType):
        return dict[str, _annotation(t.value)]  # type: ignore[misc]
    if isinstance(t, OptionalType):
        return typing.Optional[_annotation(t.inner)]  # noqa: UP045
    if isinstance(t, RecordType):
        return pydantic_model(t)
    raise TypeError(f"no Python annotation for {t!r}")


# --------------------------------------------------------------------------- run-time validation


class TypeValidationError(ValueError):
    """A value does not match a pflow type; ``path`` is like ``$.tags[2]``."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.message = message
        self.path = path


def _describe(value: object) -> str:
    """``int 3``, ``str "maybe"``, ``list``, ``dict``: how a bad value is named in messages."""
    if value is None:
        return "none"
    kind = {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value))
    if kind is not None:
        shown = _show_value(value)
        return f"{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def validate(value: object, t: Type, path: str = "$") -> object:
    """Check a JSON-decoded ``value`` against ``t`` and return it converted.

    ints become floats where ``float`` is expected, lists/tuples become lists and
    records become instances of :func:`pydantic_model`.  No other coercion: bools
    are not numbers, floats are not ints.  Raises TypeValidationError naming the
    location and the expected type."""
    def mismatch() -> TypeValidationError:  # the message is built only on failure
        return TypeValidationError(f"expected {t.show()}, got {_describe(value)}", path)

    if isinstance(t, AnyType):
        return value
    if isinstance(t, NoneType_):
        if value is None:
            return None
        raise mismatch()
    if isinstance(t, OptionalType):
        return None if value is None else validate(value, t.inner, path)
    if isinstance(t, StrType):
        if isinstance(value, str):
            return value if t.constraints is None else _within(value, t.constraints, path)
        raise mismatch()
    if isinstance(t, LiteralType):
        if isinstance(value, str) and value in t.values:
            return value
        raise mismatch()
    if isinstance(t, BoolType):
        if isinstance(value, bool):
            return value
        raise mismatch()
    if isinstance(t, IntType):
        if isinstance(value, int) and not isinstance(value, bool):
            return value if t.constraints is None else _within(value, t.constraints, path)
        raise mismatch()
    if isinstance(t, FloatType):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            return number if t.constraints is None else _within(number, t.constraints, path)
        raise mismatch()
    if isinstance(t, ListType):
        if not isinstance(value, (list, tuple)):
            raise mismatch()
        if t.constraints is not None:
            _within(value, t.constraints, path)
        return [validate(v, t.item, _child(path, i)) for i, v in enumerate(value)]
    if isinstance(t, DictType):
        if not isinstance(value, dict):
            raise mismatch()
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeValidationError(f"dict key {_show_value(k)} is not a str", path)
            out[k] = validate(v, t.value, _child(path, k))
        return out
    if isinstance(t, RecordType):
        return _validate_record(value, t, path, mismatch)
    raise TypeError(f"cannot validate against {t!r}")


def _within(value: Any, c: Constraints, path: str) -> Any:
    """``value`` when it meets ``c``; raises TypeValidationError with the violation."""
    problem = c.violation(value)
    if problem is not None:
        raise TypeValidationError(problem, path)
    return value


def _validate_record(value: object, t: RecordType, path: str,
                     mismatch: Callable[[], TypeValidationError]) -> object:
    model = pydantic_model(t)
    if isinstance(value, model):
        return value
    if getattr(type(value), "__pflow_type__", None) is not None:  # another record's model
        value = value.model_dump(by_alias=True)  # type: ignore[attr-defined]
    if not isinstance(value, dict):
        raise mismatch()
    for key in value:
        if not isinstance(key, str) or t.field(key) is None:
            known = ", ".join(f.name for f in t.fields) or "none"
            shown = f"'{key}'" if isinstance(key, str) else _show_value(key)
            raise TypeValidationError(
                f"unexpected field {shown} ({t.show()} has fields: {known})",
                _child(path, key) if isinstance(key, str) else path)
    converted: dict[str, object] = {}
    for f in t.fields:
        if f.name in value:
            converted[f.name] = validate(value[f.name], f.type, _child(path, f.name))
        elif f.required:
            raise TypeValidationError(
                f"missing required field '{f.name}' of type {f.type.show()}", path)
    import pydantic

    try:
        return model.model_validate(converted)
    except pydantic.ValidationError as exc:  # defaults that do not fit their field
        raise TypeValidationError(f"invalid {t.show()}: {exc.errors()[0]['msg']}", path) from exc
