"""Checks of a config dataclass, driven by its field types and metadata.

`check_fields(config)` raises ValueError, naming the class and the field, for
a value that is not of the field's type (a bool is neither an int nor a
float; an int is a float, and a float must be finite), is not one of
`metadata['choices']`, or is outside the bounds in the metadata: `min`, `max`
(inclusive), `above`, `below` (exclusive); `violation` is that check of one
value (e.g. a flag's). `from_dict` builds such a config from a partial dict
and rejects keys that are not fields.
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
