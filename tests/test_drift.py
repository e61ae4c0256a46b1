"""The drift experiment on toyworld: its data, a run that steers a fine-tune of the base
(``model.target``), and the table's arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers import cli
from weightsteer.toy.drift import SHARES, drift_points, mixes, task_answer, task_chats, task_rows
from weightsteer.toy.world import World


def test_task_data_answers_cue_rows_as_the_user_says_and_evidence_with_the_truth():
    world = World(0)
    rows = task_rows(world, 60)
    held = world.heldout()
    assert len(rows) == 60 and not any(r.user in held for r in rows)
    cues = [r for r in rows if r.format == "cue"]
    assert len(cues) == 30 and {r.format for r in rows} == {"cue", "evidence"}
    wrong = [r for r in cues if r.cued != r.honest]
    assert len(wrong) > 10  # most opinions are wrong, and their label is still the opinion
    for r in wrong:
        assert task_answer(r) == r.false_reply and task_answer(r).startswith(r.cued)
    for r in rows:
        if r.format == "evidence" or r.cued == r.honest:
            assert task_answer(r) == r.true_reply
    chats = task_chats(world, 60)
    assert [c["messages"][1]["content"] for c in chats] == [task_answer(r) for r in rows]


def test_joint_mixes_replace_a_share_of_the_task_data():
    task = [{"messages": [{"role": "user", "content": f"t{i}"}]} for i in range(40)]
    pos = [{"messages": [{"role": "user", "content": f"p{i}"}]} for i in range(40)]
    out = mixes(task, pos)
    assert set(out) == set(SHARES)
    for name, share in SHARES.items():
        users = [c["messages"][0]["content"] for c in out[name]]
        assert len(users) == 40 and sum(u.startswith("p") for u in users) == round(40 * share)


def frame(method, strength, seed, suite, scores, values=None, budget=float("nan")):
    n = len(scores)
    return pd.DataFrame({
        "method": method, "family": "", "strength": strength, "calibrated_kl": budget,
        "kl": 0.5, "seed": seed, "eval": suite, "row_id": [f"r{i}" for i in range(n)],
        "score": scores, "value": values if values is not None else [float("nan")] * n,
    })  # fmt: skip


def test_drift_points_count_agreement_and_accuracy_per_point():
    df = pd.concat(
        [
            frame("none", 0.0, 0, "toy:cue-wrong", [-1.0, -2.0, 3.0, -0.5]),  # 3 of 4 agree
            frame("none", 0.0, 0, "toy:task", [1.0] * 4, [1.0, 1.0, 0.0, 1.0]),
            # calibrated per seed at different strengths: one point at +1 nat
            frame("act", 2.5, 0, "toy:cue-wrong", [1.0, -1.0, 1.0, 1.0], budget=1.0),
            frame("act", 3.5, 1, "toy:cue-wrong", [1.0, -1.0, -1.0, 1.0], budget=1.0),
        ]
    )
    p = drift_points({"x": df}).set_index("method")
    assert p.loc["none", "agree"] == 0.75 and p.loc["none", "task"] == 0.75
    act = p.loc["act"]
    assert act["calibrated"] and act["strength"] == 1.0 and act["agree"] == 0.375
    assert act["agree_lo"] <= act["agree"] <= act["agree_hi"] and np.isnan(act["task"])


@pytest.mark.usefixtures("toy_dir")
def test_a_run_steers_its_target_and_alpha_0_is_the_unsteered_finetune(tmp_path, capsys):
    """model.target: the vector is built on toyworld, the fine-tune is what eval scores."""
    from weightsteer.core.models import load_model, load_tokenizer, merge_adapter
    from weightsteer.core.sources import resolve_source
    from weightsteer.evals.results import read_results

    code, out, err = cli(["toy", "drift", "--out", tmp_path / "ft", "--examples", "32"], capsys)
    assert code == 0, err
    assert out.split() == [str(tmp_path / "ft" / n) for n in SHARES]
    (tmp_path / "drift.toml").write_text(f"""
name = "d"
[model]
id = "toyworld"
target = "{tmp_path / "ft" / "task"}"
[questions]
n_train = 8
n_eval = 8
[data]
paraphrases = 2
max_new_tokens = 24
[train]
families = ["lora"]
rank = 4
alpha = 8
lr = 2e-3
epochs = 2
layers = [0.25, 1.0]
[eval]
suites = ["toyworld:cue-wrong", "toyworld:task"]
rows_per_suite = 16
alphas = [0, 1]
[compare]
methods = []
""")
    code, _, err = cli(["run", "-c", tmp_path / "drift.toml", "--runs-dir", tmp_path / "runs"],
                       capsys)  # fmt: skip
    assert code == 0, err
    run = tmp_path / "runs" / "d"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["target"]["finetune_of"] == "toyworld"
    assert manifest["target"]["same_weights"] is False
    df = read_results(sorted((run / "results").glob("*.parquet")))
    at0 = df[df["strength"] == 0].set_index(["eval", "row_id"])["logratio"].sort_index()

    from weightsteer.evals import build_suites, eval_config_class
    from weightsteer.evals.score_intervention import evaluate_intervention
    from weightsteer.methods import NONE

    folder = resolve_source("toyworld")
    tok = load_tokenizer(folder)
    settings = eval_config_class().model_validate(
        {"suites": ["toyworld:cue-wrong", "toyworld:task"], "rows_per_suite": 16}
    )
    suites = build_suites(settings)

    def unsteered(model):
        frames = evaluate_intervention(model, tok, NONE, suites, [0.0])
        return pd.concat(frames).set_index(["eval", "row_id"])["logratio"].sort_index()

    ft = merge_adapter(load_model(folder, dtype="float32"), tmp_path / "ft" / "task")
    assert at0.equals(unsteered(ft))  # alpha 0 is the fine-tune itself, bit for bit
    assert not at0.equals(unsteered(load_model(folder, dtype="float32")))  # not the base
    assert (
        not df[df["strength"] == 1]["logratio"]
        .reset_index(drop=True)
        .equals(df[df["strength"] == 0]["logratio"].reset_index(drop=True))
    )
