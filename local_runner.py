"""Runs the mnist-vae-tfx pipeline on this machine.

LocalDagRunner executes the components one after another; Beam-based ones use
the DirectRunner with one worker process per core; ML Metadata is a SQLite
file in the output directory. The run itself, and which error ends it with
which exit code, is pipeline/local_run.py. Run `python local_runner.py --help`
for flags.
"""

import argparse
import logging
import os
import sys
from typing import List, Optional, Sequence

from pipeline import console
from pipeline import exit_codes

logger = logging.getLogger(__name__)

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIR = os.path.join(_HERE, 'data', 'mnist')
# The serving directory inside --output-dir, unless --serving-dir says.
SERVING_SUBDIR = 'serving_model'


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
  flags.add_pipeline_flags(parser, 'the serving directory')
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
    args.config = flags.config_from_args(args)
  except ValueError as e:
    parser.error(str(e))
  return args


def default_beam_args() -> List[str]:
  """DirectRunner in multi-processing mode, one worker per core."""
  return [
      '--direct_running_mode=multi_processing',
      f'--direct_num_workers={os.cpu_count() or 1}',
  ]


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  # TensorFlow reads its log level when imported: configure logging first,
  # then import what runs the pipeline (and TensorFlow with it).
  console.configure_logging(console.verbose_requested(argv))
  args = parse_args(argv)
  from pipeline import local_run  # pylint: disable=g-import-not-at-top
  run = local_run.LocalRun(args, logger, SERVING_SUBDIR,
                           default_beam_args() + args.beam_arg)
  try:
    return run.run()
  except local_run.STOPS as error:  # Documented errors only; see OUTCOMES.
    return run.stopped(error)


if __name__ == '__main__':
  # tensorflow-io is imported only for object stores (see exit_process).
  exit_codes.exit_process(main(), 'tensorflow_io' in sys.modules)
