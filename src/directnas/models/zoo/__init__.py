"""Named reference models. Each module here registers its builders with
``directnas.models.registry.register``; add a module's name to ``MODULES`` to load it."""

import importlib

MODULES: list[str] = ["lenet", "mobilenetv2", "mobilenetv3"]

for _m in MODULES:
    importlib.import_module(f"directnas.models.zoo.{_m}")
