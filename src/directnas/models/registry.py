"""Named reference models (baselines): a registry of builders ``(input_shape, num_classes) -> nn.Module``.

Register with ``@register("name")``; the registry refuses duplicates.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from directnas.errors import UserError

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def arch_builder(make_arch: Callable[..., Any]) -> Builder:
    """A registry builder of a net defined by an ``Arch`` (``make_arch(input_shape=...,
    num_classes=...)``); the net keeps its Arch (``net.arch``), so a latency table prices it."""

    def build(*, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        arch = make_arch(input_shape=input_shape, num_classes=num_classes)
        net = arch.build()
        net.arch = arch
        return net

    return build


def _load_zoo() -> None:
    import directnas.models.zoo  # noqa: F401  (its modules register themselves)


def model_names() -> list[str]:
    _load_zoo()
    return sorted(_REGISTRY)


def build_named(name: str, *, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    _load_zoo()
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}: use one of {', '.join(model_names()) or '(none)'}")
    return _REGISTRY[name](input_shape=input_shape, num_classes=num_classes)
