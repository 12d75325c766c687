"""``CompressConfig`` from keyword options: defaults <- the model's own training recipe <- the
recipe-search and smoke budgets <- the caller's options; every value checked (one-line
``UserError``s naming the option and its command-line flag)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Mapping, Sequence

from directnas.compression.finetune import FinetuneConfig
from directnas.compression.state import CompressConfig
from directnas.errors import UserError

# smoke budget (``quick``)
QUICK_FT = {"epochs": 1, "max_steps": 20}
QUICK = {"prune_steps": 2, "valid_images": 500, "calib_images": 128, "latency_repeats": 10,
         "latency_warmup": 2, "latency_rounds": 2}
# retraining budget of the recipe search (target_ratio / max_loss) unless options set it: the
# schedule that kept LeNet-300-100 within 0.5 points at 40x (docs/compression.md)
SEARCH_FT = {"epochs": 5, "lr": 0.05}
SEARCH = {"prune_steps": 5}
RECIPE_FT_KEYS = ("augment", "label_smoothing", "weight_decay")
# options set by their own keyword of ``compress_config`` (or by the recipe search)
NOT_OPTIONS = {"finetune", "target_ratio", "max_loss", "threads", "layer_sparsity", "layer_bits"}


def recipe_finetune(recipe: Mapping[str, Any] | None) -> dict[str, Any]:
    """The retraining options a model's training recipe implies (empty for older model files)."""
    return {k: recipe[k] for k in RECIPE_FT_KEYS if k in (recipe or {})}


def compress_config(recipe: Mapping[str, Any] | None = None, *, max_loss: float | None = None,
                    target_ratio: float | None = None, quick: bool = False,
                    seed: int | None = None, threads: int | None = None,
                    finetune: Mapping[str, Any] | None = None, **options: Any) -> CompressConfig:
    """The checked config of a compression.  ``recipe``: the model file's training recipe;
    ``max_loss``: accuracy points the recipe search may lose (1 = one point); ``finetune``:
    ``FinetuneConfig`` fields; ``options``: the other ``CompressConfig`` fields."""
    known = {f.name for f in fields(CompressConfig)} - NOT_OPTIONS
    unknown = sorted(set(options) - known)
    ft_known = {f.name for f in fields(FinetuneConfig)}
    ft_unknown = sorted(set(finetune or {}) - ft_known)
    if unknown:
        raise UserError(f"unknown compress option(s) {unknown}; known: {sorted(known)}")
    if ft_unknown:
        raise UserError(f"unknown finetune option(s) {ft_unknown}; known: {sorted(ft_known)}")
    searching = target_ratio is not None or max_loss is not None
    ft: dict[str, Any] = recipe_finetune(recipe)
    ft.update(SEARCH_FT if searching else {})
    ft.update(QUICK_FT if quick else {})
    ft.update({k: v for k, v in {**(finetune or {}), "seed": seed}.items() if v is not None})
    top: dict[str, Any] = dict(SEARCH) if searching else {}
    top.update(QUICK if quick else {})
    top.update({k: v for k, v in options.items() if v is not None})
    if isinstance(top.get("int8_formats"), str):
        from directnas.deploy.int8 import parse_int8_formats

        top["int8_formats"] = tuple(parse_int8_formats(top["int8_formats"]))
    cfg = CompressConfig(finetune=replace(FinetuneConfig(), **ft), target_ratio=target_ratio,
                         max_loss=None if max_loss is None else max_loss / 100,  # points -> 0..1
                         **({"threads": threads} if threads is not None else {}), **top)
    check_config(cfg)
    return cfg


def _between(name: str, flag: str, value: Any, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise UserError(f"compress option {name} ({flag}) {value!r} must be between {low:g} "
                        f"and {high:g}")


def check_config(cfg: CompressConfig) -> None:
    """One-line errors for values no compression runs with."""
    if cfg.sparsity is not None and not 0 < cfg.sparsity < 1:
        raise UserError(f"compress option sparsity (--sparsity) {cfg.sparsity} must be a "
                        "fraction in (0, 1)")
    for name, flag, lo, hi in (("bits_conv", "--bits-conv", 1, 12), ("bits_fc", "--bits-fc", 1, 12),
                               ("fixed_bits", "--bits", 2, 16), ("gap_bits", "--gap-bits", 1, 12)):
        _between(name, flag, getattr(cfg, name), lo, hi)
    if cfg.speedup <= 1:
        raise UserError(f"compress option speedup (--speedup) {cfg.speedup} must be > 1")
    if not 0 < cfg.ternary_threshold < 1:
        raise UserError(f"compress option ternary_threshold (--threshold) {cfg.ternary_threshold} "
                        "must be in (0, 1)")
    _check_counts(cfg, (("prune_steps", "--prune-steps", 1), ("valid_images", "--valid-images", 1),
                        ("probe_steps", "--probe-steps", 1), ("calib_images", "--calib-images", 1),
                        ("int8_batch", "--int8-batch", 1), ("threads", "--threads", 1),
                        ("latency_repeats", "--repeats", 1)))
    if cfg.finetune.epochs < 0:
        raise UserError(f"finetune epochs (--finetune-epochs) {cfg.finetune.epochs} must be >= 0")
    if cfg.finetune.weight_decay < 0:
        raise UserError(f"finetune weight_decay (--finetune-wd) {cfg.finetune.weight_decay} "
                        "must be >= 0")
    _check_goal(cfg)


def _check_counts(cfg: CompressConfig, counts: Sequence[tuple[str, str, int]]) -> None:
    for name, flag, low in counts:
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise UserError(f"compress option {name} ({flag}) {v!r} must be an integer >= {low}")


def _check_goal(cfg: CompressConfig) -> None:
    """The recipe search's goal: a ratio or a loss bound, not both, and not beside a sparsity."""
    if cfg.target_ratio is not None and cfg.max_loss is not None:
        raise UserError("give target_ratio (--target-ratio) or max_loss (--max-loss), not both")
    if cfg.target_ratio is not None and not 1 < cfg.target_ratio < float("inf"):
        raise UserError(f"--target-ratio {cfg.target_ratio:g} must be a finite ratio > 1: give "
                        "e.g. 40 for 40x")
    if cfg.max_loss is not None and not 0 <= cfg.max_loss < 1:
        raise UserError(f"--max-loss {100 * cfg.max_loss:g} must be in [0, 100) points: give "
                        "e.g. 1")
    searching = cfg.target_ratio is not None or cfg.max_loss is not None
    if searching and (cfg.sparsity is not None or cfg.uniform):
        raise UserError("target_ratio / max_loss (--target-ratio / --max-loss) choose the "
                        "sparsity: drop sparsity / uniform (--sparsity / --uniform)")
