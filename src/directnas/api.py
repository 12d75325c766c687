"""The library: every stage of directnas as a call from a notebook or a training script.

``profile`` and ``measure`` time ops and nets on a runtime; ``search``, ``train``, ``export`` and
``compress`` run one stage (in a run folder when given ``out``); ``baselines`` and
``random_search`` give the references a search is compared with; ``run`` chains profile ->
search -> train -> export -> report (-> compress).  The CLI's commands are thin adapters over
these calls.  Every option is a keyword; options of the search, of training and of compression
are the fields of ``SearchConfig``, ``TrainConfig`` and ``CompressConfig`` (a misspelt one is a
``UserError``, as are bad values).  ``data``/``test``: see ``data.sources`` (a dataset name or
folder, ``(images, labels)`` tensors, any map-style ``torch.utils.data.Dataset``).
"""

from __future__ import annotations

from directnas.latency.cache import get_table, make_protocol, measure, profile
from directnas.pipeline.baselines import baselines
from directnas.pipeline.compress import CompressResult, compress
from directnas.pipeline.export import ExportResult, export
from directnas.pipeline.random_search import random_search
from directnas.pipeline.run import TargetResult, run
from directnas.pipeline.search import SearchResult, search
from directnas.pipeline.train import TrainResult, train

__all__ = ["CompressResult", "ExportResult", "SearchResult", "TargetResult", "TrainResult",
           "baselines", "compress", "export", "get_table", "make_protocol", "measure", "profile",
           "random_search", "run", "search", "train"]
