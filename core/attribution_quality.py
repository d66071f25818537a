"""How good is a map? Localisation against object masks, and Adebayo et al.'s sanity check.

The public face of `core.attribution.localisation` and `core.attribution.sanity`; no UI and
no printing there.
"""

from core.attribution.localisation import (
    Localisation,
    LocalisationRow,
    compare_localisation,
    pointing_game,
    score_localisation,
    share_inside,
)
from core.attribution.sanity import (
    CONTROLS,
    INDEPENDENCE_THRESHOLD,
    Explainer,
    SanityCurve,
    SanityReport,
    edge_detector,
    nonzero_pixels,
    randomisation_stages,
    randomise_,
    sanity_check,
    sanity_checks,
    spearman,
)

__all__ = [
    "CONTROLS",
    "INDEPENDENCE_THRESHOLD",
    "Explainer",
    "Localisation",
    "LocalisationRow",
    "SanityCurve",
    "SanityReport",
    "compare_localisation",
    "edge_detector",
    "nonzero_pixels",
    "pointing_game",
    "randomisation_stages",
    "randomise_",
    "sanity_check",
    "sanity_checks",
    "score_localisation",
    "share_inside",
    "spearman",
]
