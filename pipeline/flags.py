"""Command-line flags generated from the configuration tree.

Every setting of `components.config.PipelineConfig` (and, for Kubeflow,
`KubeflowResources`) becomes a flag: `--field-name` (or its `flag`
metadata, after its part's `prefix`), with the field's default, help and
bounds. A new setting therefore needs no runner change; `config_from_args`
builds the tree back from the parsed flags.
"""

import argparse
import dataclasses
from typing import Any, Dict, Iterator, Optional, Tuple, Type, TypeVar

from components import config as config_lib
from models import validation

T = TypeVar('T')


def positive_int(text: str) -> int:
  """argparse type: an int > 0."""
  value = int(text)
  if value <= 0:
    raise argparse.ArgumentTypeError(f'must be a positive integer: {text}')
  return value


def _settings(cls: Type[Any], prefix: str = '', template: str = '{help}'
              ) -> Iterator[Tuple[dataclasses.Field, str, str, str]]:
  """(field, flag name, dest, help) of every setting below `cls`."""
  for field in dataclasses.fields(cls):
    if config_lib.is_part(field):
      yield from _settings(
          type(field.default), prefix + field.metadata.get('prefix', ''),
          field.metadata.get('help_template', template))
      continue
    name = _flag_name(field)
    help_text = template.format(flag=name, help=field.metadata['help'])
    yield field, prefix + name, _dest(prefix, field), help_text


def _flag_name(field: dataclasses.Field) -> str:
  """A setting's flag name within its part (without the part's prefix)."""
  return field.metadata.get('flag', field.name.replace('_', '-'))


def _dest(prefix: str, field: dataclasses.Field) -> str:
  """Where argparse keeps a setting's value."""
  return (prefix + _flag_name(field)).replace('-', '_')


def _parser_of(field: dataclasses.Field):
  """argparse type: the field's type, checked against its bounds."""
  kind = type(field.default)

  def parse(text: str) -> Any:
    try:
      value = kind(text)
    except ValueError as e:
      raise argparse.ArgumentTypeError(f'not {kind.__name__}: {text}') from e
    rule = validation.violation(field, value)
    if rule:
      raise argparse.ArgumentTypeError(f'must be {rule}: {text}')
    return value

  parse.__name__ = kind.__name__  # argparse names it in its messages.
  return parse


def add_flags(parser: argparse.ArgumentParser, cls: Type[Any],
              serving: str, title: Optional[str] = None) -> None:
  """A flag for every setting of `cls`, in argument groups by part.

  Args:
    parser: the parser to add them to.
    cls: PipelineConfig (a group a part) or KubeflowResources (one group).
    serving: how the runner names the push destination in help texts.
    title: the group's title, for a `cls` without parts.
  """
  parts = [(field.metadata.get('group'), type(field.default),
            field.metadata.get('prefix', ''))
           for field in dataclasses.fields(cls) if config_lib.is_part(field)]
  if not parts:
    parts = [(title, cls, '')]
  for title, part_cls, prefix in parts:
    group = parser.add_argument_group(title)
    for field, name, dest, help_text in _settings(part_cls, prefix):
      options: Dict[str, Any] = dict(
          dest=dest, default=field.default,
          help=help_text.format(serving=serving) + '.')
      if isinstance(field.default, bool):
        options['action'] = 'store_true'
      else:
        options.update(type=_parser_of(field),
                       metavar=field.metadata.get('metavar'),
                       choices=field.metadata.get('choices'))
      group.add_argument('--' + name, **options)


def _build(cls: Type[T], args: argparse.Namespace, prefix: str) -> T:
  values = {}
  for field in dataclasses.fields(cls):
    if config_lib.is_part(field):
      values[field.name] = _build(type(field.default), args,
                                  prefix + field.metadata.get('prefix', ''))
    else:
      values[field.name] = getattr(args, _dest(prefix, field))
  return cls(**values)


def config_from_args(args: argparse.Namespace,
                     cls: Type[T] = config_lib.PipelineConfig) -> T:
  """The configuration the flags describe.

  Raises:
    ValueError: values a part rejects together (e.g. kl_warmup_epochs x
      kl_cycles above epochs).
  """
  return _build(cls, args, '')


def add_pipeline_flags(parser: argparse.ArgumentParser, serving: str) -> None:
  """The flags of `PipelineConfig`, for both runners."""
  add_flags(parser, config_lib.PipelineConfig, serving)

