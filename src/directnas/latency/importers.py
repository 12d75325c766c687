"""Import latency tables measured elsewhere into directnas's key format.

``IMPORTERS`` is the registry (``directnas latency import --format NAME``):

  * ``proxyless-yaml``: the official ProxylessNAS tables (``mobile_trim.yaml``): entries
    ``KEY: {count, mean, var}`` with mean in ms and keys such as
    ``Conv-input:224x224x3-output:112x112x32`` (stem conv),
    ``expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0`` (an
    MBConv), ``Conv_1-input:7x7x320-output:7x7x1280`` (final 1x1 conv) and
    ``Logits-input:7x7x1280-output:1000`` (classifier).  Our head key prices
    ``Conv_1 + Logits`` (global pooling costs 0 in that table).  The stem's kernel is not in
    the key; it is taken from the space.
  * ``ondevice``: the JSON ``scripts/ondevice_profile.py`` writes on a device, already in our
    keys.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any, Callable


from directnas.errors import UserError
from directnas.utils.fileio import read_json, read_yaml
from directnas.latency.table import LatencyTable
from directnas.space.space import SearchSpace, op_key

log = logging.getLogger(__name__)

_SHAPE = r"(\d+)x(\d+)x(\d+)"
_CONV_RE = re.compile(rf"^Conv-input:{_SHAPE}-output:{_SHAPE}$")
_CONV1_RE = re.compile(rf"^Conv_1-input:{_SHAPE}-output:{_SHAPE}$")
_LOGITS_RE = re.compile(rf"^Logits-input:{_SHAPE}-output:(\d+)$")
_MB_RE = re.compile(rf"^expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)"
                    rf"-stride:(\d+)-idskip:([01])$")
ONDEVICE_FORMAT = "directnas-ondevice"


def _entry(v: Any, key: str, path: Path) -> dict[str, float]:
    if not isinstance(v, dict) or not isinstance(v.get("mean"), (int, float)) or v["mean"] < 0:
        raise UserError(f"{path}: entry {key!r} needs a non-negative 'mean' (ms)")
    out = {"ms": float(v["mean"])}
    if isinstance(v.get("var"), (int, float)) and v["var"] >= 0:
        out["spread_ms"] = 1.349 * math.sqrt(v["var"])  # IQR of a normal with that variance
    if isinstance(v.get("count"), int):
        out["count"] = v["count"]
    return out


def import_proxyless_yaml(path: str | Path, space: SearchSpace) -> LatencyTable:
    path = Path(path)
    raw = read_yaml(path, what="latency yaml")
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{path} must map ProxylessNAS op keys to {{count, mean, var}}")
    entries: dict[str, dict[str, float]] = {}
    conv1: dict[tuple[int, int, int], dict[str, float]] = {}  # (hw, c_in, c_out)
    logits: dict[tuple[int, int], dict[str, float]] = {}  # (c_in, classes)
    skipped = []
    for key, v in raw.items():
        key = str(key)
        e = _entry(v, key, path)
        if m := _MB_RE.match(key):
            h, _, cin, ho, _, cout, exp, k, s, _ = (int(g) for g in m.groups())
            if ho != -(-h // s):
                raise UserError(f"{path}: entry {key!r} has output {ho} for input {h} "
                                f"at stride {s}")
            entries[op_key(f"k{k}_e{exp}", cin, cout, s, h)] = e
        elif m := _CONV_RE.match(key):
            h, _, cin, ho, _, cout = (int(g) for g in m.groups())
            s = h // ho
            entries[f"stem:k{space.stem_kernel}:in{cin}:out{cout}:s{s}:hw{h}"] = e
        elif m := _CONV1_RE.match(key):
            h, _, cin, _, _, cout = (int(g) for g in m.groups())
            conv1[(h, cin, cout)] = e
        elif m := _LOGITS_RE.match(key):
            _, _, cin, classes = (int(g) for g in m.groups())
            logits[(cin, classes)] = e
        else:
            skipped.append(key)
    head_key = space.fixed_keys()[-1]
    width = space.head_channels or space.last_channels
    lg = logits.get((width, space.num_classes))
    cv = conv1.get((space.last_hw, space.last_channels, space.head_channels)) \
        if space.head_channels else {"ms": 0.0}
    if lg is not None and cv is not None:
        entries[head_key] = {"ms": cv["ms"] + lg["ms"],
                             "spread_ms": cv.get("spread_ms", 0.0) + lg.get("spread_ms", 0.0)}
    if skipped:
        log.warning("%s: %d entries of unknown kind skipped (e.g. %s)", path, len(skipped),
                    skipped[0])
    meta = {"backend": "imported:proxyless-yaml", "device": f"unknown (imported from {path.name})",
            "source": str(path), "batch_size": 1, "imported_entries": len(raw),
            "skipped_entries": len(skipped)}
    return LatencyTable(meta, entries)


def import_ondevice(path: str | Path, space: SearchSpace | None = None) -> LatencyTable:
    path = Path(path)
    d = read_json(path, what="on-device results")
    if not isinstance(d, dict) or d.get("format") != ONDEVICE_FORMAT \
            or not isinstance(d.get("results"), dict):
        raise UserError(f"{path} is not output of scripts/ondevice_profile.py (format "
                        f"{ONDEVICE_FORMAT!r}): run that script on the device first")
    entries = {}
    for key, v in d["results"].items():
        if not isinstance(v, dict) or not isinstance(v.get("ms"), (int, float)) or v["ms"] < 0:
            raise UserError(f"{path}: result {key!r} needs a non-negative 'ms'")
        entries[str(key)] = {k: float(x) for k, x in v.items() if isinstance(x, (int, float))}
    meta = {"backend": "ondevice:onnxruntime", **dict(d.get("meta", {})), "source": str(path)}
    return LatencyTable(meta, entries)


IMPORTERS: dict[str, Callable[..., LatencyTable]] = {
    "proxyless-yaml": import_proxyless_yaml,
    "ondevice": import_ondevice,
}


def import_table(fmt: str, path: str | Path, space: SearchSpace | None) -> LatencyTable:
    """Convert ``path`` (format ``fmt``) into a table; with a space, check that it covers it."""
    if fmt not in IMPORTERS:
        raise UserError(f"unknown table format {fmt!r}: use one of {', '.join(IMPORTERS)}")
    if fmt == "proxyless-yaml" and space is None:
        raise UserError("--format proxyless-yaml needs --space "
                        "(it sets the stem kernel and the head)")
    table = IMPORTERS[fmt](path, space)
    if space is not None:
        table.meta["space"] = space.name
        table.meta["space_fingerprint"] = space.fingerprint()
        table.check_covers(space, path=path)
    return table
