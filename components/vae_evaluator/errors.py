"""The evaluator's error, without TFX: the local runner maps it to its exit
code (pipeline/local_run.py) before it imports the pipeline."""


class ServedModelError(RuntimeError):
  """The served model could not be read, even after retries."""
