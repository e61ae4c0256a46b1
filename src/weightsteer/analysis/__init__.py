"""Where dW lives: the variant contract and registry (variants.py) and one file per
analysis."""

from weightsteer.analysis.variants import (
    ANALYSES,
    FULL,
    AnalysisConfig,
    AnalysisContext,
    Builder,
    Variant,
    gaussian,
    keep_drop,
    needs_others,
    random_matched,
    register,
    scaled,
    subset,
)

__all__ = [
    "ANALYSES",
    "FULL",
    "AnalysisConfig",
    "AnalysisContext",
    "Builder",
    "Variant",
    "gaussian",
    "keep_drop",
    "needs_others",
    "random_matched",
    "register",
    "scaled",
    "subset",
]
