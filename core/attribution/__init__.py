"""Captum attribution maps on a frozen copy of a network: seven methods and SmoothGrad.

`attribute(frozen_copy(net), images, request)` -> maps, classes, probabilities, IG's delta.
Never touches weights an optimizer is writing; never imports the UI or prints. One idea
per module, re-exported here as Captum's `captum.attr` does:

- `request`: the methods, the request and its checks, the errors;
- `wrapping`: the frozen copy behind its normalisation, GradCAM's blocks;
- `methods`: Captum's passes, batched, seeded, cancellable;
- `images`: which images to explain, and several networks' maps of the same images.
"""

from core.attribution.images import (
    MAX_POOL,
    PICKS,
    ImageMaps,
    choose_images,
    explain_images,
    pick_images,
    take,
)
from core.attribution.methods import (
    AttributionResult,
    attribute,
    baseline_images,
    choose_targets,
    scaled_progress,
)
from core.attribution.request import (
    BASELINES,
    MAX_BATCH,
    MAX_SAMPLES,
    MAX_STEPS,
    METHODS,
    SMOOTHGRAD,
    TARGETS,
    AttributionError,
    AttributionRequest,
    CancelFlag,
    Cancelled,
    Method,
    Progress,
)
from core.attribution.wrapping import (
    Normalised,
    check_frozen,
    check_images,
    feature_map_blocks,
    freeze,
    frozen_copy,
    gradcam_layer,
    is_frozen,
    probabilities,
    shared_feature_map_blocks,
    unwrap,
)

__all__ = [
    "BASELINES",
    "MAX_BATCH",
    "MAX_POOL",
    "MAX_SAMPLES",
    "MAX_STEPS",
    "METHODS",
    "PICKS",
    "SMOOTHGRAD",
    "TARGETS",
    "AttributionError",
    "AttributionRequest",
    "AttributionResult",
    "CancelFlag",
    "Cancelled",
    "ImageMaps",
    "Method",
    "Normalised",
    "Progress",
    "attribute",
    "baseline_images",
    "check_frozen",
    "check_images",
    "choose_images",
    "choose_targets",
    "explain_images",
    "feature_map_blocks",
    "freeze",
    "frozen_copy",
    "gradcam_layer",
    "is_frozen",
    "pick_images",
    "probabilities",
    "scaled_progress",
    "shared_feature_map_blocks",
    "take",
    "unwrap",
]
