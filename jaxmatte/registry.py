"""One name -> object registry mechanism for models, losses, datasets and preprocessing ops."""

from __future__ import annotations

import importlib
import pkgutil
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")
_IMPORT_LOCK = threading.RLock()  # re-entrant: a module's import may look up another registry


class Registry:
    """Maps names to objects of one kind.

    Lookups import every module of `package` first, so a new file that registers
    itself is found without editing any `__init__.py`.
    """

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._items: dict[str, Any] = {}
        self._imported = False

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def _import_all(self) -> None:
        # Locked, and marked done only once every module is imported: a reader thread (predict's
        # background I/O) must never see a half-filled registry.
        if self._imported or self.package is None:
            return
        with _IMPORT_LOCK:
            if self._imported:
                return
            pkg = importlib.import_module(self.package)
            for info in pkgutil.walk_packages(pkg.__path__, prefix=self.package + "."):
                importlib.import_module(info.name)
            self._imported = True

    def names(self) -> list[str]:
        self._import_all()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._import_all()
        return name in self._items

    def get(self, name: str) -> Any:
        self._import_all()
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return self._items[name]


MODELS = Registry("model", "jaxmatte.models")
# Feature extractors (ResNet, VGG, ViT, ASPP) are building blocks, not matting models: a
# config's model.name must be a MODELS entry, so they live in their own registry.
BACKBONES = Registry("backbone", "jaxmatte.models")
INFERENCE = Registry("inference procedure", "jaxmatte.inference")
LOSSES = Registry("loss", "jaxmatte.losses")
DATASETS = Registry("dataset", "jaxmatte.data.builders")
OPS = Registry("preprocessing op", "jaxmatte.data")
CONVERTERS = Registry("checkpoint converter", "jaxmatte.convert")
METRICS = Registry("metric", "jaxmatte.metrics")
RECIPES = Registry("augmentation recipe", "jaxmatte.data")
