"""The flags of ``directnas run`` that choose the reference nets trained beside the searched one
(``pipeline.references``)."""

from __future__ import annotations

import argparse
from typing import Any

from directnas.pipeline.references import MODELS, MORE_MODELS, RANDOM, WINDOW


def add_reference_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("references (each one more training at the searched net's recipe)")
    g.add_argument("--references", type=int, default=RANDOM, metavar="N",
                   help=f"random nets drawn from the searched net's latency window "
                        f"[{WINDOW[0]:g} T, {WINDOW[1]:g} T], trained and timed beside it "
                        f"(default {RANDOM}; 0: none)")
    g.add_argument("--reference-models", default=",".join(MODELS), metavar="LIST",
                   help=f"hand-designed nets trained beside it, built from the same ops at the "
                        f"data's input size (default {','.join(MODELS)}, the cheapest of each "
                        f"family; larger: {','.join(MORE_MODELS)}; '' for none)")
    g.add_argument("--references-epochs", type=int, metavar="E",
                   help="training epochs of each reference (default: all of them together a "
                        "third of the searched net's epochs, at least one each; its own epochs: "
                        "the full recipe, one more training per net); when E differs, the "
                        "searched net is also trained E epochs and compared so")
    g.add_argument("--no-references", action="store_true",
                   help="train no references (the report then shows the searched net alone)")


def reference_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The flags as ``directnas.run``'s ``references`` (None: --no-references)."""
    if args.no_references:
        return None
    return {"random": args.references, "epochs": args.references_epochs,
            "models": [m.strip() for m in args.reference_models.split(",") if m.strip()]}
