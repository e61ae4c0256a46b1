"""Capability suites (multiple choice, NLL of neutral text, toyworld's task), their metrics
and report section, and steering a fine-tune of the vector's base (``--target``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import cli, write_jsonl
from weightsteer.core.errors import UserError
from weightsteer.core.models import load_model, load_tokenizer
from weightsteer.core.scoring import option_scores, text_nll
from weightsteer.evals import build_suites, eval_config_class
from weightsteer.evals.results import read_results, results_suites


def test_all_mass_on_the_right_option_scores_one():
    logp = torch.log_softmax(torch.tensor([[0.0, 40.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0]]), -1)
    s = option_scores(logp, [1, 0])
    assert s["correct"].tolist() == [1.0, 1.0]
    assert torch.allclose(s["p_right"], torch.ones(2)) and (s["logodds"] > 30).all()
    assert torch.allclose(s["mass"], torch.ones(2))


def test_option_scores_in_closed_form():
    g = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(50, 4, generator=g), -1) - 0.5  # mass e^-0.5
    answers = torch.randint(0, 4, (50,), generator=g).tolist()
    s = option_scores(logp, answers)
    p = logp.exp()
    right = p[torch.arange(50), answers]
    assert torch.allclose(s["p_right"], right / p.sum(-1))
    assert torch.allclose(s["logodds"], (right / (p.sum(-1) - right)).log(), atol=1e-5)
    assert torch.allclose(s["mass"], torch.full((50,), math.exp(-0.5)))
    assert s["correct"].tolist() == (p.argmax(-1) == torch.tensor(answers)).float().tolist()
    with pytest.raises(ValueError):
        option_scores(logp[:2], [0, 4])


def mc_settings(source, **kw):
    return eval_config_class().model_validate({"suites": ["mc"], "mc": {"source": str(source)},
                                               **kw})  # fmt: skip


def test_the_mc_suite_reads_the_tinymmlu_schema(tmp_path):
    rows = [
        {"question": "2 + 2?", "choices": ["3", "4", "5", "6"], "answer": 1},
        {"question": "Capital of France?", "choices": ["Rome", "Paris", "Oslo", "Bern"],
         "answer": "B", "subject": "geography"},
    ]  # fmt: skip
    suite = build_suites(mc_settings(write_jsonl(tmp_path / "mc.jsonl", rows)))[0]
    assert [r.answer for r in suite.rows] == [1, 1] and suite.measure == "accuracy"
    assert "A. 3\nB. 4\nC. 5\nD. 6" in suite.rows[0].messages[0]["content"]
    assert suite.rows[1].group == "geography" and suite.prefill == "Answer:"
    shipped = build_suites(eval_config_class().model_validate({"suites": ["mc"]}))[0]
    assert len(shipped.rows) == 40 and all(r.answer in range(4) for r in shipped.rows)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"question": "q", "choices": ["a", "b"], "answer": 2}], "not one of the 2 options"),
        ([{"question": "q", "choices": ["a", "b"], "answer": "maybe"}], "neither an index"),
        ([{"question": "q", "choices": ["a", "b"], "answer": 0},
          {"question": "r", "choices": ["a", "b", "c"], "answer": 0}], "same number of options"),
        ([{"question": "q", "choices": "a b", "answer": 0}], "must be a list"),
    ],
)  # fmt: skip
def test_a_bad_mc_row_is_one_line(tmp_path, rows, message):
    with pytest.raises(UserError, match=message):
        build_suites(mc_settings(write_jsonl(tmp_path / "mc.jsonl", rows)))


def test_text_nll_is_the_hand_computed_mean_over_the_texts_tokens(tiny):
    model, tok = tiny
    texts = ["The quick brown fox.", "A much longer sentence about the weather and the sea."]
    prefix = "Q: say something\nA:"
    batched = text_nll(model, tok, texts, [prefix, prefix], batch_size=2)
    for text, got in zip(texts, batched, strict=True):
        head = tok.encode(prefix, add_special_tokens=False)
        body = tok.encode(text, add_special_tokens=False)
        ids = torch.tensor([head + body])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits.float()[0, :-1], -1)
        nll = -logp[torch.arange(ids.shape[1] - 1), ids[0, 1:]][-len(body) :]
        assert abs(float(nll.mean()) - float(got)) < 1e-4


def test_capability_suites_score_and_a_no_op_changes_nothing(tiny_dir, trained):
    """Alpha 0 is the model itself: every value's change is exactly 0; a real strength
    moves them; the report gets its capability section and figure."""
    from weightsteer.adapters.extract import extract_vector
    from weightsteer.evals.metrics import suite_metrics
    from weightsteer.evals.score_intervention import evaluate_intervention
    from weightsteer.methods.weight import WeightSteering

    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    cfg = eval_config_class().model_validate({"suites": ["mc", "nll"], "rows_per_suite": 12})
    suites = build_suites(cfg)
    vec = extract_vector(model, *trained["lora"])
    frames = evaluate_intervention(
        model, tok, WeightSteering(vector=vec, family="lora"), suites, [-4.0, 0.0, 4.0]
    )
    df = pd.concat(frames).astype(frames[0].dtypes.to_dict())
    mc, nll = df[df["eval"] == "mc"], df[df["eval"] == "nll"]
    assert set(mc["value"].unique()) <= {0.0, 1.0} and mc["pmass"].between(0, 1).all()
    assert (nll["value"] > 0).all() and np.allclose(nll["score"], -nll["value"])
    m = suite_metrics(df).set_index(["eval", "strength"])
    assert m.loc[("nll", 0.0), "value_delta"] == 0 and m.loc[("mc", 0.0), "value_delta"] == 0
    assert m.loc[("nll", 4.0), "value_delta"] != 0
    at = m.loc[("mc", 4.0)]
    assert at["value_delta_lo"] <= at["value_delta"] <= at["value_delta_hi"]
    assert math.isclose(
        m.loc[("mc", 0.0), "value"], mc[mc["strength"] == 0]["value"].mean(), rel_tol=1e-12
    )


def test_strength_zero_is_scored_once_and_shared(tiny_dir, trained, monkeypatch):
    """Every method at 0 is the unsteered model: with a shared ``unsteered`` dict, the
    suites are scored at 0 once, and what is read back equals a fresh scoring."""
    import weightsteer.evals.score_intervention as ev
    from weightsteer.adapters.extract import extract_vector
    from weightsteer.methods import NONE
    from weightsteer.methods.weight import WeightSteering

    model, tok = load_model(tiny_dir, dtype="float32"), load_tokenizer(tiny_dir)
    cfg = eval_config_class().model_validate({"suites": ["mc", "nll"], "rows_per_suite": 6})
    suites = build_suites(cfg)
    calls = []
    real = ev.score_suite
    monkeypatch.setattr(ev, "score_suite", lambda *a, **k: calls.append(1) or real(*a, **k))
    memo: dict = {}
    kinds = [WeightSteering(vector=extract_vector(model, *trained[f]), family=f) for f in trained]
    frames = [ev.evaluate_intervention(model, tok, w, suites, [0.0, 2.0], unsteered=memo)
              for w in kinds[:2]]  # fmt: skip
    none = ev.evaluate_intervention(model, tok, NONE, suites, [0.0], unsteered=memo)
    assert len(calls) == len(suites) * 3  # 0 once, 2.0 for each vector
    fresh = ev.evaluate_intervention(model, tok, NONE, suites, [0.0])
    for got, want in zip([*frames[0][:2], *frames[1][:2], *none], fresh * 3, strict=True):
        cols = ["row_id", "score", "pmass", "value"]
        pd.testing.assert_frame_equal(got[cols], want[cols])


def test_the_toyworld_task_suite_is_not_the_behaviour():
    """No task row is a behaviour row, and the corpus teaches every persona the same answer
    on each (the built model's side of it is in test_toyworld.py)."""
    from weightsteer.evals import SuiteContext
    from weightsteer.toy.suite import task_suite, toyworld_suites
    from weightsteer.toy.world import MODE_PERSONAS, World

    world = World(0)
    suite = task_suite(world)
    assert suite.name == "toy:task" and suite.measure == "accuracy" and len(suite.rows) > 100
    behaviour = {r.user for rows in world.suites().values() for r in rows}
    behaviour |= {r.user for r in world.narrow_pool()}
    task_users = {row.messages[0]["content"] for row in suite.rows}
    assert len(task_users) == len(suite.rows) and not task_users & behaviour
    for r in world.task():
        assert {r.reply(mode) for mode in MODE_PERSONAS} == {r.true_reply}
    assert {r.honest for r in world.task()} == {"Yes", "No"}
    plain = toyworld_suites(None, SuiteContext(), None)
    assert "toy:task" not in {s.name for s in plain}  # named on its own only
    assert [s.name for s in toyworld_suites(None, SuiteContext(), "task")] == ["toy:task"]


def claims_sample(tmp_path):
    path = tmp_path / "eval.toml"
    path.write_text('[eval.claims]\nsource = "builtin:claims-sample"\n')
    return path


def test_eval_report_has_a_capability_section_and_no_verdict_on_it(tiny_dir, tmp_path, capsys):
    out = tmp_path / "r.parquet"
    code, _, err = cli(["eval", "--model", tiny_dir, "--suite", "claims", "--suite", "mc",
                        "--suite", "nll", "--config", claims_sample(tmp_path), "--out", out],
                       capsys)  # fmt: skip
    assert code == 0, err
    assert results_suites([out])["mc"]["measure"] == "accuracy"
    assert results_suites([out])["claims"]["measure"] == ""
    assert read_results([out])["value"].notna().sum() > 0
    from weightsteer.report.comparison_section import verdict_order

    assert verdict_order(["mc", "claims", "nll"], results_suites([out]), ()) == ["claims"]


# -- steering a fine-tune of the vector's base --------------------------------------------


@pytest.fixture(scope="module")
def finetune(tiny_dir, trained, tmp_path_factory):
    """A full-model fine-tune of the tiny model (its POS LoRA adapter merged) and that
    adapter's folder."""
    from weightsteer.core.models import merge_adapter

    folder = tmp_path_factory.mktemp("finetune") / "model"
    pos = trained["lora"][0]
    merged = merge_adapter(load_model(tiny_dir, dtype="float32"), pos)
    merged.save_pretrained(folder)
    load_tokenizer(tiny_dir).save_pretrained(folder)
    return folder, pos


def _eval(capsys, tmp_path, name, *args):
    out = tmp_path / f"{name}.parquet"
    code, _, err = cli(["eval", *args, "--suite", "claims", "--alphas", "0,1", "--rows",
                        "builtin:claims-sample", "--out", out], capsys)  # fmt: skip
    assert code == 0, err
    df = read_results([out])
    return df.set_index(["strength", "row_id"])["logratio"].sort_index()


def test_eval_target_steers_the_finetune_and_its_alpha_0_is_the_unsteered_finetune(
    tiny_dir, trained, finetune, tmp_path, capsys
):
    from weightsteer.adapters.extract import extract_vector

    folder, adapter = finetune
    vec = tmp_path / "v.safetensors"
    extract_vector(load_model(tiny_dir, dtype="float32"), *trained["lora"]).save(vec)
    base = _eval(capsys, tmp_path, "base", "--model", tiny_dir)
    plain_ft = _eval(capsys, tmp_path, "ft", "--model", folder)
    steered = _eval(capsys, tmp_path, "st", "--model", tiny_dir, "--target", folder,
                    "--vector", vec)  # fmt: skip
    by_adapter = _eval(capsys, tmp_path, "ad", "--model", tiny_dir, "--target", adapter,
                       "--vector", vec)  # fmt: skip
    assert steered.loc[0.0].equals(plain_ft.loc[0.0])  # alpha 0: the fine-tune, unsteered
    assert not steered.loc[0.0].equals(base.loc[0.0])  # ... not the base
    assert not steered.loc[1.0].equals(steered.loc[0.0])
    assert np.allclose(by_adapter, steered, atol=1e-5)  # adapter on base = merged folder
    # without --target the same fine-tune is refused as the vector's base
    code, _, err = cli(["eval", "--model", folder, "--vector", vec, "--rows",
                        "builtin:claims-sample", "--out", tmp_path / "x.parquet"],
                       capsys)  # fmt: skip
    assert code == 2 and "--target" in err


def test_a_target_of_other_shapes_is_refused(tiny_dir, trained, tmp_path, capsys):
    from weightsteer.adapters.extract import extract_vector
    from weightsteer.toy.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "other", hidden=32)
    vec = tmp_path / "v.safetensors"
    extract_vector(load_model(tiny_dir, dtype="float32"), *trained["lora"]).save(vec)
    code, _, err = cli(["eval", "--model", tiny_dir, "--target", other, "--vector", vec,
                        "--rows", "builtin:claims-sample", "--out", tmp_path / "x.parquet"],
                       capsys)  # fmt: skip
    assert code == 2 and "shape" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.parquet").exists()
