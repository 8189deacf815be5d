"""Command-line flags generated from the configuration tree.

Every setting of a runner's root in `pipeline/runner_config.py` (which
nests `components.config.PipelineConfig`) becomes a flag: `--field-name`
(or its `flag` metadata, after its part's `prefix`), with the field's
default, help and bounds. A bool is a switch, a `Tuple[X, ...]` a repeatable
flag, an `Optional[X]` one that may be left out (None), and `required`
metadata makes argparse require it. A new setting therefore needs no runner
change; `config_from_args` builds the tree (or any part of it) back from the
parsed flags.
"""

import argparse
import dataclasses
import typing
from typing import Any, Dict, Iterator, Optional, Tuple, Type, TypeVar

from components import config as config_lib
from models import validation

T = TypeVar('T')


def _settings(cls: Type[Any], prefix: str = '', template: str = '{help}'
              ) -> Iterator[Tuple[dataclasses.Field, Any, str, str, str]]:
  """(field, type, flag name, dest, help) of every setting below `cls`."""
  kinds = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    if validation.is_part(field):
      yield from _settings(
          type(field.default), prefix + field.metadata.get('prefix', ''),
          field.metadata.get('help_template', template))
      continue
    name = _flag_name(field)
    help_text = template.format(flag=name, help=field.metadata['help'])
    yield (field, kinds[field.name], prefix + name, _dest(prefix, field),
           help_text)


def _flag_name(field: dataclasses.Field) -> str:
  """A setting's flag name within its part (without the part's prefix)."""
  return field.metadata.get('flag', field.name.replace('_', '-'))


def _dest(prefix: str, field: dataclasses.Field) -> str:
  """Where argparse keeps a setting's value."""
  return (prefix + _flag_name(field)).replace('-', '_')


def _parser_of(field: dataclasses.Field, kind: type):
  """argparse type: one value of type `kind`, checked against the field's
  bounds."""

  def parse(text: str) -> Any:
    try:
      value = kind(text)
    except ValueError as e:
      raise argparse.ArgumentTypeError(f'not {kind.__name__}: {text}') from e
    rule = validation.violation(field, value, kind)
    if rule:
      raise argparse.ArgumentTypeError(f'must be {rule}: {text}')
    return value

  parse.__name__ = kind.__name__  # argparse names it in its messages.
  return parse


def _add_setting(group: Any, field: dataclasses.Field, kind: Any, name: str,
                 dest: str, help_text: str) -> None:
  """The flag of one setting: a switch for a bool, repeatable for a tuple,
  otherwise one value of the field's type (None: not given)."""
  options: Dict[str, Any] = dict(dest=dest, default=field.default,
                                 help=help_text + '.')
  if kind is bool:
    options['action'] = 'store_true'
  else:
    if typing.get_origin(kind) is tuple:
      options.update(action='append', default=list(field.default))
    options.update(type=_parser_of(field, validation.value_type(kind)),
                   metavar=field.metadata.get('metavar'),
                   choices=field.metadata.get('choices'),
                   required=field.metadata.get('required', False))
  group.add_argument('--' + name, **options)


def add_flags(parser: argparse.ArgumentParser, cls: Type[Any],
              title: Optional[str] = None, **names: str) -> None:
  """A flag for every setting of `cls` and the parts below it.

  A part with `group` metadata gets an argument group of that title, with
  the flags of everything below it; the settings of a part without one go
  where its parent's go (`title`'s group, or the parser itself).

  Args:
    parser: the parser to add them to.
    cls: a config dataclass, e.g. runner_config.LocalRunnerConfig.
    title: the group of `cls`'s own settings; None: the parser's.
    **names: what help texts name in braces, e.g. `serving` (how the runner
      names the push destination).
  """
  _add_part(parser, parser.add_argument_group(title) if title else parser,
            cls, '', names)


def _add_part(parser: argparse.ArgumentParser, container: Any,
              cls: Type[Any], prefix: str, names: Dict[str, str]) -> None:
  kinds = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    inner = prefix + field.metadata.get('prefix', '')
    if not validation.is_part(field):
      _add_setting(container, field, kinds[field.name], prefix +
                   _flag_name(field), _dest(prefix, field),
                   field.metadata['help'].format(**names))
    elif 'group' not in field.metadata:
      _add_part(parser, container, type(field.default), inner, names)
    else:
      group = parser.add_argument_group(field.metadata['group'])
      for setting, kind, name, dest, help_text in _settings(
          type(field.default), inner):
        _add_setting(group, setting, kind, name, dest,
                     help_text.format(**names))


def _build(cls: Type[T], args: argparse.Namespace, prefix: str) -> T:
  values = {}
  for field in dataclasses.fields(cls):
    if validation.is_part(field):
      values[field.name] = _build(type(field.default), args,
                                  prefix + field.metadata.get('prefix', ''))
    else:
      value = getattr(args, _dest(prefix, field))
      values[field.name] = tuple(value) if isinstance(value, list) else value
  return cls(**values)


def config_from_args(args: argparse.Namespace,
                     cls: Type[T] = config_lib.PipelineConfig) -> T:
  """The configuration the flags describe.

  Raises:
    ValueError: values a part rejects together (e.g. kl_warmup_epochs x
      kl_cycles above epochs).
  """
  return _build(cls, args, '')



