"""Fixtures of the model tests: tiny ExampleGen outputs of real MNIST digits."""

import pathlib

import pytest

from conftest import write_examples_dir


@pytest.fixture
def examples_dir(tmp_path) -> pathlib.Path:
  """256 train and 64 eval real MNIST digits as ExampleGen writes them."""
  directory = tmp_path / 'examples'
  write_examples_dir(directory, 256, 64)
  return directory
