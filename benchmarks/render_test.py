"""Tests of benchmarks/render.py on the committed results (fast: no benchmark
runs; the benchmark modules are only imported)."""

import importlib
import json
import pathlib

import pytest

from benchmarks import render

BENCHMARKS = pathlib.Path(__file__).resolve().parent
RESULTS = BENCHMARKS / 'results'


def _load(name):
  path = RESULTS / f'{name}.json'
  return str(path), json.loads(path.read_text())


def _rendered_by(result):
  lines_fn, _ = render.renderer(result)
  return lines_fn.__module__ if lines_fn else None


def test_every_committed_result_renders_with_its_name_and_file():
  paths = sorted(RESULTS.glob('*.json'))
  assert len(paths) >= 10
  for path in paths:
    text = render.render(str(path))
    result = json.loads(path.read_text())
    assert f'`{result["run_name"]}`' in text, path
    assert f'{path.name}`' in text, path
    assert 'Traceback' not in text


def test_every_benchmark_script_has_markdown_lines():
  # train_vae.py is being replaced (by recipes.py) and renders generically;
  # s3_server.py is moto's server for benchmarks and tests, not a benchmark.
  scripts = [p.stem for p in BENCHMARKS.glob('*.py')
             if p.stem not in ('recording', 'render', 'train_vae', '__init__',
                               's3_server')
             and not p.stem.endswith('_test')]
  assert 'throughput' in scripts
  for name in scripts:
    module = importlib.import_module(f'benchmarks.{name}')
    assert callable(getattr(module, 'markdown_lines', None)), name


def test_kubeflow_tasks_rendered_by_its_module_with_every_task():
  path, result = _load('kubeflow_tasks_2026-11-25')
  assert _rendered_by(result) == 'benchmarks.kubeflow_tasks'
  text = render.render(path)
  assert f'{result["neg_elbo"]:.2f}' in text  # 150.77
  for task, stats in result['tasks'].items():
    assert f'| {task} | {stats["seconds"]} | {stats["peak_memory_gb"]} |' in text
  assert '| Trainer | 456.2 | 1.25 |' in text


def test_lifecycle_rendered_with_every_step_and_its_exit_codes():
  path, result = _load('lifecycle_2026-12-01_s3')
  assert _rendered_by(result) == 'benchmarks.lifecycle'
  text = render.render(path)
  assert f'{result["totals"]["violations"]} violations' in text
  for step in result['steps']:
    assert f'| {step["step"]}. {step["name"]} |' in text


def test_kubeflow_image_rendered_with_the_build_and_every_task():
  path, result = _load('kubeflow_image_2026-12-01')
  assert _rendered_by(result) == 'benchmarks.kubeflow_image'
  text = render.render(path)
  assert 'Image: 3.84 GB, built in 665.5 s' in text
  for scenario, run in result['scenarios'].items():
    for task, stats in run['tasks'].items():
      assert f'| {scenario} | {task} | {stats["result"]} |' in text
  assert '| local | Trainer | succeeded | 25.6 |' in text
  assert '- stock: failed at CuratedSchemaGen' in text


def test_data_gate_rendered_with_calibration_and_cost():
  path, result = _load('data_gate_2026-11-25')
  assert _rendered_by(result) == 'benchmarks.data_gate'
  text = render.render(path)
  for row in result['calibration']:
    assert row['case'] in text
    assert f'{row["mean_image_linf"]:.3g}' in text
  added = result['timing']['added_seconds']
  assert f'{added["nothing_served"]:+.1f} s' in text  # +0.6 s
  assert f'{added["served"]:+.1f} s' in text  # -0.4 s
  assert 'target <= 10 s: met' in text


def test_tfds_ingest_rendered_with_ratio_and_medians():
  path, result = _load('tfds_ingest_2026-11-25')
  assert _rendered_by(result) == 'benchmarks.tfds_ingest'
  text = render.render(path)
  assert f'{result["tfds_over_idx"]:.2f}x' in text  # 1.26x
  assert f'{result["first_preparation_seconds"]} s' in text  # 8.5 s
  for median in result['median_seconds'].values():
    assert f'{median:.2f}' in text


def test_manifold_throughput_stage_timings_rendered_with_their_figures():
  path, result = _load('manifold_render_2026-11-24')
  assert _rendered_by(result) == 'benchmarks.manifold_render'
  assert f'{result["speedup_saved_model"]:,.0f}x' in render.render(path)

  for name in ('throughput_2026-11-23', 'throughput_2026-11-24'):
    path, result = _load(name)
    assert _rendered_by(result) == 'benchmarks.throughput'
    text = render.render(path)
    assert f'{result["ratio_of_medians"]:.2f}x' in text  # 0.98x, 1.39x
    assert 'NOT met' in text

  path, result = _load('stage_timings_2026-11-24')
  assert _rendered_by(result) == 'benchmarks.stage_timings'
  summary = result['measured_now_summary']['outside_trainer_seconds']
  assert f'{summary["median"]:.2f} (target <= 60 s: met)' in render.render(path)


def test_train_vae_results_render_generically_with_their_figures():
  for path in sorted(RESULTS.glob('train_vae_*.json')):
    result = json.loads(path.read_text())
    assert _rendered_by(result) is None
    text = render.render(str(path))
    assert 'Generic rendering' in text
    held_out = result['held_out']
    assert (f'| held_out.negative_elbo | {held_out["negative_elbo"]:.2f} |'
            in text), path
    assert f'| hyperparameters.seed | {result["hyperparameters"]["seed"]} |' in text


def test_removed_module_renders_generically():
  # speed_options.py was removed; its committed result still renders.
  path, result = _load('speed_options_2026-11-24')
  text = render.render(path)
  assert 'module benchmarks.speed_options no longer exists' in text
  bf16 = result['summary']['mixed_bfloat16']
  assert '| mixed_bfloat16 |' in text
  assert render.fmt(bf16['epoch_speedup']) in text  # 1.49


def test_result_naming_a_missing_module(tmp_path):
  result = {
      'run_name': 'gone_2026-01-01', 'module': 'benchmarks.no_such_benchmark',
      'results_file': 'gone_2026-01-01.json', 'date_utc': '2026-01-01 00:00 UTC',
      'command': '.venv/bin/python -m benchmarks.no_such_benchmark --fast',
      'machine': {'cpus': 2, 'cpu_model': 'Some CPU'},
      'versions': {'python': '3.10.13'},
      'ratio': 1.2345, 'target_met': False, 'images_per_s': [1.0, 2.0, 3.0],
      'per_option': {'a': {'seconds': 1.5, 'ok': True},
                     'b': {'seconds': 2.5, 'ok': False}},
      'rounds': [{'x': 1}, {'x': 2}],
      'nested': {'deeper': {'value': 0.000123}},
  }
  path = tmp_path / 'gone.json'
  path.write_text(json.dumps(result))
  text = render.render(str(path))
  assert 'module benchmarks.no_such_benchmark no longer exists' in text
  assert '- Command: `.venv/bin/python -m benchmarks.no_such_benchmark --fast`' in text
  assert '2 CPU cores (Some CPU)' in text
  assert '| ratio | 1.23 |' in text
  assert '| target_met | no |' in text
  assert '| images_per_s | 1.00, 2.00, 3.00 |' in text
  assert '| a | 1.50 | yes |' in text and '| b | 2.50 | no |' in text
  assert '| 0 | 1 |' in text and '| 1 | 2 |' in text
  assert '| nested.deeper.value | 0.000123 |' in text


def test_module_comes_from_module_field_else_command():
  assert render.module_name({'module': 'benchmarks.a',
                             'command': 'python -m benchmarks.b'}) == 'benchmarks.a'
  assert render.module_name(
      {'command': ".venv/bin/python -m benchmarks.b --note 'x y'"}) == 'benchmarks.b'
  assert render.module_name({'command': 'python local_runner.py'}) is None
  assert render.module_name({}) is None
  assert render.module_name({'module': 'no_such_package.x'}) == 'no_such_package.x'
  assert render.renderer({'module': 'no_such_package.x'})[0] is None


def test_readme_runs_render_generically_with_the_readme_figures():
  path, _ = _load('readme_runs_2026-11-25')
  text = render.render(path)
  assert 'no module recorded' in text
  for figure in ('| runs[0].wall_seconds | 430.00 |',
                 '| runs[0].run_summary.metrics.neg_elbo | 151.49 |',
                 '| runs[1].run_summary.metrics.neg_elbo | 356.43 |',
                 '| Trainer | 383.10 | ran |'):
    assert figure in text


def test_main_prints_each_file(capsys):
  assert render.main([str(RESULTS / 'tfds_ingest_2026-11-25.json'),
                      str(RESULTS / 'readme_runs_2026-11-25.json')]) == 0
  out = capsys.readouterr().out
  assert '`tfds_ingest_2026-11-25`' in out and '`readme_runs_2026-11-25`' in out


def test_generic_flag_overrides_the_module():
  path, _ = _load('tfds_ingest_2026-11-25')
  text = render.render(path, generic=True)
  assert 'Generic rendering (asked for)' in text
  assert '| tfds_over_idx | 1.26 |' in text


if __name__ == '__main__':
  pytest.main([__file__])
