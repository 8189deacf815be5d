"""The numeric precision training runs in: float32 or mixed bfloat16.

`mixed_bfloat16` computes the convolutions and the hidden dense layers in
bfloat16 while the variables, the latent heads (z_mean, z_log_var), the
sampling of z, the output sigmoid and the loss stay float32. On CPUs with
native bfloat16 (Intel AMX-BF16 or AVX512-BF16) oneDNN then runs the
convolutions on those units: a train step is about 1.5x faster than float32
(BENCHMARKS.md). On other CPUs bfloat16 is emulated and slower than float32,
so the default, `auto`, only picks it where the CPU has it.

Exports are float32 whatever the training precision (see `models.export`).
"""

import logging
from typing import FrozenSet, Optional

import tensorflow as tf

logger = logging.getLogger(__name__)

AUTO = 'auto'
FLOAT32 = 'float32'
MIXED_BFLOAT16 = 'mixed_bfloat16'
PRECISIONS = (AUTO, FLOAT32, MIXED_BFLOAT16)

# /proc/cpuinfo flags of CPUs that compute bfloat16 natively.
NATIVE_BFLOAT16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')

_CPUINFO = '/proc/cpuinfo'


def cpu_flags(cpuinfo_path: str = _CPUINFO) -> FrozenSet[str]:
  """The CPU's feature flags from /proc/cpuinfo; empty where there is none.

  (On a machine without /proc/cpuinfo, e.g. macOS, `auto` thus means float32.)
  """
  try:
    with open(cpuinfo_path) as f:
      for line in f:
        if line.startswith('flags'):
          return frozenset(line.split(':', 1)[1].split())
  except OSError as e:
    logger.info('Cannot read the CPU flags from %s (%s)', cpuinfo_path, e)
  return frozenset()


def resolve(precision: str,
            *,
            flags: Optional[FrozenSet[str]] = None,
            has_gpu: Optional[bool] = None) -> str:
  """The Keras dtype policy name for a `Hyperparameters.precision`.

  Args:
    precision: one of PRECISIONS.
    flags: the CPU flags (default: this machine's).
    has_gpu: whether TensorFlow sees a GPU (default: asks TensorFlow).

  Returns:
    'float32' or 'mixed_bfloat16'. `auto` is 'mixed_bfloat16' on a CPU-only
    machine whose CPU has one of NATIVE_BFLOAT16_CPU_FLAGS, else 'float32'.

  Raises:
    ValueError: an unknown precision.
  """
  if precision not in PRECISIONS:
    raise ValueError(f'precision must be one of {PRECISIONS}, got '
                     f'{precision!r}')
  if precision != AUTO:
    return precision
  if has_gpu is None:
    has_gpu = bool(tf.config.list_physical_devices('GPU'))
  if has_gpu:
    return FLOAT32
  if flags is None:
    flags = cpu_flags()
  native = [flag for flag in NATIVE_BFLOAT16_CPU_FLAGS if flag in flags]
  return MIXED_BFLOAT16 if native else FLOAT32


def training_policy(precision: str) -> str:
  """`resolve(precision)` on this machine, logged: what training runs in."""
  policy = resolve(precision)
  logger.info('Training precision: %s (Hyperparameters.precision=%r)', policy,
              precision)
  return policy
