"""What to attribute and how: the methods as the page presents them, the request with its
checks, and what can go wrong (a refused request, a cancelled computation).

No Captum and no model here: a request is data, checked on creation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from core import checks
from core.errors import ExplainedError

Progress = Callable[[float, str], None]  # (share done in [0, 1], what is happening)


class CancelFlag(Protocol):
    """Anything with `is_set()`, such as a `threading.Event`."""

    def is_set(self) -> bool: ...


class AttributionError(ExplainedError):
    """A request, model or batch that cannot be attributed; the message says what to change."""


class Cancelled(Exception):
    """The user stopped a long computation; nothing partial is returned."""


@dataclass(frozen=True)
class Method:
    """One attribution method as the page presents it."""

    key: str
    title: str
    explanation: str  # one sentence a teacher can read aloud
    smoothgrad: bool = True  # SmoothGrad can wrap it (a gradient method without its own noise)
    baseline: bool = False  # compares the image with `AttributionRequest.baseline`


METHODS: dict[str, Method] = {
    m.key: m
    for m in (
        Method(
            "saliency",
            "Saliency",
            "How strongly a tiny change of each pixel would move the class score: the size "
            "of the score's gradient (Simonyan et al. 2014).",
        ),
        Method(
            "integrated_gradients",
            "Integrated Gradients",
            "Walks in small steps from a baseline picture to the real image and adds up the "
            "gradients on the way, so the pixel scores sum to how much the class score "
            "changed (Sundararajan et al. 2017).",
            baseline=True,
        ),
        Method(
            "gradient_shap",
            "GradientShap",
            "Integrated Gradients averaged over random baselines, random points on the path "
            "and a little noise: an estimate of each pixel's Shapley value (Lundberg and Lee "
            "2017).",
            smoothgrad=False,
            baseline=True,
        ),
        Method(
            "input_x_gradient",
            "Input × Gradient",
            "The gradient times the pixel itself: large where a strong pixel has a strong "
            "effect (Shrikumar et al. 2016).",
        ),
        Method(
            "occlusion",
            "Occlusion",
            "Covers one square patch at a time with the baseline and records how much the "
            "class score drops: slow, but it needs no gradients (Zeiler and Fergus 2014).",
            smoothgrad=False,
            baseline=True,
        ),
        Method(
            "guided_backprop",
            "Guided Backprop",
            "A gradient in which every ReLU also blocks negative gradients on the way back: "
            "sharp maps which, Adebayo et al. 2018 found, barely change when the top layers' "
            "weights are replaced by random ones.",
        ),
        Method(
            "gradcam",
            "GradCAM",
            "Weights a block's feature maps by how much the class score depends on each, "
            "keeps the positive part and stretches it to the image: coarse but specific to "
            "the class (Selvaraju et al. 2017).",
        ),
    )
}

SMOOTHGRAD = (
    "SmoothGrad averages the map over copies of the image with random noise added, which "
    "wipes out speckle that no single pixel deserves (Smilkov et al. 2017)."
)
TARGETS = {
    "predicted": "the class the model predicts",
    "true": "the image's true class",
    "class": "a class you choose",
}
BASELINES = {
    "black": "a black image (every pixel zero)",
    "blurred": "the same image, heavily blurred: keeps the colours, removes the shapes",
    "noise": "uniform noise over the images' range of values",
}

# Caps so one request cannot tie up the server; the page's sliders stay well inside them.
MAX_STEPS = 1000
MAX_SAMPLES = 500
MAX_BATCH = 4096
_NO_SMOOTHGRAD = {
    "occlusion": "Occlusion uses no gradients",
    "gradient_shap": "GradientShap already averages over noisy copies",
}


def _whole(request: AttributionRequest, name: str, lo: int, hi: int, meaning: str, hint: str):
    """One whole-number setting: 'n_steps (the number of steps on the path) must be ...'."""
    value = getattr(request, name)
    checks.whole(value, f"{name} ({meaning})", lo, hi, fix=hint, error=AttributionError)


def _check_noise(noise) -> None:
    name = "noise_level (the noise's spread as a share of the images' range)"
    if isinstance(noise, (int, float)) and not isinstance(noise, bool) and noise == 0:
        raise AttributionError(
            f"{name} must be above 0 and at most 1, got 0", fix="0.15 is the usual choice"
        )
    checks.number(noise, name, 0, 1, fix="0.15 is the usual choice", error=AttributionError)


@dataclass(frozen=True, kw_only=True)
class AttributionRequest:
    """What to attribute and how. Edit with `dataclasses.replace`; checked on creation.

    `internal_batch_size` caps the images (or path steps, noisy copies, occluded copies)
    in one forward and backward pass, so memory stays flat however many steps or samples
    are asked for.
    """

    method: str = "saliency"
    target: str = "predicted"  # a key of TARGETS
    target_class: int | None = None  # used when target == "class"
    baseline: str = "black"  # a key of BASELINES: Integrated Gradients, GradientShap, Occlusion
    n_steps: int = 50  # Integrated Gradients: points on the path (Gauss-Legendre)
    gradshap_samples: int = 20  # GradientShap: random (baseline, point, noise) draws per image
    smoothgrad_samples: int = 0  # noisy copies per image; 0 switches SmoothGrad off
    noise_level: float = 0.15  # noise std as a share of the value range (Smilkov: 10-20%)
    occlusion_window: int = 4  # side of the square patch, in pixels
    occlusion_stride: int = 2
    gradcam_block: int | None = None  # index in NetSpec.blocks; None: the last conv block
    internal_batch_size: int = 64
    seed: int = 0  # noise and random baselines are drawn from this seed

    def __post_init__(self) -> None:
        for name, choices in (("method", METHODS), ("target", TARGETS), ("baseline", BASELINES)):
            checks.choice(getattr(self, name), name, choices, error=AttributionError)
        _whole(self, "internal_batch_size", 1, MAX_BATCH, "the most images in a pass", "try 64")
        _whole(self, "occlusion_window", 1, 512, "the patch side in pixels", "try 4")
        gradshap_cap = MAX_SAMPLES
        if self.method == "gradient_shap":
            gradshap_cap = min(MAX_SAMPLES, self.internal_batch_size)
        checks_ = [  # (setting, lowest, highest, what it is, what to try)
            ("n_steps", 1, MAX_STEPS, "the number of steps on the path", "50 is a good start"),
            (
                "gradshap_samples",
                1,
                gradshap_cap,
                "the random draws per image, made in one pass (so at most internal_batch_size)",
                "20 is a good start",
            ),
            (
                "smoothgrad_samples",
                0,
                MAX_SAMPLES,
                "the number of noisy copies per image",
                "0 switches SmoothGrad off; 20 to 50 is usual",
            ),
            (
                "occlusion_stride",
                1,
                self.occlusion_window,
                "the patch's step in pixels, at most the window so that every pixel gets covered",
                "try half the window",
            ),
            ("seed", 0, 2**63 - 1, "the random seed", "0 is fine"),
        ]
        if self.target == "class":
            checks_.append(("target_class", 0, 10**6, "the class to explain", "0 is the first"))
        if self.gradcam_block is not None:
            checks_.append(("gradcam_block", 0, 10**6, "a block index", "or None for the last"))
        for name, lo, hi, meaning, hint in checks_:
            _whole(self, name, lo, hi, meaning, hint)
        if self.smoothgrad_samples and not METHODS[self.method].smoothgrad:
            raise AttributionError(
                "SmoothGrad averages gradient maps over noisy copies, but "
                f"{_NO_SMOOTHGRAD[self.method]}",
                fix="set smoothgrad_samples to 0 or choose another method",
            )
        _check_noise(self.noise_level)

    @property
    def label(self) -> str:
        """'Integrated Gradients (50 steps, black baseline) + SmoothGrad (20 samples)'."""
        m = self.method
        detail = {
            "integrated_gradients": f"{self.n_steps} steps, {self.baseline} baseline",
            "gradient_shap": f"{self.gradshap_samples} samples, {self.baseline} baseline",
            "occlusion": f"{self.occlusion_window}x{self.occlusion_window} window, "
            f"stride {self.occlusion_stride}, {self.baseline} patch",
            "gradcam": "last conv block"
            if self.gradcam_block is None
            else f"block {self.gradcam_block}",
        }.get(m)
        text = METHODS[m].title + (f" ({detail})" if detail else "")
        if self.smoothgrad_samples:
            text += f" + SmoothGrad ({self.smoothgrad_samples} samples)"
        return text
