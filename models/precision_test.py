"""Tests of the training-precision choice."""

import pytest

from models import precision
from models import vae as vae_lib

_AMX_CPU = frozenset({'fpu', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'})
_AVX512_BF16_CPU = frozenset({'fpu', 'avx512f', 'avx512_bf16'})
_AVX2_CPU = frozenset({'fpu', 'avx', 'avx2', 'fma'})


@pytest.mark.parametrize('flags, has_gpu, expected', [
    (_AMX_CPU, False, 'mixed_bfloat16'),
    (_AVX512_BF16_CPU, False, 'mixed_bfloat16'),
    (_AVX2_CPU, False, 'float32'),
    (frozenset(), False, 'float32'),
    (_AMX_CPU, True, 'float32'),
])
def test_auto_picks_bfloat16_only_on_a_cpu_that_has_it(flags, has_gpu,
                                                       expected):
  assert precision.resolve('auto', flags=flags, has_gpu=has_gpu) == expected


@pytest.mark.parametrize('explicit', ['float32', 'mixed_bfloat16'])
def test_explicit_precisions_are_kept_whatever_the_machine(explicit):
  for flags in (_AMX_CPU, _AVX2_CPU):
    for has_gpu in (False, True):
      assert precision.resolve(explicit, flags=flags,
                               has_gpu=has_gpu) == explicit


def test_unknown_precisions_are_rejected():
  with pytest.raises(ValueError, match="'float16'"):
    precision.resolve('float16')
  with pytest.raises(ValueError, match='Hyperparameters.precision'):
    vae_lib.Hyperparameters(precision='bf16')


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
  cpuinfo = tmp_path / 'cpuinfo'
  cpuinfo.write_text(
      'processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n'
      'flags\t\t: fpu sse avx512f amx_bf16 amx_tile\n\n'
      'processor\t: 1\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n')
  assert precision.cpu_flags(str(cpuinfo)) == {'fpu', 'sse', 'avx512f',
                                               'amx_bf16', 'amx_tile'}
  assert precision.resolve('auto', flags=precision.cpu_flags(str(cpuinfo)),
                           has_gpu=False) == 'mixed_bfloat16'


def test_no_cpuinfo_means_no_flags_and_float32(tmp_path):
  flags = precision.cpu_flags(str(tmp_path / 'missing'))
  assert flags == frozenset()
  assert precision.resolve('auto', flags=flags, has_gpu=False) == 'float32'
