"""S-space ablation plus a nudge: in each output projection's whitened singular
coordinates (``sspace.py``), the token's component along the behaviour's direction is
projected out and ``s`` times the mean difference is added::

    y <- y - U (sqrt(S) * (z . d^) d^) + s * U (sqrt(S) * d)        for s != 0

Like ``act:directional_ablation`` it jumps at 0: strength 0 is the unsteered model, any
other strength includes the ablation, so its smallest strength (the ablation alone) is
the floor of the KL a calibration can reach.
"""

from __future__ import annotations

from weightsteer.methods import Candidate, MethodInputs, register
from weightsteer.methods.sspace import SSpaceConfig, check_projections, sspace_candidates


@register("act:sspace_ablate", SSpaceConfig, check=check_projections)
def sspace_ablate(inputs: MethodInputs, cfg: SSpaceConfig) -> list[Candidate]:
    return sspace_candidates("act:sspace_ablate", inputs, cfg, ablate=True)
