"""Why a blessed model must not be published now: the Pusher's checks,
made under the serving root's lock right before it publishes (and by `push`,
which the harnesses use): not a model an operator rolled back from, not the
model already served, and the served version is still the one the evaluator
measured the candidate against (compare-and-swap)."""

from typing import Optional

from tfx import types

from layouts import rejections
from layouts import serving as serving_layout


def rejected_reason(model_sha256: str, serving_dir: str) -> Optional[str]:
  """Why not to push: an operator rolled back from this very model."""
  entry = rejections.rejected_models(serving_dir).get(model_sha256)
  if entry is None:
    return None
  return (f'the candidate is a model an operator rolled back from (version '
          f'{entry.get("version", "?")}, rejected at {entry["at"]}; model '
          f'{model_sha256[:12]}); python -m pipeline.rollback --unreject '
          f'{model_sha256[:12]} takes that back')


def already_served_reason(model_sha256: str,
                          serving_dir: str) -> Optional[str]:
  """Why not to push: the newest version holds this very model (same
  weights; a rerun after its own push re-evaluates it against itself)."""
  current = serving_layout.latest_version_dir(serving_dir)
  if current is None or serving_layout.identity_of(current) != model_sha256:
    return None
  return (f'the candidate is already served as version '
          f'{serving_layout.version_name(current)}')


def served_changed_reason(blessing: types.Artifact,
                          serving_dir: str) -> Optional[str]:
  """Why publishing now would go backwards, or None if it may go ahead.

  The blessing records the version the evaluator measured the candidate
  against; if the newest complete version is another one, the comparison is
  stale.
  """
  if not blessing.has_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY):
    return ('the blessing does not record which served model it was '
            'measured against (it predates compare-and-swap); run again')
  evaluated = blessing.get_string_custom_property(
      serving_layout.BLESSING_SERVED_VERSION_KEY) or None
  current = serving_layout.latest_version_dir(serving_dir)
  if (evaluated or '').rstrip('/') == (current or '').rstrip('/'):
    return None
  return (f'served model changed since evaluation '
          f'({serving_layout.version_name(evaluated)} -> '
          f'{serving_layout.version_name(current)}); run again')


def not_pushed_reason(model_sha256: str, blessing: types.Artifact,
                      serving_dir: str) -> Optional[str]:
  """Why a blessed model must not be published now, or None. Checked under
  the serving root's lock, right before publishing."""
  return (rejected_reason(model_sha256, serving_dir) or
          already_served_reason(model_sha256, serving_dir) or
          served_changed_reason(blessing, serving_dir))
