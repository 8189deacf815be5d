"""Compiles a package for the launcher emulation (pipeline/kfp_launcher.py):
what the Kubeflow tests and benchmarks/kubeflow_tasks.py run."""

from typing import Optional, Sequence

import kubeflow_runner
from pipeline import data_schema
from pipeline import kubeflow_package


def compile_package(output: str, *, serving_root: str, pipeline_root: str,
                    flags: Sequence[str] = (),
                    schema_file: Optional[str] = None) -> str:
  """`kubeflow_runner.py compile` for an emulated run; returns the package.

  The command line accepts only URIs a pod can reach; the compile function
  itself takes any path, which is what a local pipeline root or push
  destination needs. The data root is a placeholder (runs set the
  `data_root` runtime parameter), and the curated schema is `schema_file`,
  by default the repository's copy, standing in for the image's (pass
  kubeflow_package.IMAGE_SCHEMA_FILE for tasks run in the image).
  """
  def uri(path: str, placeholder: str) -> str:
    return path if '://' in path else placeholder

  args = kubeflow_runner.parse_args([
      'compile', '--output', output,
      '--pipeline-root', uri(pipeline_root, 'gs://compiled/root'),
      '--data-root', 'gs://compiled/data/',
      '--serving-root', uri(serving_root, 'gs://compiled/serving'),
      '--image', 'registry.example.com/mnist-vae-tfx:emulated', *flags])
  args.serving_root = serving_root
  args.pipeline_root = pipeline_root
  image_schema_file = kubeflow_package.IMAGE_SCHEMA_FILE
  kubeflow_package.IMAGE_SCHEMA_FILE = schema_file or data_schema.SCHEMA_FILE
  try:
    return kubeflow_runner.compile_pipeline(args, output)
  finally:
    kubeflow_package.IMAGE_SCHEMA_FILE = image_schema_file
