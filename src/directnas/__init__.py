"""directnas: hardware-aware neural architecture search on your task and your device.

The library (see docs/api.md)::

    import directnas
    space = directnas.load_space("cifar")
    found = directnas.search(space, (images, labels), target_latency="1.5x", quick=True)
    trained = directnas.train(found.arch, (images, labels), test=(test_images, test_labels))
    net = directnas.load("runs/demo")  # eval-mode float32; images (N, C, H, W) in [0, 1]
"""

__version__ = "0.1.0"

import sys  # noqa: E402
import types  # noqa: E402

from directnas import api  # noqa: E402
from directnas.api import SearchResult, TrainResult, measure, profile  # noqa: E402
from directnas.errors import UserError  # noqa: E402
from directnas.hardware.lut import LatencyTable  # noqa: E402
from directnas.inference import Classifier, load  # noqa: E402
from directnas.pipeline import TargetResult, run  # noqa: E402
from directnas.space.arch import Arch  # noqa: E402
from directnas.space.space import SearchSpace, load_space  # noqa: E402



class _CallableModule(types.ModuleType):
    """A module that is also a function: ``directnas.search`` (the package of the search's
    internals) and ``directnas.train`` (the training module) are also ``api.search`` and
    ``api.train``, so ``import directnas.search.gates`` and ``directnas.search(...)`` both work."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self.__wrapped__(*args, **kwargs)  # type: ignore[attr-defined]


def _callable_module(name: str, fn: types.FunctionType) -> types.ModuleType:
    module = sys.modules[f"{__name__}.{name}"]
    module.__class__ = _CallableModule
    module.__wrapped__ = fn  # type: ignore[attr-defined]  # inspect.signature() follows it
    return module


search = _callable_module("search", api.search)
train = _callable_module("train", api.train)

__all__ = ["Arch", "Classifier", "LatencyTable", "SearchResult", "SearchSpace", "TargetResult",
           "TrainResult", "UserError", "load", "load_space", "measure", "profile", "run", "search",
           "train", "__version__"]
