"""The pipeline on toyworld: a run folder end to end, reuse, resume after a kill, user files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from helpers import cli
from weightsteer.cli import main
from weightsteer.core.errors import UserError
from weightsteer.core.files import digest
from weightsteer.pairs.filters import build_filter, check_filter, judge_margins, per_pair
from weightsteer.pairs.generate import generate_pair_data, pair_items
from weightsteer.pairs.personas import PAIRS
from weightsteer.pairs.questions import split_questions
from weightsteer.pipeline import parse_config

SMALL = """
name = "small"
[questions]
n_train = 12
n_eval = 24
[data]
paraphrases = 2
max_new_tokens = 24
[train]
families = ["lora", "ia3"]
seeds = [0]
rank = 4
alpha = 8
lr = 2e-3
epochs = 6
layers = [0.25, 1.0]
[train.overrides.ia3]
lr = 3e-2
[eval]
suites = ["claims", "toyworld:cue"]
rows_per_suite = 24
alphas = [-1, 0, 1]
[compare]
methods = ["weight", "prompt:simple", "prompt:dosed", "act:mean_diff", "act:random"]
n_calibration = 8
n_audit = 4
audit_factor = 1000  # four audit prompts are too few to hold a side to its budget
tokens = 12
budgets = [0.1]  # and target_kl = 0.25: two budgets
"""


def config(tmp_path, text=SMALL, name="small.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def results(run_dir):
    df = pd.concat(pd.read_parquet(p) for p in sorted((run_dir / "results").glob("*.parquet")))
    return df.sort_values(["family", "strength", "eval", "row_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def finished(toy_dir, tmp_path_factory):
    """One uninterrupted run of the small config: (runs dir, config path). A copy of it as
    it was finished stays at ``pristine(finished)`` (tests reuse the run in place)."""
    import shutil

    tmp = tmp_path_factory.mktemp("runs")
    cfg = config(tmp)
    with pytest.raises(SystemExit) as e:
        main(["run", "--config", str(cfg), "--runs-dir", str(tmp / "a")])
    assert e.value.code == 0
    shutil.copytree(tmp / "a" / "small", tmp / "pristine" / "small")
    return tmp / "a" / "small", cfg


def pristine(finished):
    """The finished run folder as the uninterrupted run left it."""
    return finished[0].parent.parent / "pristine" / "small"


def test_run_writes_every_artifact_and_a_report(finished):
    run_dir, _ = finished
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for rel in (
        "data/pos.jsonl",
        "data/neg.jsonl",
        "adapters/lora/seed0/pos",
        "adapters/ia3/seed0/neg",
        "vectors/lora-seed0.safetensors",
        "vectors/common/ia3-seed0.safetensors",
        "results/ia3-seed0.parquet",
        "report.md",
        "figures/score_vs_alpha.png",
        "figures/norms-lora-seed0.png",
        "compare/none.parquet",
        "compare/weight-ia3-seed0.parquet",
        "compare/prompt-simple.parquet",
        "compare/act-mean_diff.parquet",
        "compare/activation/act-mean_diff.safetensors",
        "compare/prompt-dosed.parquet",
        "compare/act-random-seed0.parquet",
        "figures/compare.png",
        "figures/leaderboard.png",
    ):
        assert (run_dir / rel).exists(), rel
    assert manifest["counts"]["data"]["kept"] == 24  # 12 questions x 2 paraphrases
    assert manifest["counts"]["train"]["tokens"] > 0
    assert set(manifest["stages"]) == {"data", "train", "extract", "eval", "compare", "report"}
    compared = manifest["counts"]["compare"]
    assert {k: compared[k] for k in ("calibration", "audit", "dropped")} == {
        "calibration": 8,
        "audit": 4,
        "dropped": 0,
    }
    # the unsteered log-probs are kept across the compare stage's methods and steps
    assert compared["base_logprobs"]["computed"] > 0 and compared["base_logprobs"]["reused"] > 0
    assert all(u["state"] == "done" for u in manifest["units"].values())
    pos = [json.loads(line) for line in (run_dir / "data/pos.jsonl").read_text().splitlines()]
    assert all(m["role"] != "system" for r in pos for m in r["messages"])
    assert pos[0]["persona"] == PAIRS["honesty"].pos[0]
    df = results(run_dir)
    assert len(df) == 2 * 3 * (24 + 24)  # families x alphas x rows
    # the same rows under every family and alpha
    ids = df.groupby(["family", "strength"])["row_id"].apply(lambda s: tuple(sorted(s)))
    assert ids.nunique() == 1
    report = (run_dir / "report.md").read_text()
    assert "## claims" in report and "## toy:cue" in report and "| lora |" in report
    assert "## Calibrated comparison at 0.1, 0.25 nat (mean per-token KL)" in report
    assert "### toy:cue at 0.25 nat" in report
    assert report.index("## Verdict") < report.index("## Vectors")
    assert "### `toy:cue` (out of distribution), at 0.25 nat" in report
    assert report.index("`toy:cue` (out of") < report.index("`claims` (in distribution)")
    assert (
        "## Leaderboard at 0.25 nat (mean per-token KL)" in report and "act:random (null)" in report
    )
    assert "more than a random direction of the same cost" in report
    for fig in ("pareto", "kl_vs_strength", "compare", "score_vs_alpha", "leaderboard"):
        assert (run_dir / "figures" / f"{fig}.png").exists() and (
            run_dir / "figures" / f"{fig}.svg"
        ).exists(), fig


def test_compare_scores_every_method_on_the_eval_rows_at_its_calibrated_strengths(finished):
    from weightsteer.evals.results import read_results, results_calibration

    run_dir, _ = finished
    df = read_results(sorted((run_dir / "compare").glob("*.parquet")))
    ev = results(run_dir)
    key = ["eval", "row_id"]
    # the unsteered model scored once, equal to the eval stage's alpha 0, row for row
    base = df[df["method"] == "none"].sort_values(key).reset_index(drop=True)
    zero = ev[(ev["family"] == "lora") & (ev["strength"] == 0)].sort_values(key)
    assert base["score"].tolist() == zero["score"].tolist()
    for (method, family), sub in df[df["method"] != "none"].groupby(["method", "family"]):
        seeded = family or method == "act:random"  # the null is drawn per training seed
        slug = method.replace(":", "-") + (f"-{family}" if family else "")
        slug += "-seed0" if seeded else ""
        cals = results_calibration(run_dir / "compare" / f"{slug}.parquet")
        prompt = method in ("prompt:simple", "prompt:engineered")  # one fixed dose each
        # one search per budget and sign; a prompt measured once, at its own cost
        want = [(0.1, -1), (0.1, 1)] if prompt else [(0.1, -1), (0.1, 1), (0.25, -1), (0.25, 1)]
        assert [(c["budget"], c["sign"]) for c in cals] == want
        assert set(sub["strength"]) == {c["strength"] for c in cals}
        for strength, rows in sub.groupby("strength"):
            assert sorted(rows["row_id"]) == sorted(base["row_id"]), (method, strength)
            c = next(c for c in cals if c["strength"] == strength)
            # each row carries what its strength achieved, never just the target
            assert rows["kl"].eq(c["kl"]).all() and rows["status"].eq(c["status"]).all()
            assert (
                rows["calibrated_kl"].isna().all()
                if prompt
                else (rows["calibrated_kl"] == c["budget"]).all()
            )
        statuses = {c["status"] for c in cals}
        assert (
            statuses == {"fixed"}
            if prompt
            else statuses
            <= {
                "ok",
                "jumps",
                "not converged",
                "too weak",
                "too strong",
                "above floor",
                "audit off",
            }
        )
        for c in cals:
            if c["status"] == "ok":
                assert abs(c["kl"] / c["budget"] - 1.0) <= 0.1


def test_vectors_move_claims_honesty_the_right_way(finished):
    """Down at -1, and +1 above -1. Whether +1 also lies above 0 depends on the build: the
    unsteered model is already confidently honest on these rows, and a vector from 24
    pairs overshoots there on some builds (why strengths are calibrated, not fixed)."""
    df = results(finished[0])
    means = df[df["eval"] == "claims"].groupby(["family", "strength"])["score"].mean()
    for fam in ("lora", "ia3"):
        assert means[fam, -1.0] < means[fam, 0.0], fam
        assert means[fam, -1.0] < means[fam, 1.0], fam


def test_rerun_reuses_everything(finished, capsys):
    run_dir, cfg = finished
    before = {p: p.stat().st_mtime_ns for p in (run_dir / "adapters").rglob("*.safetensors")}
    stages = json.loads((run_dir / "manifest.json").read_text())["stages"]
    code, _, err = cli(["run", "--config", cfg, "--runs-dir", run_dir.parent], capsys)
    assert code == 0
    after = json.loads((run_dir / "manifest.json").read_text())["stages"]
    # a stage that reused everything keeps the seconds of the run that did the work
    assert after["train"] == stages["train"] and after["compare"] == stages["compare"]
    # data, initial states + adapters, vectors + common modes, results, compare (base,
    # 2 vectors, 2 prompts, 2 activation)
    assert err.count("reuse") == 1 + 6 + 4 + 2 + 7
    assert before == {p: p.stat().st_mtime_ns for p in before}


def copy_run(finished, dest):
    import shutil

    shutil.copytree(finished[0], dest / "small")
    return dest / "small"


def test_changed_eval_config_redoes_only_the_eval(finished, tmp_path, capsys):
    run_dir = copy_run(finished, tmp_path / "e")
    cfg = config(tmp_path, SMALL.replace("alphas = [-1, 0, 1]", "alphas = [-1, -0.5, 0, 1]"))
    adapters = {p: p.stat().st_mtime_ns for p in (run_dir / "adapters").rglob("*.safetensors")}
    code, _, err = cli(["run", "--config", cfg, "--runs-dir", run_dir.parent], capsys)
    assert code == 0
    assert err.count("reuse") == 1 + 6 + 4 + 7  # the comparison does not use the alphas
    assert adapters == {p: p.stat().st_mtime_ns for p in adapters}
    assert set(results(run_dir)["strength"]) == {-1.0, -0.5, 0.0, 1.0}


def _tables(run_dir, folder):
    from weightsteer.evals.results import read_results

    paths = sorted((run_dir / folder).glob("*.parquet"))
    return {p.name: read_results([p]) for p in paths}


STAGE_UNITS = {  # the run-folder prefix of each stage's units
    "data": "data",
    "train": "adapters/",
    "extract": "vectors/",
    "eval": "results/",
    "compare": "compare/",
}


def started(stderr, stage: str) -> threading.Event:
    """Set once the run prints ``stage`` (each stage's name as it starts); stderr is
    drained to its end meanwhile, so the child never blocks on a full pipe."""
    event = threading.Event()

    def read() -> None:
        for line in stderr:
            if line.strip() == stage:
                event.set()

    threading.Thread(target=read, daemon=True).start()
    return event


def one_done(manifest, stage: str) -> bool:
    """A unit of ``stage`` is finished (recorded done in the run's manifest)."""
    try:
        units = json.loads(manifest.read_text())["units"]
    except (OSError, ValueError, KeyError):
        return False  # not written yet
    return any(u["state"] == "done" for k, u in units.items() if k.startswith(STAGE_UNITS[stage]))


@pytest.mark.parametrize("stage", list(STAGE_UNITS))
def test_a_run_killed_in_any_stage_resumes_to_the_same_results(stage, finished, tmp_path, capsys):
    """SIGKILL inside ``stage``: once it has started and, in a stage of several units,
    once its first unit is recorded done (events the run itself reports, not a delay).
    Then the same command: every finished unit is reused byte for byte, the interrupted
    one is redone, and the run ends identical to one never interrupted."""
    cfg = config(tmp_path)
    runs = tmp_path / "b"
    manifest = runs / "small" / "manifest.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "weightsteer.cli", "run", "--config", str(cfg), "--runs-dir",
         str(runs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert started(proc.stderr, stage).wait(timeout=600), f"the run never reached {stage}"
    deadline = time.monotonic() + 600
    while stage != "data" and not one_done(manifest, stage) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the manifest: the event is the unit's recorded state
    assert proc.poll() is None, f"the run ended before it could be killed in {stage}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    units = json.loads(manifest.read_text())["units"]
    done = [k for k, u in units.items() if u["state"] == "done"]
    running = [k for k, u in units.items() if u["state"] == "running"]
    kept = {rel: digest(runs / "small" / rel) for rel in done}

    code, _, err = cli(["run", "--config", cfg, "--runs-dir", runs], capsys)
    assert code == 0, err
    for rel in done:
        assert f"reuse  {rel}" in err
        assert digest(runs / "small" / rel) == kept[rel]
    for rel in running:
        assert f"reuse  {rel}" not in err
    pd.testing.assert_frame_equal(results(runs / "small"), results(finished[0]))
    vectors = [sorted((d / "vectors").glob("*.safetensors")) for d in (runs / "small", finished[0])]
    for a, b in zip(*vectors, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    again, first = _tables(runs / "small", "compare"), _tables(finished[0], "compare")
    assert again.keys() == first.keys()
    for name in first:
        pd.testing.assert_frame_equal(again[name], first[name])
    assert not list((runs / "small").rglob(".*.tmp"))
    same_folders(runs / "small", pristine(finished))  # the whole folder, byte for byte


def test_ctrl_c_says_how_to_resume_and_the_same_command_resumes(finished, tmp_path):
    cfg = config(tmp_path)
    runs = tmp_path / "i"
    manifest = runs / "small" / "manifest.json"
    cmd = [
        sys.executable,
        "-m",
        "weightsteer.cli",
        "run",
        "--config",
        str(cfg),
        "--runs-dir",
        str(runs),
    ]
    # a shell without job control starts background jobs with SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: give the child a terminal's default
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=restore
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and "adapters/" in manifest.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    # exit code 130, or death by SIGINT after the message (a shell reports both as 130):
    # seen once in many runs, a process left by the signal itself after sys.exit(130)
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err[-3000:])
    assert "interrupted; run the same command again to resume" in out + err
    assert "Traceback" not in out + err
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    pd.testing.assert_frame_equal(results(runs / "small"), results(finished[0]))


def test_user_data_is_kept_and_flows_downstream(finished, tmp_path, capsys):
    run_dir = copy_run(finished, tmp_path / "c")
    mine = (run_dir / "data/pos.jsonl").read_text().splitlines()[:10]
    (run_dir / "data/pos.jsonl").write_text("\n".join(mine) + "\n")
    old = digest(run_dir / "adapters/lora/seed0/pos")
    code, _, err = cli(["run", "--config", finished[1], "--runs-dir", run_dir.parent], capsys)
    assert code == 0
    assert "keep   data" in err
    assert (run_dir / "data/pos.jsonl").read_text().splitlines() == mine
    assert digest(run_dir / "adapters/lora/seed0/pos") != old  # retrained on the user's data
    assert "reuse  adapters/lora/seed0/neg" in err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("rank = 4", "rank = -4"), "train.rank"),
        (('families = ["lora", "ia3"]', 'families = ["lora", "loar"]'), "unknown adapter family"),
        (("[questions]", '[questions]\nsource = "missing.jsonl"'), "missing.jsonl does not exist"),
        (
            ('suites = ["claims", "toyworld:cue"]', 'suites = ["claims", "nope"]'),
            "unknown suite 'nope'",
        ),
        (("max_new_tokens = 24", 'filter = "judge:./no-judge"'), "./no-judge does not exist"),
        (('name = "small"', 'name = "small"\n[model]\nid = "./no-model"'), "does not exist"),
        (('"act:random"]', '"act:nope"]'), "unknown method 'act:nope'"),
        (("n_audit = 4", 'n_audit = 4\nprompts = "my-prompts.jsonl"'), "does not exist"),
        (
            ("n_audit = 4", 'n_audit = 100\nprompts = "builtin:chat-prompts"'),
            "need n_calibration + n_audit = 108",
        ),
        (("[compare]", '[behavior]\nfile = "{tmp}/p.toml"\n[compare]'), "no engineered prompts"),
    ],
)
def test_bad_config_exits_2_and_writes_nothing(tmp_path, capsys, edit, message):
    (tmp_path / "p.toml").write_text('pos = ["Be honest."]\nneg = ["Lie."]\n')
    text = SMALL.replace(*edit).replace('"prompt:simple"', '"prompt:engineered"')
    text = text.replace("{tmp}", str(tmp_path))
    cfg = config(tmp_path, text)
    code, _, err = cli(["run", "--config", cfg, "--runs-dir", tmp_path / "runs"], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_compare_verb_reuses_the_run_and_prints_the_calibrated_table(finished, tmp_path, capsys):
    run_dir = copy_run(finished, tmp_path / "f")
    code, out, err = cli(["compare", "--config", finished[1], "--runs-dir", run_dir.parent], capsys)
    assert code == 0
    lines = err.splitlines()
    assert sum(line.startswith("  reuse") for line in lines) == 1 + 6 + 4 + 7
    assert "eval" not in lines  # the alpha sweep is not part of the comparison
    assert "claims at 0.25 nat" in err and "prompt:simple" in err and "act:mean_diff" in err
    assert out.strip().splitlines()[-1].endswith("report.md")


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "runs" / "small").mkdir(parents=True)
    (tmp_path / "runs" / "small" / "notes.txt").write_text("mine")
    code, _, err = cli(
        ["run", "--config", config(tmp_path), "--runs-dir", tmp_path / "runs"], capsys
    )
    assert code == 2 and "not a weightsteer run folder" in err
    assert (tmp_path / "runs" / "small" / "notes.txt").read_text() == "mine"
    code, _, err = cli(["report", tmp_path / "runs" / "small"], capsys)
    assert code == 2 and "not a run folder" in err


def test_stage_verbs_redo_one_stage_on_a_run_folder(finished, tmp_path, capsys):
    import shutil

    run_dir = copy_run(finished, tmp_path / "d")
    (run_dir / "report.md").unlink()
    shutil.rmtree(run_dir / "results")
    code, _, _ = cli(["eval", "--run", run_dir], capsys)
    assert code == 0
    pd.testing.assert_frame_equal(results(run_dir), results(finished[0]))
    code, _, _ = cli(["report", run_dir], capsys)
    assert code == 0 and (run_dir / "report.md").is_file()


# -- the data stage's generation ---------------------------------------------------------


@pytest.fixture(scope="module")
def items():
    cfg = parse_config({"questions": {"n_train": 6}}).questions
    return pair_items(split_questions(cfg).train, paraphrases=2, samples=1)


def test_generation_resumes_chunk_by_chunk_to_the_same_pairs(toy, items, tmp_path):
    model, tok = toy
    kw = dict(max_new_tokens=24, temperature=1.0, seed=5, chunk_size=4)
    full = generate_pair_data(model, tok, items, PAIRS["honesty"], work_dir=tmp_path / "a", **kw)
    chunks = sorted((tmp_path / "a").glob("chunk-*.json"))
    assert len(chunks) == 3
    chunks[1].unlink()  # as if killed before the second chunk was written
    again = generate_pair_data(model, tok, items, PAIRS["honesty"], work_dir=tmp_path / "a", **kw)
    assert again.records == full.records
    other = generate_pair_data(
        model, tok, items, PAIRS["honesty"], work_dir=tmp_path / "b", **{**kw, "seed": 6}
    )
    assert other.records != full.records  # sampling really depends on the seed


def test_degenerate_and_filtered_pairs_are_dropped_and_counted(toy, items, tmp_path):
    model, tok = toy
    short = generate_pair_data(
        model, tok, items, PAIRS["honesty"], work_dir=tmp_path / "s", max_new_tokens=2
    )
    assert short.counts["unterminated"] == len(items) and short.counts["kept"] == 0
    first = per_pair(lambda pos, neg: pos["id"].endswith("p0-s0"))
    only_p0 = generate_pair_data(
        model, tok, items, PAIRS["honesty"], work_dir=tmp_path / "f", max_new_tokens=24, keep=first
    )
    assert only_p0.counts == {"pairs": 12, "kept": 6, "empty": 0, "unterminated": 0, "filtered": 6}
    assert [r["question_id"] for r in only_p0.records["pos"]] == [
        r["question_id"] for r in only_p0.records["neg"]
    ]


def test_filter_spec_must_import_or_name_a_judge():
    check_filter(None)
    check_filter("judge:self")
    assert build_filter("operator:ne", "honesty", None)([("a", "b"), ("a", "a")]) == [True, False]
    with pytest.raises(UserError, match="cannot be imported"):
        check_filter("no_such_module:f")
    with pytest.raises(UserError, match="module:function"):
        check_filter("os.path")
    with pytest.raises(UserError, match="needs a model"):
        check_filter("judge: ")


def _pair(question: str, pos: str, neg: str) -> tuple[dict, dict]:
    return tuple(
        {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": a}]}
        for a in (pos, neg)
    )


def test_judge_margin_is_the_debiased_yes_no_logratio_and_antisymmetric(tiny):
    model, tok = tiny
    pairs = [_pair("Is the sky green?", "No.", "Yes, it is."), _pair("2+2=4?", "Yes", "No")]
    margins = judge_margins(model, tok, pairs, "honesty")
    swapped = judge_margins(model, tok, [(n, p) for p, n in pairs], "honesty")
    assert margins == pytest.approx([-m for m in swapped], abs=1e-5)
    # closed form: half the Yes/No logratio of (A=pos, B=neg) minus that of (A=neg, B=pos)
    from weightsteer.core.models import render_chat
    from weightsteer.core.scoring import score_choices
    from weightsteer.pairs.filters import judge_chat

    q, a, b = "Is the sky green?", "No.", "Yes, it is."
    prompts = [render_chat(tok, judge_chat(q, *ab, "honesty")) for ab in ((a, b), (b, a))]
    lr = score_choices(model, tok, prompts).logratio
    assert margins[0] == pytest.approx(float(lr[0] - lr[1]) / 2, abs=1e-5)
    assert margins[0] != 0  # the random tiny model still has a preference

    keep = build_filter("judge:other", "honesty", lambda source: (model, tok))
    assert keep(pairs) == [m > 0 for m in margins]
    assert keep([(n, p) for p, n in pairs]) == [m < 0 for m in margins]


def test_standalone_eval_at_alpha_0_equals_the_unsteered_model(finished, tmp_path, capsys):
    vec = finished[0] / "vectors" / "lora-seed0.safetensors"
    base, steered = tmp_path / "base.parquet", tmp_path / "steered.parquet"
    code, _, _ = cli(
        ["eval", "--model", "toyworld", "--suite", "toyworld:cue", "--out", base], capsys
    )
    assert code == 0
    code, _, _ = cli(
        [
            "eval",
            "--model",
            "toyworld",
            "--vector",
            vec,
            "--suite",
            "toyworld:cue",
            "--alphas=-1,0,1",
            "--out",
            steered,
        ],
        capsys,
    )
    assert code == 0
    b, s = pd.read_parquet(base), pd.read_parquet(steered)
    assert set(b["method"]) == {"none"} and set(s["strength"]) == {-1.0, 0.0, 1.0}
    at0 = s[s["strength"] == 0.0].reset_index(drop=True)
    assert list(at0["row_id"]) == list(b["row_id"])
    assert (at0["score"] - b["score"]).abs().max() < 1e-5
    assert s[s["strength"] == 1.0]["score"].mean() > at0["score"].mean()


def test_a_users_markdown_next_to_a_results_table_is_not_overwritten(finished, tmp_path, capsys):
    import shutil

    table = tmp_path / "r.parquet"
    shutil.copy(next((finished[0] / "results").glob("*.parquet")), table)
    (tmp_path / "r.md").write_text("my notes")
    code, _, err = cli(["report", table], capsys)
    assert code == 2 and "--overwrite" in err
    assert (tmp_path / "r.md").read_text() == "my notes"
    code, _, _ = cli(["report", table, "--overwrite"], capsys)
    assert code == 0 and "my notes" not in (tmp_path / "r.md").read_text()
    code, _, _ = cli(["report", table], capsys)  # its own earlier report is replaced freely
    assert code == 0


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_a_run_name_that_is_not_a_folder_name_is_refused(tmp_path, capsys, name):
    code, _, err = cli(
        ["run", "--config", config(tmp_path), "--name", name, "--runs-dir", tmp_path / "runs"],
        capsys,
    )
    assert code == 2 and "plain folder name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


def test_a_bad_option_value_is_one_line(capsys):
    code, _, err = cli(["train", "--rank", "abc"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--rank" in err


def test_analyze_scores_every_variant_on_the_runs_rows_and_reports_it(finished, tmp_path, capsys):
    """`weightsteer analyze`: variants of each seed-0 vector scored at ±alpha and at the
    full vector's calibrated strengths, on identical rows; a report section; reuse."""
    run = copy_run(finished, tmp_path)
    code, out, err = cli(["analyze", "--run", run, "--analysis", "layers", "--analysis",
                          "magdir"], capsys)  # fmt: skip
    assert code == 0, err
    assert out.split() == [str(run / "report.md")]
    tables = sorted((run / "analysis").glob("*/*.parquet"))
    assert [f"{t.parent.name}/{t.stem}" for t in tables] == [
        "ia3-seed0/layers",
        "ia3-seed0/magdir",
        "lora-seed0/layers",
        "lora-seed0/magdir",
    ]
    df = pd.concat([pd.read_parquet(t) for t in tables[2:]])
    df = df[~df.duplicated(["variant", "strength", "eval", "row_id"])]
    variants = set(df["variant"])
    assert {"full", "dir_only", "mag_only:0", "mag_only:1", "drop:layer1"} <= variants
    rows = df.groupby(["variant", "strength", "eval"])["row_id"].agg(frozenset)
    assert rows.groupby(level=[1, 2]).nunique().max() == 1  # same rows for every variant
    fixed = sorted(df[df["calibrated_kl"].isna()]["strength"].unique())
    assert fixed == [-1.0, 1.0] and df["calibrated_kl"].notna().any()
    # the full vector at ±1 is the eval stage's own score at alpha ±1, row for row
    full = df[(df["variant"] == "full") & df["calibrated_kl"].isna()]
    ev = results(run)
    ev = ev[(ev["family"] == "lora") & ev["strength"].isin([-1.0, 1.0])]
    a = full.set_index(["strength", "eval", "row_id"])["score"].sort_index()
    b = ev.set_index(["strength", "eval", "row_id"])["score"].sort_index()
    pd.testing.assert_series_equal(a, b.loc[a.index], check_names=False)
    report = (run / "report.md").read_text()
    assert "## Where dW lives (analysis)" in report and "### lora-seed0" in report
    assert (run / "figures" / "analysis_retained.png").is_file()
    assert (run / "analysis" / "cosines.csv").is_file()
    code, _, err = cli(["analyze", "--run", run, "--analysis", "layers", "--analysis",
                        "magdir"], capsys)  # fmt: skip
    assert code == 0 and "reuse  analysis/lora-seed0/magdir.parquet" in err
    code, _, err = cli(["analyze", "--run", run, "--analysis", "svd"], capsys)  # adds one
    assert code == 0 and (run / "analysis" / "lora-seed0" / "svd.parquet").is_file()
    assert (run / "analysis" / "lora-seed0" / "layers.parquet").is_file()  # kept
    assert "rest:top25" in (run / "report.md").read_text()
    code, _, err = cli(["analyze", "--run", run, "--analysis", "nonsense"], capsys)
    assert code == 2 and "nonsense" in err and len(err.strip().splitlines()) == 1


TIMES = re.compile(  # what a run records of when and how long
    r'"(finished|seconds|started)": [^,}\n]+|stage seconds \(last run of each\): [^\n]*'
    r"|stage seconds: [^\n]*"
)


def test_two_processes_with_other_hash_seeds_write_the_same_bytes(toy_dir, tmp_path):
    """Every file of a run, twice, in processes with different ``PYTHONHASHSEED``: byte for
    byte the same (vectors, adapters, their initial state, tables, figures and their
    SVGs), except where the manifest and the report record when and how long."""
    cfg = config(tmp_path, DETERMINISM)
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "weightsteer.cli", "run", "--config", str(cfg),
             "--runs-dir", str(tmp_path / seed)],
            env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    files = same_folders(tmp_path / "1" / "det", tmp_path / "2" / "det")
    assert {"adapters/lora/seed0/init.safetensors", "figures/si.svg"} <= {str(f) for f in files}


def same_folders(a, b) -> list:
    """Every file under ``a`` and ``b``: the same names, the same bytes (the manifest's and
    the report's times masked). Returns the names."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
        if rel.name == "manifest.json":  # a resumed run records its units in another order
            x, y = (json.dumps(json.loads(TIMES.sub('"t": 0', t.decode())), sort_keys=True)
                    for t in (x, y))  # fmt: skip
        elif rel.name in ("report.md", "headline.md"):
            x, y = (TIMES.sub("", t.decode()) for t in (x, y))
        assert x == y, rel
    return files


DETERMINISM = """
name = "det"
[questions]
n_train = 8
n_eval = 8
[data]
paraphrases = 1
max_new_tokens = 12
[train]
families = ["lora", "ia3"]  # ia3: PEFT writes its feedforward_modules from a set
seeds = [0]
rank = 2
alpha = 4
epochs = 1
[eval]
suites = ["claims"]
rows_per_suite = 8
alphas = [-1, 0, 1]
[compare]
methods = ["weight", "act:mean_diff"]
n_calibration = 4
n_audit = 4
audit_factor = 1000  # four audit prompts cannot hold a side to its budget
tokens = 4
budgets = [0.25]
"""
