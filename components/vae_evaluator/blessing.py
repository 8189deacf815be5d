"""Whether a candidate model is good enough to serve.

Blessed if and only if
  1. every metric of the candidate is finite;
  2. its -ELBO is at most `threshold` nats (an absolute floor on quality);
  3. when a model is being served: the served model could be measured, and the
     candidate's -ELBO is at most the served model's plus `tolerance` nats,
     both measured on the same images in the same run;
  4. when a model is being served: the candidate's serving signature (input
     and output names, dtypes and shapes) is the served one's, unless a
     change is explicitly allowed: a client of the served decoder would
     otherwise break silently (e.g. after a change of latent_dim).
With no served model, only 1 and 2 apply. A served model that cannot be
measured blocks the push (fail closed) rather than risk replacing it with a
worse one; the reason says how to unblock it.
"""

import dataclasses
import math
from typing import List, Mapping, Optional, Tuple

from layouts import contracts

# Metrics that must be finite; the -ELBO is the one compared.
COMPARED_METRIC = 'neg_elbo'


@dataclasses.dataclass(frozen=True)
class Decision:
  blessed: bool
  reasons: List[str]  # every check, passed or failed, in plain words


def decide(candidate: Mapping[str, float], threshold: float, tolerance: float,
           baseline: Optional[Mapping[str, float]] = None,
           baseline_error: Optional[str] = None,
           signatures: Optional[Tuple[str, str]] = None,
           allow_signature_change: bool = False) -> Decision:
  """Applies the blessing rules above.

  `signatures` is (served, candidate), each as `ExportedVae.signature()`
  describes it; None when nothing is served.
  """
  reasons = []
  blessed = True
  not_finite = [k for k in contracts.METRIC_KEYS
                if not math.isfinite(candidate.get(k, math.nan))]
  if not_finite:
    blessed = False
    reasons.append(f'FAIL: metrics not finite: {", ".join(not_finite)}')
  else:
    reasons.append('ok: all metrics are finite')

  value = candidate.get(COMPARED_METRIC, math.nan)
  if value <= threshold:
    reasons.append(f'ok: -ELBO {value:.2f} <= threshold {threshold:.2f} nats')
  else:
    blessed = False
    reasons.append(f'FAIL: -ELBO {value:.2f} > threshold {threshold:.2f} nats')

  if baseline_error:
    blessed = False
    reasons.append(f'FAIL: the served model could not be measured: '
                   f'{baseline_error}')
  elif baseline is None:
    reasons.append('ok: no model is served yet; judged on the threshold alone')
  else:
    reference = baseline.get(COMPARED_METRIC, math.nan)
    if value <= reference + tolerance:
      reasons.append(
          f'ok: -ELBO {value:.2f} <= served model {reference:.2f} + '
          f'tolerance {tolerance:.2f} nats')
    else:
      blessed = False
      reasons.append(
          f'FAIL: -ELBO {value:.2f} > served model {reference:.2f} + '
          f'tolerance {tolerance:.2f} nats')

  if signatures is not None:
    served, new = signatures
    if served == new:
      reasons.append(f'ok: serving signature unchanged ({new})')
    elif allow_signature_change:
      reasons.append(f'ok: serving signature changed ({served} => {new}), '
                     'allowed by --allow-signature-change')
    else:
      blessed = False
      reasons.append(
          f'FAIL: serving signature changed ({served} => {new}): clients of '
          'the served decoder would break; rerun with '
          '--allow-signature-change to push it anyway')
  return Decision(blessed, reasons)
