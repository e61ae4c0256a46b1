"""The verbs that work outside a run folder, as functions: the config a verb's flags
stand for, and what the verb makes with it. The CLI parses flags and calls these."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from weightsteer.core.errors import UserError
from weightsteer.pipeline.config import RunConfig, load_config, parse_config


def default_questions(model: str) -> str:
    """A model that is also a question source (toyworld) asks its own questions."""
    from weightsteer.pairs.questions import QUESTION_SOURCES

    return model if model in QUESTION_SOURCES else "builtin:honesty"


def data_config(
    model: dict[str, Any], behavior: str, questions: str | None, n_train: int, pair_filter
) -> RunConfig:
    """``weightsteer data``'s config (``model``: the id, device and dtype flags): every
    question is a training question."""
    return parse_config(
        {
            "model": model,
            "behavior": {"name": behavior},
            "questions": {
                "source": questions or default_questions(model["id"]),
                "n_train": n_train,
                "n_eval": 0,
            },
            "data": {"filter": pair_filter},
            "eval": {"suites": []},  # a pipeline with evals: weightsteer run --config
            "compare": {"methods": []},  # nor a comparison (its prompts are not checked)
        },
        "options",
    )


def eval_config(
    model: dict[str, Any],
    *,
    target: str | None,
    suites: list[str],
    alphas: list[float],
    rows: str | None = None,
    config: Path | None = None,
    system_prompt: str = "template",
) -> RunConfig:
    """``weightsteer eval``'s config: ``config``'s (its suite settings), with the model
    flags (``model``: id, device, device_map, dtype), the suites and strengths on top;
    ``rows`` replaces the rows of the one suite named."""
    from weightsteer.evals import SUITES

    data = load_config(config).model_dump(mode="json") if config else {}
    data["model"] = {**data.get("model", {}), **model, "target": target or ""}
    if not config:
        data["model"]["system_prompt"] = system_prompt
        data["questions"] = {"source": default_questions(model["id"])}
    ev = data.setdefault("eval", {})
    ev.update(suites=suites, alphas=alphas)
    if rows is not None:
        readers = [
            e.name for e in SUITES.entries() if e.config and "source" in e.config.model_fields
        ]
        name = suites[0].partition(":")[0] if len(suites) == 1 else ""
        if name not in readers:
            raise UserError(f"--rows takes the rows of one suite: {', '.join(readers)}")
        ev[name] = {**ev.get(name, {}), "source": rows}
    return parse_config(data, "options")


def score_table(
    cfg: RunConfig, model, tokenizer, vector: Path | None, out: Path, *, finetune: bool = False
) -> int:
    """Score ``cfg``'s suites (the base alone, or ``vector`` at ``cfg.eval.alphas``) into
    the results table ``out``; the number of rows written."""
    from weightsteer.evals.results import suite_info, write_results
    from weightsteer.evals.score_intervention import evaluate_intervention
    from weightsteer.methods import NONE
    from weightsteer.pipeline.run import build_run_suites

    suites = build_run_suites(cfg)
    intervention, strengths = NONE, [0.0]
    if vector is not None:
        from weightsteer.core.vector import WeightVector
        from weightsteer.methods.weight import WeightSteering

        vec = WeightVector.load(vector)
        intervention = WeightSteering(
            vector=vec,
            family=vec.meta.family or "",
            seed=vec.meta.seed or 0,
            allow_finetune=finetune,  # same shapes still checked
        )
        strengths = list(cfg.eval.alphas)
    frames = evaluate_intervention(model, tokenizer, intervention, suites, strengths)
    write_results(frames, out, cfg.model_dump(mode="json"), suites=suite_info(suites))
    return sum(len(f) for f in frames)
