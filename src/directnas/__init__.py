"""directnas: hardware-aware neural architecture search on your task and your device.

The library (see docs/api.md)::

    import directnas
    space = directnas.load_space("cifar")
    found = directnas.search(space, (images, labels), target_latency="1.5x", quick=True)
    trained = directnas.train(found.arch, (images, labels), test=(test_images, test_labels))
    net = directnas.load("runs/demo")  # eval-mode float32; images (N, C, H, W) in [0, 1]
    small = directnas.compress(trained, (images, labels), test=(test_images, test_labels), out="c")
    shipped = directnas.export(small.file, "c/export", formats="onnx", data=(test_images, test_labels))
"""

__version__ = "0.2.0"

from directnas.api import (CompressResult, ExportResult, SearchResult, TrainResult,  # noqa: E402
                           compress, export, measure, profile, run, search, train)
from directnas.errors import UserError  # noqa: E402
from directnas.latency.table import LatencyTable  # noqa: E402
from directnas.models.classifier import Classifier, load  # noqa: E402
from directnas.pipeline.run import TargetResult  # noqa: E402
from directnas.space.arch import Arch  # noqa: E402
from directnas.space.space import SearchSpace, load_space  # noqa: E402

__all__ = ["Arch", "Classifier", "CompressResult", "ExportResult", "LatencyTable", "SearchResult",
           "SearchSpace", "TargetResult", "TrainResult", "UserError", "compress", "export", "load",
           "load_space", "measure", "profile", "run", "search", "train", "__version__"]
