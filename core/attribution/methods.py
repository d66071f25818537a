"""The computation: Captum's passes over a frozen copy, batched so memory stays flat, with
progress, cancelling, seeded noise and the baselines and targets they compare with.

`attribute(frozen_copy(net), images, request)` -> maps, classes, probabilities, IG's delta.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from core import checks
from core.attribution.request import (
    BASELINES,
    METHODS,
    AttributionError,
    AttributionRequest,
    CancelFlag,
    Cancelled,
    Progress,
)
from core.attribution.wrapping import check_frozen, check_images, gradcam_layer, probabilities

_BLUR_SIGMA = 1 / 8  # of the image side: a 32 px image is blurred with sigma 4 px
_CAPTUM = {
    "saliency": Saliency,
    "integrated_gradients": IntegratedGradients,
    "gradient_shap": GradientShap,
    "input_x_gradient": InputXGradient,
    "occlusion": Occlusion,
    "guided_backprop": GuidedBackprop,
}


@dataclass(frozen=True, kw_only=True, eq=False)
class AttributionResult:
    """Maps and what they explain; every tensor is on the CPU."""

    request: AttributionRequest
    maps: Tensor  # (N, H, W): channels summed (signed); GradCAM upsampled to the image
    raw: Tensor  # (N, C, H, W); GradCAM: (N, 1, h, w) at the block's own resolution
    targets: Tensor  # (N,) int64: the class each map explains
    probabilities: Tensor  # (N, classes): softmax of the model's output
    delta: Tensor | None  # (N,) Integrated Gradients: sum(map) - (f(x) - f(baseline))
    gradcam_block: int | None  # the block GradCAM looked at
    seconds_per_image: float


# --- what the maps compare with ----------------------------------------------------------


def baseline_images(images: Tensor, kind: str, *, seed: int = 0) -> Tensor:
    """The reference picture(s) Integrated Gradients, GradientShap and Occlusion compare with.

    black: zeros. blurred: a Gaussian blur with sigma = side / 8 (Sturmfels et al. 2020,
    "Visualizing the Impact of Feature Attribution Baselines"). noise: uniform between the
    batch's lowest and highest value, drawn from `seed` only.
    """
    checks.choice(kind, "baseline", BASELINES, error=AttributionError)
    if kind == "black":
        return torch.zeros_like(images)
    if kind == "blurred":
        side = min(images.shape[-2:])
        sigma = max(1.0, _BLUR_SIGMA * side)
        half = min(math.ceil(3 * sigma), side - 1)  # +-3 sigma; reflect padding < the side
        if half < 1:
            return images.clone()
        return gaussian_blur(images, [2 * half + 1] * 2, [sigma, sigma])
    gen = torch.Generator().manual_seed(seed)
    lo, hi = images.min(), images.max()
    noise = torch.rand(images.shape, generator=gen, dtype=images.dtype).to(images.device)
    return lo + (hi - lo) * noise


def choose_targets(
    request: AttributionRequest, probs: Tensor, labels: Tensor | None = None
) -> Tensor:
    """The class each map explains: predicted, true (from `labels`) or one chosen class."""
    n, classes = probs.shape
    if request.target == "predicted":
        return probs.argmax(1)
    if request.target == "class":
        if request.target_class >= classes:
            raise AttributionError(
                f"class {request.target_class} does not exist: this model has {classes} "
                f"classes, numbered 0 to {classes - 1}"
            )
        return torch.full((n,), request.target_class, dtype=torch.int64, device=probs.device)
    if labels is None:
        raise AttributionError(
            "target 'true' explains each image's true class, so it needs the labels",
            fix="pass labels=..., or choose target 'predicted'",
        )
    labels = torch.as_tensor(labels).to(probs.device, torch.int64).reshape(-1)
    if len(labels) != n or labels.min() < 0 or labels.max() >= classes:
        raise AttributionError(
            f"labels must hold one class from 0 to {classes - 1} per image ({n} images), "
            f"got {len(labels)} labels from {labels.min().item()} to {labels.max().item()}"
        )
    return labels


# --- Captum's passes ---------------------------------------------------------------------


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Captum's NoiseTunnel and GradientShap draw from torch's and numpy's global generators:
    seed both and restore them afterwards, so a map is reproducible. Another thread drawing
    from them meanwhile (dropout) gets the seeded stream: harmless."""
    devices = [] if device.type == "cpu" else [device.index or 0]
    kind = "cuda" if device.type == "cpu" else device.type
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices, device_type=kind):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def _rows_per_image(request: AttributionRequest) -> int:
    """Images in one pass for each image attributed (path steps, random draws)."""
    return {
        "integrated_gradients": request.n_steps,
        "gradient_shap": request.gradshap_samples,
    }.get(request.method, 1)


def _captum(model: nn.Module, request: AttributionRequest, layer: nn.Module | None):
    if request.method == "gradcam":
        return LayerGradCam(model, layer)
    return _CAPTUM[request.method](model)


def _kwargs(request: AttributionRequest, xb: Tensor, bb: Tensor, noise: float, copies: int):
    """Captum's arguments for one call on `xb` (each image possibly expanded `copies` times)."""
    ibs = request.internal_batch_size
    m = request.method
    if m == "saliency":
        return {"abs": True}
    if m == "integrated_gradients":
        n = len(xb) * copies  # SmoothGrad hands IG the noisy copies as one batch
        return {"baselines": bb, "n_steps": request.n_steps, "internal_batch_size": max(ibs, n)}
    if m == "gradient_shap":
        return {"baselines": bb, "n_samples": request.gradshap_samples, "stdevs": noise}
    if m == "occlusion":
        c, w, s = xb.shape[1], request.occlusion_window, request.occlusion_stride
        return {
            "baselines": bb,
            "sliding_window_shapes": (c, w, w),
            "strides": (c, s, s),
            "perturbations_per_eval": max(1, ibs // len(xb)),
        }
    if m == "gradcam":
        return {"relu_attributions": True}
    return {}


def _one_pass(method, request, xb: Tensor, tb: Tensor, bb: Tensor | None, noise: float):
    """(attributions, IG's convergence delta or None) for one batch of images."""
    kw = _kwargs(request, xb, bb, noise, 1)
    if request.method == "integrated_gradients":
        attr, delta = method.attribute(xb, target=tb, return_convergence_delta=True, **kw)
        return attr.detach(), delta.detach()
    return method.attribute(xb, target=tb, **kw).detach(), None


def _noisy_pass(method, request, xb: Tensor, tb: Tensor, bb, noise: float, s: int) -> Tensor:
    """SmoothGrad: the mean map over `s` noisy copies of each image, in one pass."""
    return (
        NoiseTunnel(method)
        .attribute(
            xb,
            nt_type="smoothgrad",
            nt_samples=s,
            nt_samples_batch_size=s,
            stdevs=noise,
            target=tb,
            **_kwargs(request, xb, bb, noise, s),
        )
        .detach()
    )


# --- attribute ---------------------------------------------------------------------------


def attribute(
    model: nn.Module,
    images: Tensor,
    request: AttributionRequest,
    *,
    labels: Tensor | None = None,
    targets: Tensor | None = None,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> AttributionResult:
    """Attribute each image's class score to its pixels with one Captum method.

    Args:
        model: a `frozen_copy` of the network (eval mode, weights not trainable).
        images: (N, C, H, W), in the value range the model was trained on.
        request: method and settings.
        labels: (N,) true classes, needed for target 'true'.
        targets: (N,) classes to explain, overriding `request.target` (the sanity check
            keeps the original model's classes while it randomises the weights).
        progress: called with (share done, message) after every pass.
        cancel: checked before every pass; when set, `Cancelled` is raised.

    Raises:
        AttributionError: the model is not frozen, or the request does not fit the model.
        Cancelled: `cancel` was set.
    """
    start = time.perf_counter()
    check_frozen(model)
    x = check_images(model, images)
    _check_window(request, x)
    block, layer = (
        gradcam_layer(model, request.gradcam_block) if request.method == "gradcam" else (None, None)
    )
    probs = probabilities(model, x, request.internal_batch_size)
    if targets is None:
        targets = choose_targets(request, probs, labels)
    targets = torch.as_tensor(targets).to(x.device, torch.int64).reshape(-1)
    if len(targets) != len(x):
        raise AttributionError(f"need one target class per image ({len(x)}), got {len(targets)}")
    method = _captum(model, request, layer)
    with _seeded(request.seed, x.device):
        raw, deltas = _passes(method, request, x, targets, progress, cancel)
    if request.method == "gradcam":  # (N, 1, h, w) -> (N, H, W), bilinear as in the paper
        maps = F.interpolate(raw, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    else:
        maps = raw.sum(1)  # (N, C, H, W) -> (N, H, W): signed, so IG's sum is kept
    return AttributionResult(
        request=request,
        maps=maps.float().cpu(),  # the .cpu() copies are the host sync point
        raw=raw.float().cpu(),
        targets=targets.cpu(),
        probabilities=probs.cpu(),
        delta=torch.cat(deltas).float().cpu() if deltas else None,
        gradcam_block=block,
        seconds_per_image=(time.perf_counter() - start) / len(x),
    )


def _check_window(request: AttributionRequest, x: Tensor) -> None:
    if request.method == "occlusion" and request.occlusion_window > min(x.shape[-2:]):
        raise AttributionError(
            f"the occlusion window ({request.occlusion_window} pixels) is larger than the "
            f"{x.shape[-2]}x{x.shape[-1]} images",
            fix=f"choose at most {min(x.shape[-2:])}",
        )


def _passes(method, request, x, targets, progress, cancel) -> tuple[Tensor, list[Tensor]]:
    """Every pass of one attribution: (raw attributions (N, ...), IG's deltas per chunk).

    Batching: at most internal_batch_size rows (images x path steps x noisy copies) in one
    pass, so memory does not grow with n_steps or the number of samples.
    """
    n = len(x)
    uses_baseline = METHODS[request.method].baseline
    base = baseline_images(x, request.baseline, seed=request.seed) if uses_baseline else None
    noise = request.noise_level * ((x.max() - x.min()).item() or 1.0)  # one host sync
    samples, per_image = request.smoothgrad_samples, _rows_per_image(request)
    chunk = max(1, min(n, request.internal_batch_size // per_image))
    copies = max(1, min(samples, request.internal_batch_size // (chunk * per_image)))
    splits = [min(copies, samples - k) for k in range(0, samples, copies)] or [0]
    total, done, parts, deltas = n * max(1, samples), 0, {}, []
    what = "noisy copies" if samples else "images"
    for lo in range(0, n, chunk):
        xb = x[lo : lo + chunk].detach().requires_grad_()  # a leaf, as Captum expects
        tb = targets[lo : lo + chunk]
        bb = base[lo : lo + chunk] if base is not None else None
        for s in splits:  # s noisy copies of each image; 0: the images themselves
            if cancel is not None and cancel.is_set():
                raise Cancelled(
                    f"{request.label} stopped at your request after {done} of {total} steps"
                )
            if s:
                attr = _noisy_pass(method, request, xb, tb, bb, noise, s) * (s / samples)
            else:
                attr, delta = _one_pass(method, request, xb, tb, bb, noise)
                deltas += [delta] if delta is not None else []
            parts[lo] = attr if lo not in parts else parts[lo] + attr
            done += len(xb) * max(1, s)
            if progress is not None:
                progress(min(1.0, done / total), f"{request.label}: {done} of {total} {what}")
    return torch.cat([parts[lo] for lo in sorted(parts)]), deltas


def scaled_progress(progress: Progress | None, lo: float, hi: float) -> Progress | None:
    """A callback that maps an inner computation's [0, 1] onto [lo, hi] of the outer one."""
    if progress is None:
        return None
    return lambda share, message: progress(lo + (hi - lo) * share, message)
