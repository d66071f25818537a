"""Named networks, as data: the classic ResNets, their plain twins, and classroom nets.

Each preset is a function of the input shape and class count that returns a NetSpec;
`PRESETS` lists them with a one-line description for the builder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from core.spec import (
    BasicSpec,
    BlockSpec,
    BottleneckSpec,
    Defaults,
    DenseResidualSpec,
    DenseSpec,
    FlattenSpec,
    HeadSpec,
    NetSpec,
    StemSpec,
)

CIFAR_SHAPE = (3, 32, 32)
IMAGENET_SHAPE = (3, 224, 224)
MNIST_SHAPE = (1, 28, 28)


def _stages(widths, depths, make: Callable[[int, int], BlockSpec]) -> tuple[BlockSpec, ...]:
    """Stages of blocks; the first block of every stage after the first halves the size."""
    blocks = []
    for s, (width, depth) in enumerate(zip(widths, depths, strict=True)):
        for j in range(depth):
            blocks.append(make(width, 2 if s > 0 and j == 0 else 1))
    return tuple(blocks)


def cifar_resnet(
    n: int,
    *,
    residual: bool = True,
    widths: tuple[int, int, int] = (16, 32, 64),
    input_shape: tuple[int, int, int] = CIFAR_SHAPE,
    num_classes: int = 10,
) -> NetSpec:
    """He et al. 2015, sec. 4.2: 6n+2 layers, three stages of n basic blocks with 16, 32
    and 64 filters, option A (zero-pad) shortcuts. `residual=False` gives the plain twin:
    the same layers and parameters with every skip off."""

    def block(width: int, stride: int) -> BlockSpec:
        return BasicSpec(out_channels=width, stride=stride, shortcut="zero_pad", skip=residual)

    depth = 6 * n + 2
    return NetSpec(
        name=f"{'ResNet' if residual else 'Plain'}-{depth}",
        input_shape=input_shape,
        num_classes=num_classes,
        stem=StemSpec(out_channels=widths[0], kernel_size=3),
        blocks=_stages(widths, (n, n, n), block),
    )


def imagenet_resnet(
    depth: int,
    *,
    residual: bool = True,
    input_shape: tuple[int, int, int] = IMAGENET_SHAPE,
    num_classes: int = 1000,
) -> NetSpec:
    """torchvision's resnet18/34/50 layout: 7x7/2 stem and max pool, four stages of
    64-512 filters, 1x1 projection shortcuts where the shape changes (option B)."""
    layouts = {
        18: ("basic", (2, 2, 2, 2)),
        34: ("basic", (3, 4, 6, 3)),
        50: ("bottleneck", (3, 4, 6, 3)),
    }
    kind, depths = layouts[depth]

    def block(width: int, stride: int) -> BlockSpec:
        if kind == "basic":
            return BasicSpec(out_channels=width, stride=stride, skip=residual)
        return BottleneckSpec(width=width, stride=stride, skip=residual)

    return NetSpec(
        name=f"{'ResNet' if residual else 'Plain'}-{depth} (ImageNet)",
        input_shape=input_shape,
        num_classes=num_classes,
        stem=StemSpec(out_channels=64, kernel_size=7, stride=2, pool=True),
        blocks=_stages((64, 128, 256, 512), depths, block),
    )


def dense_residual(
    *,
    residual: bool = True,
    blocks: int = 1,
    input_shape: tuple[int, int, int] = MNIST_SHAPE,
    num_classes: int = 10,
) -> NetSpec:
    """The classic Keras example for flattened input: Dense 1024 -> Dropout -> Dense 512
    -> Dense 1024 -> Add, then a softmax layer. No BatchNorm, as in the example."""
    body = tuple(DenseResidualSpec(skip=residual) for _ in range(blocks))
    return NetSpec(
        name=f"Dense {'residual' if residual else 'plain'} MLP",
        input_shape=input_shape,
        num_classes=num_classes,
        blocks=(FlattenSpec(), *body),
        defaults=Defaults(batch_norm=False),
    )


def dense_plain_deep(
    *, depth: int = 8, width: int = 256, input_shape=MNIST_SHAPE, num_classes: int = 10
) -> NetSpec:
    """A deep stack of dense layers, for the vanishing-gradient lesson on MLPs."""
    return NetSpec(
        name=f"Dense-{depth}",
        input_shape=input_shape,
        num_classes=num_classes,
        blocks=(FlattenSpec(), *(DenseSpec(out_features=width) for _ in range(depth))),
        head=HeadSpec(),
        defaults=Defaults(batch_norm=False, activation="sigmoid"),
    )


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    make: Callable[..., NetSpec]
    input_shape: tuple[int, int, int]

    def spec(self, *, input_shape=None, num_classes: int | None = None) -> NetSpec:
        """The preset for another input shape or class count (e.g. a user's dataset)."""
        spec = self.make()
        changes = {}
        if input_shape is not None:
            changes["input_shape"] = tuple(input_shape)
        if num_classes is not None:
            changes["num_classes"] = num_classes
        return dataclasses.replace(spec, **changes) if changes else spec


def _cifar_presets():
    """The classroom nets, then He et al.'s CIFAR ResNets, each with its plain twin."""
    for n, depth in ((1, 8), (2, 14)):
        for res in (True, False):
            kind = "ResNet" if res else "Plain"
            yield Preset(
                f"{kind.lower()}{depth}_narrow",
                f"{kind}-{depth} narrow (classroom)",
                f"{depth} layers, 8/16/32 filters: trains in seconds on a laptop CPU.",
                lambda n=n, res=res: dataclasses.replace(
                    cifar_resnet(n, residual=res, widths=(8, 16, 32)),
                    name=f"{'ResNet' if res else 'Plain'}-{6 * n + 2} narrow",
                ),
                CIFAR_SHAPE,
            )
    for n in (3, 5, 7, 9, 18):
        depth = 6 * n + 2
        yield Preset(
            f"resnet{depth}",
            f"ResNet-{depth} (CIFAR)",
            f"He et al. 2015, sec. 4.2: {depth} layers, 16/32/64 filters, zero-pad shortcuts.",
            lambda n=n: cifar_resnet(n),
            CIFAR_SHAPE,
        )
        yield Preset(
            f"plain{depth}",
            f"Plain-{depth} (CIFAR)",
            f"The plain twin of ResNet-{depth}: same layers and parameters, no skips.",
            lambda n=n: cifar_resnet(n, residual=False),
            CIFAR_SHAPE,
        )


def _other_presets():
    """torchvision's ImageNet ResNets, then the dense nets for flattened digits."""
    for depth in (18, 34, 50):
        yield Preset(
            f"resnet{depth}_imagenet",
            f"ResNet-{depth} (ImageNet layout)",
            f"torchvision's resnet{depth}: 224x224 input, projection shortcuts.",
            lambda d=depth: imagenet_resnet(d),
            IMAGENET_SHAPE,
        )
    yield Preset(
        "dense_residual",
        "Dense residual MLP",
        "The classic Keras block: Dense 1024 -> Dropout -> 512 -> 1024 -> Add.",
        dense_residual,
        MNIST_SHAPE,
    )
    yield Preset(
        "dense_plain",
        "Dense plain MLP",
        "The same MLP with its skip off.",
        lambda: dense_residual(residual=False),
        MNIST_SHAPE,
    )
    yield Preset(
        "dense_sigmoid8",
        "Deep sigmoid MLP (8 layers)",
        "Eight sigmoid dense layers: the textbook case of vanishing gradients.",
        dense_plain_deep,
        MNIST_SHAPE,
    )


PRESETS: dict[str, Preset] = {p.key: p for p in (*_cifar_presets(), *_other_presets())}
