"""Tests of the generic checks of config dataclasses."""

import dataclasses

import pytest

from models import vae as vae_lib
from models import validation


@dataclasses.dataclass(frozen=True)
class _Config:
  count: int = dataclasses.field(default=1, metadata={'min': 1})
  rate: float = dataclasses.field(default=0.5,
                                  metadata={'above': 0, 'max': 1})
  kind: str = dataclasses.field(default='a', metadata={'choices': ('a', 'b')})
  name: str = 'x'

  def __post_init__(self):
    validation.check_fields(self)


@pytest.mark.parametrize('overrides, message', [
    ({'count': 0}, r'_Config.count must be an int >= 1, got 0'),
    ({'count': True}, r'_Config.count must be an int >= 1, got True'),
    ({'count': 2.0}, r'_Config.count must be an int'),
    ({'rate': 0}, r'_Config.rate must be a number > 0 and <= 1, got 0'),
    ({'rate': float('nan')}, r'_Config.rate must be a number'),
    ({'rate': '0.5'}, r'_Config.rate must be a number'),
    ({'kind': 'c'}, r"_Config.kind must be one of \('a', 'b'\), got 'c'"),
    ({'name': 3}, r'_Config.name must be a str, got 3'),
])
def test_bad_values_are_named(overrides, message):
  with pytest.raises(ValueError, match=message):
    _Config(**overrides)


def test_good_values_pass_and_an_int_is_a_number():
  assert _Config(count=3, rate=1, kind='b', name='y').rate == 1


def test_from_dict():
  assert validation.from_dict(_Config, None, 'setting') == _Config()
  assert validation.from_dict(_Config, {'count': 2}, 'setting').count == 2
  with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['counts'\]"):
    validation.from_dict(_Config, {'counts': 2}, 'setting')
  with pytest.raises(ValueError, match='settings must be a dict'):
    validation.from_dict(_Config, [('count', 2)], 'setting')


def test_every_hyperparameter_has_a_help_text_for_its_flag():
  for field in dataclasses.fields(vae_lib.Hyperparameters):
    assert field.metadata['help'], field.name
    assert '%' not in field.metadata['help'], field.name  # argparse formats it
