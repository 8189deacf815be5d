"""The DataGate's error, without TFDV: the local runner maps it to its exit
code (pipeline/local_run.py) before it imports the pipeline."""

from typing import Any, Dict


class DataGateError(RuntimeError):
  """A data drop failed the gate; `report` says what was found."""

  def __init__(self, message: str, report: Dict[str, Any]):
    super().__init__(message)
    self.report = report
