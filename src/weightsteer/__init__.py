"""weightsteer: contrastive weight steering of language models.

``import weightsteer as ws`` gives the public API; names are imported on first use, so
``weightsteer --help`` stays fast::

    model, tok = ws.load_model("toyworld"), ws.load_tokenizer("toyworld")
    pairs = ws.generate_pairs(model, tok, questions, ws.load_pair("honesty"))
    vec = ws.train_vector(model, tok, pairs["pos"], pairs["neg"], ws.AdapterSpec(), "out")
    with ws.steer(model, vec, alpha=0.5):
        ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "weightsteer.core.models",
    "load_tokenizer": "weightsteer.core.models",
    "render_chat": "weightsteer.core.models",
    "generate": "weightsteer.core.generation",
    "WeightVector": "weightsteer.core.vector",
    "steer": "weightsteer.core.steer",
    "Steerer": "weightsteer.core.steer",
    "score_choices": "weightsteer.core.scoring",
    "UserError": "weightsteer.core.errors",
    "PAIRS": "weightsteer.pairs.personas",
    "PersonaPair": "weightsteer.pairs.personas",
    "load_pair": "weightsteer.pairs.personas",
    "questions": "weightsteer.pairs.questions",
    "generate_pairs": "weightsteer.pairs.generate",
    "AdapterSpec": "weightsteer.adapters",
    "train_adapter": "weightsteer.adapters.train",
    "train_pair": "weightsteer.adapters.train",
    "extract_vector": "weightsteer.adapters.extract",
    "train_vector": "weightsteer.adapters.extract",
    "calibrate": ("weightsteer.methods.calibrate", "calibrate_intervention"),
    "export_lora": "weightsteer.export.lora",
    "MonitorCallback": "weightsteer.monitor",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'weightsteer' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
