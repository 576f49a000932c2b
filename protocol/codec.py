"""The field-driven codec: one encoder and one decoder over the message dataclasses' fields.

A message (``messages.py``) is a dataclass whose fields are its header keys, each declared once:
the annotation is the wire type and ``wire(...)`` its default and rules.  Types understood:
``str``, ``int``, ``float`` (finite; an int is accepted), ``bool``, ``ImageData`` (a descriptor plus
a payload frame), a nested dataclass (a map of its fields: ``Loss``, ``JobInfo``), ``list[X]``,
``dict[str, Any]`` (an opaque map), ``dict[str, int]`` (entries of other types skipped, so a newer
peer may add kinds) and ``Optional[X]`` (nil allowed; also as a list's item: ``list[Optional[ImageData]]``).
Adding a field to a message is one line.

Decoding is strict for requests (an unknown key is an error: the daemon must not silently
ignore a knob the user set) and lenient for replies (unknown keys ignored).  An absent
optional field, or a nil one that is not ``Optional``, takes its default.  Every failure is a
``ProtocolError`` ``bad_request`` whose ``field`` names the key ("styles[1]", "loss.total").
Encoding writes the fields in declaration order, except that fields left out when nil
(``omit_nil``) come last; that is protocol v1's byte order.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass
from typing import Any, Optional, Union

from .errors import ErrorCode, ProtocolError, quote
from .image_data import Buffer, ImageData, ImageRef
from .wire import Envelope

WIRE = "wire"


@dataclass(frozen=True)
class Rule:
    """How one field travels, beside its type (the annotation)."""

    required: bool = False  # the key must be present (it may still be nil when ``nullable``)
    nullable: Optional[bool] = None  # nil is a value (None); default: the annotation is Optional
    minimum: Optional[int] = 0  # ints and string lengths
    min_items: int = 0  # lists
    choices: Optional[tuple[str, ...]] = None  # strings
    omit_nil: bool = False  # left out of the header when None (and written after the others)


def wire(default: Any = MISSING, *, default_factory: Union[Callable[[], Any], Any] = MISSING,
         required: bool = False, nullable: Optional[bool] = None, minimum: Optional[int] = 0,
         min_items: int = 0, choices: Optional[tuple[str, ...]] = None, omit_nil: bool = False) -> Any:
    """A message field: its default and its rules (the type is the field's annotation)."""
    rule = Rule(required, nullable, minimum, min_items, choices, omit_nil)
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={WIRE: rule})
    return dataclasses.field(default=default, metadata={WIRE: rule})


@dataclass(frozen=True)
class Spec:
    """A field as the codec sees it: name, type (resolved annotation) and rule, with what follows from them
    worked out once (``base``: the type without Optional; ``nullable``; ``shape``: how it encodes)."""

    name: str
    type: Any
    rule: Rule
    base: Any
    nullable: bool
    shape: str  # "plain" (as it is), "float", "image", "struct", "list" or "map"


_SPECS: dict[type, tuple[Spec, ...]] = {}


def _shape(kind: Any) -> str:
    if kind is float:
        return "float"
    if kind is ImageData:
        return "image"
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return "struct"
    return {list: "list", dict: "map"}.get(typing.get_origin(kind), "plain")


def _spec(f: dataclasses.Field[Any], hint: Any) -> Spec:
    rule: Rule = f.metadata.get(WIRE, Rule())
    optional = _optional_of(hint)
    nullable = rule.nullable if rule.nullable is not None else optional is not None
    base = optional or hint
    return Spec(f.name, hint, rule, base, nullable, _shape(base))


def specs(cls: type) -> tuple[Spec, ...]:
    """The wire fields of a message or nested dataclass, in header order (``id`` is the envelope's)."""
    found = _SPECS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple(_spec(f, hints[f.name]) for f in dataclasses.fields(cls)
                      if f.name != "id" or not hasattr(cls, "TYPE"))
        found = tuple(sorted(found, key=lambda s: s.rule.omit_nil))  # stable: omit_nil fields last
        _SPECS[cls] = found
    return found


def _optional_of(kind: Any) -> Any:
    """X for ``Optional[X]``, else None."""
    if typing.get_origin(kind) is Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0]
    return None


# ----------------------------------------------------------------------------- encoding


class Frames:
    """Collects payload frames while a header is built, handing out their indices."""

    def __init__(self) -> None:
        self.payloads: list[Buffer] = []

    def attach(self, image: ImageData) -> dict[str, Any]:
        self.payloads.append(image.data)
        return image.ref(len(self.payloads)).to_map()


def encode_fields(obj: Any, frames: Frames) -> dict[str, Any]:
    """The header map of a dataclass's wire fields (images go to ``frames``)."""
    out: dict[str, Any] = {}
    for spec in specs(type(obj)):
        value = getattr(obj, spec.name)
        if value is None and spec.rule.omit_nil:
            continue
        if value is None and spec.rule.required and not spec.nullable:
            raise ValueError(f"'{spec.name}' is required (a {type(obj).__name__} needs it)")
        out[spec.name] = _encode(spec.shape, spec.base, value, frames)
    return out


def _encode(shape: str, kind: Any, value: Any, frames: Frames) -> Any:
    if value is None or shape == "plain":
        return value
    if shape == "float":
        return float(value)
    if shape == "image":
        return frames.attach(value)
    if shape == "struct":
        return encode_fields(value, frames)
    if shape == "list":
        (item,) = typing.get_args(kind)
        item = _optional_of(item) or item  # a nil item encodes as nil
        return [_encode(_shape(item), item, v, frames) for v in value]
    return dict(value)


def from_record(cls: type, record: Any, given: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of ``cls`` read by name from ``record`` (any object with attributes of its
    fields' names, a nested dataclass from the record's attribute of that name), ``given`` taking precedence:
    the engine's records become messages without a hand-written copy of each field."""
    out: dict[str, Any] = {}
    for spec in specs(cls):
        if spec.name in given:
            out[spec.name] = given[spec.name]
            continue
        value = getattr(record, spec.name)
        if value is not None and spec.shape == "struct":
            value = spec.base(**from_record(spec.base, value, {}))
        out[spec.name] = value
    return out


# ----------------------------------------------------------------------------- decoding


class Reader:
    """Decodes one header's fields, remembering which keys and frames were used."""

    def __init__(self, env: Envelope, strict: bool) -> None:
        self.env = env
        self.strict = strict
        self.frames_used: set[int] = set()

    def fail(self, path: Optional[str], message: str) -> ProtocolError:
        return ProtocolError(ErrorCode.BAD_REQUEST, f"{self.env.type}: {message}", self.env.id, field=path)

    def fields(self, cls: type, value: dict[str, Any], prefix: str = "",
               known: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Constructor arguments of ``cls`` from the map ``value`` (``known``: keys that are not fields)."""
        out: dict[str, Any] = {}
        cls_specs = specs(cls)
        for spec in cls_specs:
            path = prefix + spec.name
            if spec.name not in value:
                if spec.rule.required:
                    raise self.fail(path, f"missing field '{path}'")
                continue
            raw = value[spec.name]
            if raw is None and spec.nullable:
                out[spec.name] = None
            elif raw is None and not spec.rule.required:
                continue  # nil for a plain optional field: its default
            else:
                out[spec.name] = self.value(spec.base, raw, path, spec.rule)
        if self.strict:
            names = {s.name for s in cls_specs} | known
            unknown = sorted((k for k in value if k not in names), key=str)
            if unknown:
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                raise self.fail(prefix + str(unknown[0]),
                                f"unknown field(s): {', '.join(quote(k) for k in unknown[:5])}{more}")
        return out

    def value(self, kind: Any, raw: Any, path: str, rule: Rule) -> Any:
        """One value of type ``kind`` read from ``raw``, or a ProtocolError naming ``path``."""
        if kind is str:
            if not isinstance(raw, str) or len(raw) < (rule.minimum or 0):
                raise self.fail(path, f"'{path}' must be a {'non-empty ' if rule.minimum else ''}string")
            if rule.choices is not None and raw not in rule.choices:
                raise self.fail(path, f"'{path}' must be one of {', '.join(rule.choices)}")
            return raw
        if kind is bool:
            if not isinstance(raw, bool):
                raise self.fail(path, f"'{path}' must be a boolean")
            return raw
        if kind is int:
            if isinstance(raw, bool) or not isinstance(raw, int) or (rule.minimum is not None and raw < rule.minimum):
                bound = f" >= {rule.minimum}" if rule.minimum is not None else ""
                raise self.fail(path, f"'{path}' must be an integer{bound}")
            return raw
        if kind is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
                raise self.fail(path, f"'{path}' must be a finite number")
            return float(raw)
        if kind is ImageData:
            return self.image(raw, path)
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            if not isinstance(raw, dict):
                raise self.fail(path, f"'{path}' must be a map")
            return kind(**self.fields(kind, raw, path + "."))
        origin = typing.get_origin(kind)
        if origin is list:
            if not isinstance(raw, list) or len(raw) < rule.min_items:
                raise self.fail(path, f"'{path}' must be a {'non-empty ' if rule.min_items else ''}list")
            (item,) = typing.get_args(kind)
            optional = _optional_of(item)  # list[Optional[X]]: nil items allowed
            return [None if v is None and optional is not None else
                    self.value(optional or item, v, f"{path}[{i}]", Rule()) for i, v in enumerate(raw)]
        if origin is dict:
            if not isinstance(raw, dict):
                raise self.fail(path, f"'{path}' must be a map")
            if typing.get_args(kind)[1] is int:  # kinds of entry this end does not know: skipped
                return {k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}
            return raw
        raise TypeError(f"no wire type for {kind!r}")  # a declaration error, not client input

    def image(self, raw: Any, path: str) -> ImageData:
        try:
            ref = ImageRef.from_map(raw, frame_count=len(self.env.payloads), request_id=self.env.id,
                                    strict=self.strict)
            if ref.frame in self.frames_used:
                raise self.fail(path, f"frame {ref.frame} is referenced by more than one image")
            self.frames_used.add(ref.frame)
            return ref.image(self.env.frame(ref.frame), self.env.id)
        except ProtocolError as exc:
            exc.field = exc.field or path
            raise

    def finish(self) -> None:
        """A strict read uses every payload frame."""
        unused = sorted(set(range(1, len(self.env.payloads) + 1)) - self.frames_used)
        if self.strict and unused:
            raise self.fail(None, f"payload frame(s) {unused} are not referenced by any image")
