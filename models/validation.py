"""Checks of a config dataclass, driven by its field types and metadata.

`check_fields(config)` raises ValueError, naming the class and the field, for
a value that is not of the field's type (a bool is neither an int nor a
float; an int is a float, and a float must be finite), is not one of
`metadata['choices']`, or is outside the bounds in the metadata: `min`, `max`
(inclusive), `above`, `below` (exclusive); `violation` is that check of one
value (e.g. a flag's). An `Optional[X]` field may also be None, and a
`Tuple[X, ...]` field holds values of X. `from_dict` builds such a config
from a partial dict and rejects keys that are not fields.

Such fields are declared with `setting` (a default, its flag's help and the
bounds) and `part` (a nested config), and the config derives from `Checked`.
"""

import dataclasses
import math
import operator
import typing
from typing import Any, Mapping, Optional, Type, TypeVar

T = TypeVar('T')

_BOUNDS = (('min', '>=', operator.ge), ('above', '>', operator.gt),
           ('max', '<=', operator.le), ('below', '<', operator.lt))
_TYPE_NAMES = {int: 'an int', float: 'a number', str: 'a str', bool: 'a bool'}


def setting(default: Any, help_text: str, **metadata: Any) -> Any:
  """A field with its default, its flag's help text and its checks."""
  return dataclasses.field(default=default,
                           metadata={'help': help_text, **metadata})


def part(default: Any, **metadata: Any) -> Any:
  """A field that holds a nested config."""
  return dataclasses.field(default=default, metadata=metadata)


def is_part(field: dataclasses.Field) -> bool:
  """Whether `field` holds a nested config rather than a setting."""
  return dataclasses.is_dataclass(field.default)


class Checked:
  """Checks the fields against their types and metadata on construction."""

  def __post_init__(self):
    check_fields(self)


def value_type(kind: Any) -> type:
  """The type of one value of a field of type `kind`: X for Optional[X] and
  for Tuple[X, ...], `kind` otherwise."""
  args = [a for a in typing.get_args(kind) if a is not type(None)]
  return args[0] if args else kind


def _has_type(value: Any, kind: type) -> bool:
  if isinstance(value, bool) or kind is bool:
    return isinstance(value, bool) and kind is bool
  if kind is float:
    return isinstance(value, (int, float)) and math.isfinite(value)
  return isinstance(value, kind)


def violation(field: dataclasses.Field, value: Any,
              kind: Optional[type] = None) -> Optional[str]:
  """The rule `value` breaks as a value of `field` (of type `kind`, by
  default its default's), or None if it is valid."""
  meta = field.metadata
  kind = kind or type(field.default)
  if typing.get_origin(kind) is tuple:
    if not isinstance(value, tuple):
      return 'a tuple'
    rules = [violation(field, item, value_type(kind)) for item in value]
    return next((f'a tuple of {rule}' for rule in rules if rule), None)
  if value is None and type(None) in typing.get_args(kind):
    return None
  kind = value_type(kind)
  if 'choices' in meta:
    return None if value in meta['choices'] else f'one of {meta["choices"]}'
  bounds = [(key, sym, op) for key, sym, op in _BOUNDS if key in meta]
  if _has_type(value, kind) and all(op(value, meta[key])
                                    for key, _, op in bounds):
    return None
  return ' '.join([_TYPE_NAMES.get(kind, kind.__name__)] + [' and '.join(
      f'{sym} {meta[key]}' for key, sym, _ in bounds)]).rstrip()


def check_fields(config: Any) -> None:
  """Raises ValueError for the first field of `config` that is invalid."""
  kinds = typing.get_type_hints(type(config))
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    rule = violation(field, value, kinds[field.name])
    if rule:
      raise ValueError(f'{type(config).__name__}.{field.name} must be {rule}, '
                       f'got {value!r}')


def from_dict(cls: Type[T], d: Optional[Mapping[str, Any]], what: str) -> T:
  """`cls(**d)`; `cls()` for None. `what` names one field in messages.

  Raises:
    ValueError: `d` is not a mapping, has keys that are not fields of `cls`,
      or a value `cls` rejects.
  """
  if d is None:
    return cls()
  if not isinstance(d, Mapping):
    raise ValueError(f'{what}s must be a dict, got {type(d)}')
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - fields)
  if unknown:
    raise ValueError(f'Unknown {what}(s) {unknown}; known ones are '
                     f'{sorted(fields)}')
  return cls(**d)
