"""Run config (TOML, typed, hashed), question pools and splits, results schema, shifts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from weightsteer.core.errors import UserError
from weightsteer.evals.results import read_results
from weightsteer.pairs.questions import load_questions, split_questions
from weightsteer.pipeline import describe, load_config, parse_config


def test_every_config_field_has_a_description():
    rows = describe()
    assert len(rows) > 30
    assert all(text for _, _, text in rows), [k for k, _, t in rows if not t]


def test_config_hash_ignores_formatting_and_order(tmp_path):
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text('name = "x"\n[train]\nrank = 4\nfamilies = ["lora", "oft"]\n')
    b.write_text('[train]\nfamilies = [ "lora","oft" ]\n\nrank=4\n[model]\nid="toyworld"\n')
    ca, cb = load_config(a), load_config(b)
    assert (ca.name, cb.name) == ("x", "b")  # the file stem is the default name
    assert ca.digest() == parse_config({**cb.model_dump(), "name": "x"}).digest()


def test_config_hash_changes_with_any_value():
    assert parse_config({}).digest() != parse_config({"train": {"rank": 16}}).digest()
    assert parse_config({}).digest() != parse_config({"eval": {"alphas": [0, 2]}}).digest()
    own = {
        "train": {"delora": {"delora_lambda": 3}},
        "compare": {"act:pca": {"position": "prompt"}},
    }
    for section, value in own.items():
        assert parse_config({}).digest() != parse_config({section: value}).digest()


def test_an_entry_left_at_its_defaults_changes_no_hash():
    """Registered entries' settings at their defaults (as a new plugin's are) leave the
    config hash and the eval key alone: installing one invalidates no run's units."""
    spelled = {
        "train": {"delora": {"delora_lambda": 15}},
        "compare": {"act:pca": {"position": "response"}},
        "eval": {"tinymfv": {"min_pmass": 0.25}},
    }
    assert parse_config({}).digest() == parse_config(spelled).digest()
    assert parse_config({}).eval_key() == parse_config(spelled).eval_key()
    assert "tinymfv" not in parse_config({}).eval_key()  # a suite the run does not score
    cfg = parse_config({"eval": {"suites": ["claims", "tinymfv"]}})
    assert {"claims", "tinymfv"} <= set(cfg.eval_key())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": {"families": ["lorax"]}}, "train.families: unknown adapter family 'lorax'"),
        ({"train": {"rank": 0}}, "train.rank: Input should be greater than or equal to 1"),
        ({"trian": {}}, "trian: unknown key"),
        ({"train": {"overrides": {"oft": {"rank": 4}}}}, "overrides for 'oft'"),
        ({"train": {"overrides": {"lora": {"rnk": 4}}}}, "overrides.lora.rnk: unknown adapter"),
        ({"data": {"samples": 4}}, "samples > 1 needs temperature > 0"),
        ({"eval": {"alphas": [1, 2]}}, "eval.alphas: include 0"),
        ({"data": {"top_p": 1.5}}, "data.top_p"),
        ({"train": {"delora": {"delora_lambda": 0}}}, "train.delora.delora_lambda: Input"),
        ({"train": {"lora": {"use_dora": True}}}, "train.lora.use_dora: unknown key"),
        (
            {"train": {"families": ["pissa"], "overrides": {"pissa": {"options": {"nitr": 2}}}}},
            "overrides.pissa.options: pissa option nitr: unknown option",
        ),
        ({"compare": {"act:pca": {"position": "middle"}}}, 'compare."act:pca".position'),
        ({"compare": {"activation": {"position": "prompt"}}}, "compare.activation: unknown"),
        ({"analysis": {"rank": 8}}, "analysis.rank: unknown key"),
        ({"analysis": {"shared": {"rank": 0}}}, "analysis.shared.rank: Input"),
    ],
)
def test_bad_config_values_name_their_key(data, message):
    with pytest.raises(UserError, match=r"^config: ") as e:
        parse_config(data)
    assert message in str(e.value)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nrank = 4\n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "none.toml")


def test_per_family_override_reaches_only_that_family():
    cfg = parse_config({"train": {"families": ["lora", "oft"], "lr": 1e-3,
                                  "overrides": {"oft": {"rank": 4, "lr": 5e-3}}}})  # fmt: skip
    assert cfg.train.spec("lora", 1).rank == 32 and cfg.train.spec("lora", 1).lr == 1e-3
    oft = cfg.train.spec("oft", 1)
    assert (oft.rank, oft.lr, oft.seed) == (4, 5e-3, 1)


def _qcfg(source, **kw):
    return parse_config({"questions": {"source": str(source), **kw}}).questions


def test_questions_from_jsonl_csv_and_the_anthropic_schema(tmp_path):
    rows = [{"id": f"r{i}", "question": f"Q{i}?", "label": "Yes" if i % 2 else "no"}
            for i in range(6)]  # fmt: skip
    jl = tmp_path / "q.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame(rows).to_csv(tmp_path / "q.csv", index=False)
    anthropic = tmp_path / "persona.jsonl"
    anthropic.write_text(
        "".join(
            json.dumps(
                {
                    "question": f'Is the following something you would say?\n"S{i}"',
                    "statement": f"S{i}",
                    "answer_matching_behavior": " Yes" if i % 2 else " No",
                    "answer_not_matching_behavior": " No" if i % 2 else " Yes",
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    for path in (jl, tmp_path / "q.csv"):
        qs = load_questions(_qcfg(path))
        assert [q.label for q in qs] == ["No", "Yes"] * 3
        assert [q.id for q in qs][:2] == ["r0", "r1"]
    qs = load_questions(_qcfg(anthropic))
    assert [q.label for q in qs] == ["No", "Yes", "No", "Yes"] and qs[0].id == "q00000"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"text": "a"}\n', "no column 'question'"),
        ('{"question": "a", "label": "maybe"}\n', "label must be Yes or No"),
        ('{"question": ""}\n', "empty question text"),
        ('{"id": 1, "question": "a"}\n{"id": 1, "question": "b"}\n', "duplicates"),
        ("not json\n", "could not be read"),
    ],
)
def test_bad_question_files_are_refused(tmp_path, content, message):
    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_questions(_qcfg(path))


def test_missing_questions_file_and_unknown_builtin(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_questions(_qcfg(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match="no built-in table 'nope'"):
        load_questions(_qcfg("builtin:nope"))


def test_split_is_deterministic_disjoint_and_eval_is_labelled():
    cfg = _qcfg("builtin:honesty", n_train=20, n_eval=15, seed=3)
    a, b = split_questions(cfg), split_questions(cfg)
    assert a == b
    assert len(a.train) == 20 and len(a.eval) == 15
    assert not {q.id for q in a.train} & {q.id for q in a.eval}
    assert all(q.label in ("Yes", "No") for q in a.eval)
    assert split_questions(_qcfg("builtin:honesty", n_train=20, n_eval=15, seed=4)).eval != a.eval


def test_toyworld_split_holds_out_the_narrow_suite():
    from weightsteer.toy.world import World

    split = split_questions(_qcfg("toyworld", n_train=50, n_eval=30))
    assert len(split.train) == 50 and len(split.eval) == 30
    assert not {q.text for q in split.train} & World(0).heldout()
    assert all(q.text in World(0).heldout() for q in split.eval)


def test_results_reader_refuses_a_table_missing_columns(tmp_path):
    pd.DataFrame({"method": ["weight"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(UserError, match="lacks columns"):
        read_results([tmp_path / "bad.parquet"])
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot be read"):
        read_results([tmp_path / "junk.parquet"])
