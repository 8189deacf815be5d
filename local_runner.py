"""Runs the mnist-vae-tfx pipeline on this machine.

LocalDagRunner executes the components one after another; Beam-based ones use
the DirectRunner with one worker process per core; ML Metadata is a SQLite
file in the output directory. Run `python local_runner.py --help` for flags.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence

from pipeline import console
from pipeline import exit_codes
from pipeline import run_lock

logger = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.join(_HERE, 'data', 'mnist')
# The serving directory inside --output-dir, unless --serving-dir says.
SERVING_SUBDIR = 'serving_model'
# Exit codes (pipeline/exit_codes.py; README, "Exit codes").
EXIT_BAD_INPUT = exit_codes.BAD_INPUT
EXIT_LOCKED = exit_codes.OUTPUT_DIR_LOCKED
EXIT_DATA_GATE = exit_codes.DATA_GATE


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  parser = exit_codes.ArgumentParser(
      description='Train the MNIST convolutional VAE with a local TFX '
      'pipeline (LocalDagRunner, Beam DirectRunner, SQLite ML Metadata).',
      formatter_class=argparse.ArgumentDefaultsHelpFormatter,
      epilog='Exit codes: ' + exit_codes.describe(*exit_codes.MEANINGS) + '.')
  source = parser.add_argument_group(
      'data source: IDX files (--data-dir) or a TensorFlow Datasets data set '
      '(--tfds), not both')
  source.add_argument(
      '--data-dir', default=None,
      help='folder with the four MNIST IDX files (train-images-idx3-ubyte, '
      'train-labels-idx1-ubyte, t10k-images-idx3-ubyte, '
      't10k-labels-idx1-ubyte; raw or .gz), or with span-N/ folders of them, '
      'of which the newest is read. Defaults to the copy shipped in '
      'data/mnist.')
  source.add_argument(
      '--tfds', metavar='NAME',
      help='read the TensorFlow Datasets data set NAME instead (28x28x1 '
      'uint8 images, integer labels 0..9: e.g. mnist, fashion_mnist, kmnist); '
      'its train split becomes train, test becomes eval. Used as prepared in '
      '--tfds-data-dir, or prepared there offline from --tfds-manual-dir; '
      'nothing is downloaded.')
  source.add_argument(
      '--tfds-data-dir', metavar='DIR',
      help="the TFDS data directory (default: TFDS's own, $TFDS_DATA_DIR or "
      '~/tensorflow_datasets).')
  source.add_argument(
      '--tfds-manual-dir', metavar='DIR',
      help="folder with the data set's original files, to prepare it offline "
      'when it is not prepared in --tfds-data-dir (default for mnist: the '
      'shipped data/mnist).')
  parser.add_argument(
      '--output-dir', default='outputs',
      help='where component outputs (pipeline/), the ML Metadata store '
      '(metadata.sqlite) and later runs go; reruns reuse it and its cache.')
  parser.add_argument(
      '--serving-dir', default=None, metavar='DIR',
      help='the push destination, TensorFlow Serving\'s model base path (a '
      'folder, or s3:// or gs://); several output dirs may share one, since '
      'every push and rollback holds its lock. Default: '
      f'<output-dir>/{SERVING_SUBDIR}.')
  parser.add_argument(
      '--max-examples', type=flags.positive_int, default=None, metavar='N',
      help='use only the first N examples of each split (quick runs); '
      'default: all 60,000 train and 10,000 eval images.')
  parser.add_argument(
      '--beam-arg', action='append', default=[], metavar='ARG',
      help='extra Beam pipeline argument, repeatable, appended after the '
      'defaults (which run the DirectRunner in multi-processing mode with '
      'one worker per core), e.g. --beam-arg=--direct_num_workers=1 or '
      '--beam-arg=--runner=DataflowRunner.')
  flags.add_training_flags(parser, 'the serving directory')
  parser.add_argument(
      '--no-cache', action='store_true',
      help='rerun every component even if its inputs are unchanged.')
  parser.add_argument(
      '--verbose', action='store_true',
      help='show TensorFlow, TFX (absl) and Beam INFO logs.')
  args = parser.parse_args(argv)
  if args.tfds and args.data_dir:
    parser.error('--data-dir and --tfds are two data sources: give one')
  if not args.tfds and (args.tfds_data_dir or args.tfds_manual_dir):
    parser.error('--tfds-data-dir and --tfds-manual-dir need --tfds')
  if not args.tfds:
    args.data_dir = args.data_dir or DEFAULT_DATA_DIR
  elif not args.tfds_manual_dir and args.tfds == 'mnist':
    args.tfds_manual_dir = DEFAULT_DATA_DIR
  try:
    args.hyperparameters = flags.hyperparameters_from_args(args)
  except ValueError as e:
    parser.error(str(e))
  return args


def _local_or_uri(path: Optional[str]) -> Optional[str]:
  """An absolute path, or the URI (gs://, s3://) as it is."""
  if not path or '://' in path:
    return path
  return os.path.abspath(path)


def default_beam_args() -> List[str]:
  """DirectRunner in multi-processing mode, one worker per core."""
  return [
      '--direct_running_mode=multi_processing',
      f'--direct_num_workers={os.cpu_count() or 1}',
  ]


def _served_version_corrupt(error: Exception, serving_dir: str) -> int:
  logger.error('%s. Nothing was trained or pushed (exit code %d). Roll back '
               'past it, which publishes an intact earlier version above it: '
               'python -m pipeline.rollback --serving-dir %s', error,
               exit_codes.SERVED_VERSION_CORRUPT, serving_dir)
  return exit_codes.SERVED_VERSION_CORRUPT


def _anchor_corrupt(error: Exception, serving_dir: str) -> int:
  logger.error('%s. Nothing was trained or pushed (exit code %d). Re-anchor '
               'to the served version\'s data: python -m pipeline.anchor '
               '--serving-dir %s --set', error, exit_codes.ANCHOR_REFUSED,
               serving_dir)
  return exit_codes.ANCHOR_REFUSED


def _gate_advice(report: dict) -> str:
  """What an operator can do about what stopped the run."""
  from components.data_gate import gate  # pylint: disable=g-import-not-at-top
  kinds = {finding['kind'] for split in report['splits'].values()
           for finding in split.get('findings', ())}
  if kinds & {gate.SCHEMA, gate.SANITY}:
    return ('Schema and split sanity findings are data bugs that '
            '--accept-drift does not let through: fix the drop.')
  return ('If the change of distribution is intended, rerun with '
          '--accept-drift (its pushed data becomes the new anchor), or '
          're-anchor with python -m pipeline.anchor.')


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  # TensorFlow reads its log level when imported: configure logging first.
  console.configure_logging(console.verbose_requested(argv))
  args = parse_args(argv)
  from layouts import serving_lock  # pylint: disable=g-import-not-at-top
  from components.data_gate import gate  # pylint: disable=g-import-not-at-top
  from components.idx_example_gen import component as idx_component  # pylint: disable=g-import-not-at-top
  from components.idx_example_gen import idx  # pylint: disable=g-import-not-at-top
  from components.tfds_example_gen import tfds_source  # pylint: disable=g-import-not-at-top
  from components.vae_evaluator import executor as evaluator  # pylint: disable=g-import-not-at-top
  from layouts import anchor as anchor_layout  # pylint: disable=g-import-not-at-top
  from layouts import serving as serving_layout  # pylint: disable=g-import-not-at-top
  from pipeline import flags  # pylint: disable=g-import-not-at-top
  from pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  from pipeline import run_summary  # pylint: disable=g-import-not-at-top
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

  output_dir = os.path.abspath(args.output_dir)
  data_root, source, use_spans = None, None, False
  try:
    if args.tfds:
      source = tfds_source.prepare(
          args.tfds,
          data_dir=_local_or_uri(args.tfds_data_dir),
          manual_dir=args.tfds_manual_dir)
      data_name = f'TFDS {source.name} {source.version} ({source.dataset_dir})'
    else:
      data_root = os.path.abspath(args.data_dir)
      use_spans = idx_component.check_data_dir(data_root)
      data_name = data_root
  except (idx_component.DataDirError, tfds_source.TfdsSourceError) as e:
    logger.error('%s', e)
    return EXIT_BAD_INPUT

  pipeline_root = os.path.join(output_dir, 'pipeline')
  serving_dir = _local_or_uri(args.serving_dir) or os.path.join(
      output_dir, SERVING_SUBDIR)
  if serving_layout.is_object_store(serving_dir):
    import tensorflow_io  # pylint: disable=g-import-not-at-top,unused-import
  metadata_path = os.path.join(output_dir, 'metadata.sqlite')
  enable_cache = not args.no_cache
  if (enable_cache and os.path.exists(metadata_path) and
      not os.path.isdir(pipeline_root)):
    # ML Metadata would serve outputs whose files are gone.
    logger.warning('%s is gone but %s remains: running without the cache '
                   'this time', pipeline_root, metadata_path)
    enable_cache = False
  try:
    served_dir = serving_layout.latest_version_dir(serving_dir)
    if served_dir:
      # Checked here too: a run whose components are all cached reads no
      # version, and would not notice that the served one was damaged.
      serving_layout.verify_version(served_dir)
    anchor_layout.read_anchor(serving_dir)
  except serving_layout.VersionCorruptError as e:
    return _served_version_corrupt(e, serving_dir)
  except anchor_layout.AnchorCorruptError as e:
    return _anchor_corrupt(e, serving_dir)
  pipeline = pipeline_lib.create_pipeline(
      pipeline_name=pipeline_lib.PIPELINE_NAME,
      pipeline_root=pipeline_root,
      data_root=data_root,
      tfds_source=source,
      serving_dir=serving_dir,
      use_spans=use_spans,
      max_examples=args.max_examples,
      **flags.training_kwargs(args),
      beam_pipeline_args=default_beam_args() + args.beam_arg,
      metadata_connection_config=(
          tfx.orchestration.metadata.sqlite_metadata_connection_config(
              metadata_path)),
      enable_cache=enable_cache,
      # The served version is part of the gate's and evaluator's cache keys.
      served_version=serving_layout.version_name(served_dir),
  )
  logger.info('Running pipeline %s on %s (%s examples per split), %s',
              pipeline_lib.PIPELINE_NAME, data_name,
              args.max_examples or 'all', args.hyperparameters)
  try:
    with run_lock.run_lock(output_dir):
      try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
      except gate.DataGateError as e:
        # Nothing was trained or pushed; the summary says what was found.
        summary = run_summary.summarize(metadata_path)
        summary.update(output_dir=output_dir, data_gate=e.report)
        summary_path = run_summary.write_summary(summary, output_dir)
        logger.error('%s', e)
        print(run_summary.format_summary(summary))
        logger.error('Nothing was trained or pushed (exit code %d). Summary: '
                     '%s. %s', EXIT_DATA_GATE, summary_path,
                     _gate_advice(e.report))
        return EXIT_DATA_GATE
      summary = run_summary.summarize(metadata_path)
      summary['output_dir'] = output_dir
      summary_path = run_summary.write_summary(summary, output_dir)
  except run_lock.RunLockedError as e:
    logger.error('%s', e)
    return EXIT_LOCKED
  except (idx.IdxFormatError, tfds_source.TfdsSourceError) as e:
    logger.error('bad input data: %s', e)
    return EXIT_BAD_INPUT
  except serving_layout.VersionCorruptError as e:
    return _served_version_corrupt(e, serving_dir)
  except anchor_layout.AnchorCorruptError as e:
    return _anchor_corrupt(e, serving_dir)
  except serving_lock.ServingLockedError as e:
    logger.error('%s. Nothing was pushed (exit code %d); the next run '
                 'measures against whatever that writer published.', e,
                 exit_codes.SERVING_ROOT_LOCKED)
    return exit_codes.SERVING_ROOT_LOCKED
  except evaluator.ServedModelError as e:
    logger.error('%s. Nothing was pushed; the error was an I/O error each '
                 'time: check the storage and run again.', e)
    return exit_codes.FAILURE
  print(run_summary.format_summary(summary))
  logger.info('Pipeline finished. Outputs: %s (component outputs in %s, ML '
              'Metadata in %s, summary in %s)', output_dir, pipeline_root,
              metadata_path, summary_path)
  return 0


if __name__ == '__main__':
  # tensorflow-io is imported only for object stores (see exit_process).
  exit_codes.exit_process(main(), 'tensorflow_io' in sys.modules)
