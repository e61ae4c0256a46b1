"""Eval suites on small files in the real schemas (shipped samples, written by us)."""

from __future__ import annotations

import json
from importlib import resources

import pandas as pd
import pytest

from weightsteer.cli import main
from weightsteer.core.errors import UserError
from weightsteer.evals import suite_prompts
from weightsteer.evals.results import read_results
from weightsteer.pipeline import parse_config
from weightsteer.pipeline.run import build_run_suites

DILEMMAS = resources.files("weightsteer.data") / "dilemmas-sample.jsonl"


def suites(*names, behavior="honesty", **sections):
    cfg = parse_config(
        {"behavior": {"name": behavior}, "eval": {"suites": list(names), **sections}}
    )
    return {s.name: s for s in build_run_suites(cfg)}


def labels(suite):
    return [r.label for r in suite.rows]


def test_claims_read_the_anthropic_schema_with_the_label_from_matching_behavior():
    s = suites("claims", claims={"source": "builtin:claims-sample"})["claims"]
    assert len(s.rows) == 24 and labels(s) == [1] * 12 + [-1] * 12
    assert s.rows[0].messages[0]["content"].startswith("Is the following statement")
    flipped = suites("claims", claims={"source": "builtin:claims-sample", "matching": "neg"})
    assert labels(flipped["claims"]) == [-x for x in labels(s)]


def test_claims_without_a_source_are_the_held_out_questions():
    s = suites("claims")["claims"]
    assert len(s.rows) == 200 and s.rows[0].row_id.startswith("narrow-")


def test_dilemmas_keep_only_actions_with_their_own_honesty_flag():
    s = suites("dilemmas", dilemmas={"source": "builtin:dilemmas-sample"})["dilemmas"]
    # 9 dilemmas flag both actions, 3 only one: 9 * 2 + 3 rows
    assert len(s.rows) == 21 and s.meta["source_rows"] == 24
    raw = pd.read_json(DILEMMAS, lines=True).set_index(["dilemma_idx", "action_type"])[
        "honesty_label"
    ]
    for r in s.rows:
        idx, kind = r.row_id.split("-", 1)
        assert r.label == raw[int(idx), kind]
    assert s.prefill == "My choice:"
    every = suites(
        "dilemmas", dilemmas={"source": "builtin:dilemmas-sample", "flagged_only": False}
    )
    assert len(every["dilemmas"].rows) == 24


def test_tinymfv_asks_each_vignette_in_both_frames(tiny):
    """With the two-frame wrongness; the seeds' is_wrong (the default) asks one frame only
    (tests/test_mfv_metrics.py)."""
    _, tok = tiny
    both = {"source": "builtin:tinymfv-sample", "target": "Authority", "wrongness": "two_frame"}
    s = suites("tinymfv", tinymfv=both)["tinymfv"]
    assert len(s.rows) == 42 and s.choices.name == "true/false"  # 14 + 7 vignettes x 2 frames
    ids = [r.row_id for r in s.rows]
    assert ids[:2] == ["other_violate/care-1:wrong", "other_violate/care-1:acceptable"]
    assert "self_violate/care-1:wrong" in ids and s.meta["missing_conditions"] == []
    only = {"source": "builtin:tinymfv-sample", "conditions": ["self_violate", "absent"],
            "wrongness": "two_frame"}  # fmt: skip
    one = suites("tinymfv", tinymfv=only)["tinymfv"]
    assert len(one.rows) == 14 and one.meta["missing_conditions"] == ["absent"]
    assert labels(s)[:2] == [1, -1] and s.rows[0].group == "Care"
    prompts = suite_prompts(tok, s)
    assert prompts[0].endswith('{"is_wrong": ') and prompts[1].endswith('{"is_acceptable": ')
    with pytest.raises(UserError, match="not a foundation"):
        suites("tinymfv", tinymfv={"source": "builtin:tinymfv-sample", "target": "Purity"})


def test_sycophancy_asks_both_ways_and_follows_the_behaviour():
    s = suites("sycophancy")["sycophancy"]
    assert len(s.rows) == 80 and labels(s)[:4] == [-1, 1, -1, 1]  # "is it <wrong>?": No
    assert [r.group for r in s.rows[:4]] == ["cued", "cued", "plain", "plain"]
    assert "I think the answer is Sydney" in s.rows[0].messages[0]["content"]
    assert "I think" not in s.rows[2].messages[0]["content"]  # the condition: no cue
    agree = suites("sycophancy", behavior="sycophancy")["sycophancy"]
    cued = [r.label for r in s.rows if r.group == "cued"]
    assert [r.label for r in agree.rows if r.group == "cued"] == [-x for x in cued]
    assert [r.label for r in agree.rows if r.group == "plain"] == labels(s)[2:4] * 20
    off = suites("sycophancy", sycophancy={"condition": False})["sycophancy"]
    assert len(off.rows) == 40 and {r.group for r in off.rows} == {""}


def test_rows_per_suite_caps_items_not_frames():
    cfg = {"source": "builtin:tinymfv-sample", "wrongness": "two_frame"}
    s = suites("tinymfv", tinymfv=cfg, rows_per_suite=3)["tinymfv"]
    assert len(s.rows) == 12 and s.rows[-1].row_id.endswith(":acceptable")  # x 2 conditions
    one = suites("tinymfv", tinymfv={"source": "builtin:tinymfv-sample"}, rows_per_suite=3)
    assert len(one["tinymfv"].rows) == 6  # is_wrong: one frame, 3 vignettes x 2 conditions


def test_hf_sources_go_through_load_dataset_with_config_and_split(monkeypatch):
    import datasets

    rows = pd.read_json(DILEMMAS, lines=True)
    calls = []

    def fake(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets.Dataset.from_pandas(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake)
    s = suites("dilemmas")["dilemmas"]
    assert calls == [("wassname/daily_dilemmas-self-honesty", "honesty_eval", "test")]
    assert len(s.rows) == 21
    assert (
        s.prefill == "My choice:"
        and "Should you take this action?" in (s.rows[0].messages[0]["content"])
    )
    seed = suites("dilemmas", dilemmas={"prompt": "seed"})["dilemmas"]
    assert seed.prefill == "My choice: **" and [r.row_id for r in seed.rows] == [
        r.row_id for r in s.rows
    ]
    assert "Do you choose to: " in seed.rows[0].messages[0]["content"]


def test_a_file_in_the_wrong_schema_is_refused_with_the_columns(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x", "id": 1}) + "\n")
    with pytest.raises(UserError, match=r"lacks column\(s\) foundation_coarse"):
        suites("tinymfv", tinymfv={"source": str(bad)})
    with pytest.raises(UserError, match="does not exist"):
        suites("sycophancy", sycophancy={"source": str(tmp_path / "none.csv")})


@pytest.mark.parametrize(
    ("suite", "data", "rows"),
    [
        ("claims", "builtin:claims-sample", 24),
        ("dilemmas", "dilemmas.parquet", 21),  # a local file in the HF schema
        ("tinymfv", "builtin:tinymfv-sample", 21),  # 14 + 7 vignettes, the is_wrong frame
        ("sycophancy", "builtin:sycophancy-sample", 40),  # the cued rows; plain: the condition
    ],
)
def test_each_suite_runs_on_toyworld_through_the_cli(suite, data, rows, tmp_path, capsys):
    if data.endswith(".parquet"):
        pd.read_json(DILEMMAS, lines=True).to_parquet(tmp_path / data)
        data = str(tmp_path / data)
    out = tmp_path / "r.parquet"
    args = [
        "eval",
        "--model",
        "toyworld",
        "--suite",
        suite,
        "--rows",
        data,
        "--alphas=0",
        "--out",
        str(out),
    ]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    df = read_results([out])
    df = df[df["eval"] == suite]  # sycophancy:known is a subset of the sycophancy rows
    assert len(df) == rows and df["row_id"].is_unique
    assert df["logratio"].notna().all() and df["pmass"].between(0, 1).all()
    with pytest.raises(SystemExit) as e:
        main(["report", str(out)])
    assert e.value.code == 0
    assert f"## {suite}" in (tmp_path / "r.md").read_text()


def test_data_for_two_suites_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "eval",
                "--model",
                "toyworld",
                "--suite",
                "claims",
                "--suite",
                "dilemmas",
                "--rows",
                "x.jsonl",
                "--out",
                str(tmp_path / "r.parquet"),
            ]
        )
    assert e.value.code == 2 and "one suite" in capsys.readouterr().err
    assert not (tmp_path / "r.parquet").exists()


def test_statistic_scorers_on_known_text():
    from weightsteer.evals.scorers import SCORERS

    french, length = SCORERS.get("lexicon:french"), SCORERS.get("length")
    assert french("Je pense que le chat est dans la maison.") > 0.3
    assert french("I think that the cat is in the house.") < -0.3
    assert french("") == 0.0 and length("one two, three!") == 3.0


def test_a_judge_scorer_asks_a_separate_model_and_refuses_self(tiny_dir):
    from weightsteer.core.errors import UserError
    from weightsteer.core.models import load_model, load_tokenizer, render_chat
    from weightsteer.core.scoring import score_choices
    from weightsteer.evals.scorers import judge_chat, make_scorer

    with pytest.raises(UserError, match="judge:self"):
        make_scorer("judge:self", "honesty")
    with pytest.raises(UserError, match="does not exist"):
        make_scorer("judge:./no-such-model", "honesty")
    got = make_scorer(f"judge:{tiny_dir}", "honesty")(["Q1?", "Q2?"], ["A1.", "A2."])
    tok = load_tokenizer(tiny_dir)
    prompts = [
        render_chat(tok, judge_chat(q, a, "honesty")) for q, a in (("Q1?", "A1."), ("Q2?", "A2."))
    ]
    want = score_choices(load_model(tiny_dir, dtype="float32"), tok, prompts).logratio.tolist()
    assert got == pytest.approx(want, abs=1e-6)


def test_eval_on_device_auto_equals_cpu_here(tiny_dir, tmp_path, capsys):
    """On a machine without CUDA, --device auto is cpu: the same scores, row for row."""
    from helpers import cli
    from weightsteer.core.models import resolve_device

    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    tables = {}
    for device in ("cpu", "auto"):
        out = tmp_path / f"{device}.parquet"
        code, _, err = cli(
            [
                "eval",
                "--model",
                tiny_dir,
                "--suite",
                "claims",
                "--rows",
                "builtin:claims-sample",
                "--alphas=0",
                "--device",
                device,
                "--out",
                out,
            ],
            capsys,
        )
        assert code == 0, err
        tables[device] = read_results([out])
    pd.testing.assert_frame_equal(tables["cpu"], tables["auto"])
