"""Shapes: a procedural image dataset with an object mask per image, made from a seed.

Pure tensor maths over whole batches; draws only from its own seeded generators, never
from global RNG, so one seed gives the same images bit for bit. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "stripes")

# Images are drawn in chunks of about 4 M pixels (4,096 images at 32 px), each from its
# own generator seeded by (seed, chunk index): memory stays bounded at 64 px, a set's
# first chunks do not depend on its length, and few big tensor ops keep the per-op
# overhead (thread hand-offs, more costly on a busy CPU) small. Changing it changes images.
_CHUNK_PIXELS = 1 << 22
_RADIUS = (0.4, 0.8)  # object radius as a share of half the image side
_TEXTURE_CELLS = 4  # background texture: a 4x4 grid of random colours, smoothly upscaled


def make_shapes(
    n: int, *, size: int = 32, seed: int = 0, noise: float = 0.05, texture: float = 0.15
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw `n` images of coloured shapes on a textured, noisy background.

    Classes are balanced (counts differ by at most one); each image has a random
    position, size, rotation and colour pair whose channels differ by at least 0.35, so
    the object is visible. Every shape lies inside the image with a pixel to spare.

    Args:
        n: number of images.
        size: height and width in pixels (16, 32 and 64 are the app's choices).
        seed: the same seed gives the same tensors, bit for bit.
        noise: standard deviation of per-pixel Gaussian noise, on every pixel.
        texture: amplitude of the smooth colour texture on the background.

    Returns:
        images (n, 3, size, size) float32 in [0, 1], labels (n,) int64 indexing
        `SHAPE_CLASSES`, masks (n, size, size) bool, True on the object.
    """
    if n < 0 or size < 4:
        raise ValueError(f"need n >= 0 and size >= 4 pixels, got n={n}, size={size}")
    images = torch.empty(n, 3, size, size)
    labels = torch.empty(n, dtype=torch.int64)
    masks = torch.empty(n, size, size, dtype=torch.bool)
    smooth = _upsampler(size)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for index, start in enumerate(range(0, n, chunk)):
        stop = min(start + chunk, n)
        rng = np.random.default_rng([seed, index])
        out = images[start:stop], labels[start:stop], masks[start:stop]
        _draw_chunk(out, start, rng, smooth, noise, texture)
    return images, labels, masks


def _draw_chunk(
    out: tuple[Tensor, Tensor, Tensor],
    start: int,
    rng: np.random.Generator,
    smooth: Tensor,
    noise: float,
    texture: float,
) -> None:
    images, labels, masks = out
    b, size, k = len(labels), images.shape[-1], len(SHAPE_CLASSES)

    def uniform(*shape: int) -> Tensor:
        return torch.from_numpy(rng.random(shape, dtype=np.float32))

    # Labels cycle through the classes over the global index, then shuffle in the chunk:
    # over the whole set every class appears floor(n/k) or ceil(n/k) times.
    labels.copy_(torch.from_numpy(rng.permutation((np.arange(b) + start) % k)))
    r = _RADIUS[0] + (_RADIUS[1] - _RADIUS[0]) * uniform(b)
    reach = (1 - r - 2 / size).clamp(min=0)  # the centre keeps the shape 1 px from the edge
    cx = (2 * uniform(b) - 1) * reach
    cy = (2 * uniform(b) - 1) * reach
    theta = 2 * math.pi * uniform(b)
    bg = uniform(b, 3)
    fg = (bg + 0.35 + 0.3 * uniform(b, 3)) % 1  # each channel at least 0.35 away from bg
    cells = 2 * uniform(b, 3, _TEXTURE_CELLS, _TEXTURE_CELLS) - 1
    # Uniform noise from raw bytes costs a fifth of Gaussian noise; same standard deviation.
    grain = torch.from_numpy(rng.integers(0, 256, (b, 3, size, size), dtype=np.uint8))

    # Rotate the coordinate grid, not the shape: (u, v) are each pixel's coordinates in
    # the object's own frame, in units of its radius, so every shape is one inequality.
    # Each is a row plus a column, so it costs one pass over the pixels; computed per
    # class, only for that class's images.
    grid = (torch.arange(size) + 0.5) * (2 / size) - 1  # pixel centres in [-1, 1]
    dx = grid.view(1, 1, size) - cx.view(b, 1, 1)  # (B, 1, W)
    dy = grid.view(1, size, 1) - cy.view(b, 1, 1)  # (B, H, 1)
    c, s = (theta.cos() / r).view(b, 1, 1), (theta.sin() / r).view(b, 1, 1)
    for label, inside in enumerate(_SHAPES):
        i = (labels == label).nonzero().squeeze(1)
        u = c[i] * dx[i] + s[i] * dy[i]  # (B_k, 1, W) + (B_k, H, 1) -> (B_k, H, W)
        v = c[i] * dy[i] - s[i] * dx[i]
        masks[i] = inside(u, v)

    # Noise: uniform in [-a, a] has standard deviation a / sqrt(3) = noise. Its -a is
    # folded into the colours, so the pixels take one add and one clamp.
    a = noise * math.sqrt(3)
    # Bilinear upsampling is separable: two small matmuls instead of F.interpolate. Its
    # rows sum to one, so the background colour can ride along inside the cells.
    cells = texture * cells + (bg - a).view(b, 3, 1, 1)
    back = smooth @ cells @ smooth.T  # (B, 3, H, W)
    torch.where(masks.unsqueeze(1), (fg - a).view(b, 3, 1, 1), back, out=images)
    images.add_(grain, alpha=2 * a / 255).clamp_(0, 1)


def _upsampler(size: int) -> Tensor:
    """(size, cells) matrix M with M @ g @ M.T == bilinear upsampling of a cells x cells g."""
    eye = torch.eye(_TEXTURE_CELLS).unsqueeze(1)  # (cells, 1, cells): one impulse per row
    up = F.interpolate(eye, size=size, mode="linear", align_corners=False)
    return up.squeeze(1).T.contiguous()  # (size, cells)


# Each shape fits in the unit disc of its own frame (corners at most 0.96 from the centre).


def _circle(u: Tensor, v: Tensor) -> Tensor:
    return u * u + v * v <= 0.85**2


def _square(u: Tensor, v: Tensor) -> Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.68


def _triangle(u: Tensor, v: Tensor) -> Tensor:
    # Equilateral, circumradius 0.95: inside all three edges, whose normals point at
    # 90, 210 and 330 degrees and lie at half the circumradius from the centre.
    inside = torch.ones_like(u, dtype=torch.bool)
    for degrees in (90, 210, 330):
        a = math.radians(degrees)
        inside &= u * math.cos(a) + v * math.sin(a) <= 0.95 / 2
    return inside


def _cross(u: Tensor, v: Tensor) -> Tensor:
    au, av = u.abs(), v.abs()
    return ((au <= 0.25) & (av <= 0.9)) | ((av <= 0.25) & (au <= 0.9))


def _ring(u: Tensor, v: Tensor) -> Tensor:
    rr = u * u + v * v
    return (rr >= 0.5**2) & (rr <= 0.9**2)


def _stripes(u: Tensor, v: Tensor) -> Tensor:
    # Five bands across a square of half-side 0.65; the first, middle and last are filled.
    band = torch.floor((v + 0.65) / 0.26)
    return (u.abs() <= 0.65) & (v.abs() <= 0.65) & (band.remainder(2) == 0)


_SHAPES: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (
    _circle,
    _square,
    _triangle,
    _cross,
    _ring,
    _stripes,
)
