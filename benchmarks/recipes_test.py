"""Tests of the recipe study's bookkeeping (no training)."""

import pytest

from benchmarks import recipes


def _run(recipe, seed, final, curve=None, epoch_seconds=None):
  return {'recipe': recipe, 'seed': seed, 'held_out': {'neg_elbo': final},
          'train_seconds': sum(epoch_seconds or [10.0]),
          'epoch_seconds': epoch_seconds or [10.0],
          'held_out_neg_elbo_per_epoch': curve}


def test_catch_up_is_the_first_epoch_at_or_below_the_reference_final():
  runs = [
      _run('a', 1, 150.0), _run('a', 2, 152.0),
      _run('b', 1, 147.0, curve=[160.0, 151.0, 150.0, 147.0],
           epoch_seconds=[5.0, 6.0, 7.0, 8.0]),
      _run('b', 2, 153.0, curve=[160.0, 155.0, 153.0],
           epoch_seconds=[5.0, 5.0, 5.0]),
  ]
  assert recipes.catch_up(runs, 'a', 'b') == [
      {'seed': 1, 'reference_final': 150.0, 'epoch': 3, 'seconds': 18.0,
       'candidate_final': 147.0},
      {'seed': 2, 'reference_final': 152.0, 'epoch': None, 'seconds': None,
       'candidate_final': 153.0},
  ]


def test_summary_spread_over_seeds():
  runs = [_run('a', s, v) for s, v in ((1, 150.0), (2, 152.0), (3, 154.0))]
  summary = recipes.summarize(runs)['a']
  assert summary['held_out_neg_elbo'] == {'mean': 152.0, 'sd': 2.0,
                                          'min': 150.0, 'max': 154.0, 'n': 3}
  assert summary['seeds'] == [1, 2, 3]


def test_ad_hoc_recipes_are_checked_against_the_hyperparameters():
  assert recipes.parse_recipe('x:learning_rate=0.002,lr_schedule=cosine') == {
      'x': {'learning_rate': 0.002, 'lr_schedule': 'cosine'}}
  with pytest.raises(ValueError, match='Unknown hyperparameter'):
    recipes.parse_recipe('x:learning_rat=0.002')


def test_every_named_recipe_is_valid():
  for name, overrides in recipes.RECIPES.items():
    if overrides is not None:
      recipes.vae_lib.Hyperparameters(**overrides)
