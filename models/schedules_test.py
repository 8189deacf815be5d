"""Tests of the per-step schedules (values worked out by hand)."""

import numpy as np
import pytest

from models import schedules


def test_constant_learning_rate_with_and_without_warm_up():
  flat = schedules.LearningRate(1e-3)
  assert [float(flat(s)) for s in (0, 10, 10_000)] == pytest.approx([1e-3] * 3)
  warm = schedules.LearningRate(3e-3, warmup_steps=3, total_steps=10)
  assert [float(warm(s)) for s in range(5)] == pytest.approx(
      [1e-3, 2e-3, 3e-3, 3e-3, 3e-3])


def test_cosine_reaches_the_final_rate_at_the_last_step():
  lr = schedules.LearningRate(1e-3, 'cosine', final=1e-5, total_steps=11)
  # progress s / 10; halfway (s = 5) is the mean of peak and final.
  assert float(lr(0)) == pytest.approx(1e-3)
  assert float(lr(5)) == pytest.approx((1e-3 + 1e-5) / 2)
  assert float(lr(10)) == pytest.approx(1e-5)
  assert float(lr(50)) == pytest.approx(1e-5)  # clipped after the end
  values = [float(lr(s)) for s in range(11)]
  assert all(a > b for a, b in zip(values, values[1:]))


def test_kl_weight_linear_and_cyclical():
  assert float(schedules.KlWeight()(123)) == 1.0
  linear = schedules.KlWeight(ramp_steps=4, cycle_steps=100)
  assert [float(linear(s)) for s in (0, 1, 3, 4, 99)] == pytest.approx(
      [0.25, 0.5, 1.0, 1.0, 1.0])
  cyclical = schedules.KlWeight(ramp_steps=2, cycle_steps=5)
  np.testing.assert_allclose([float(cyclical(s)) for s in range(10)],
                             [0.5, 1, 1, 1, 1] * 2)
  with pytest.raises(ValueError, match='ramp_steps'):
    schedules.KlWeight(ramp_steps=6, cycle_steps=5)


def test_steps_per_execution_divides_the_epoch():
  # 60,000 images / 128 = 469 steps = 7 x 67: 8 would not divide it.
  assert schedules.exact_steps_per_execution(8, 469) == 7
  assert schedules.exact_steps_per_execution(7, 469) == 7
  assert schedules.exact_steps_per_execution(1, 469) == 1
  assert schedules.exact_steps_per_execution(8, 4) == 4  # a quick subset
  assert schedules.exact_steps_per_execution(100, 13) == 13
  with pytest.raises(ValueError):
    schedules.exact_steps_per_execution(0, 10)
