"""The vLLM engine (core/engine.py): what is refused before any stage starts, and, with a
vLLM environment (``make vllm``; ``make test-vllm``), persona data generated on a server
equal to transformers' own."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from helpers import cli, random_lowrank_vector
from weightsteer.core.engine import LOCAL_ENV, PYTHON_ENV, EngineConfig, free_port, start_server
from weightsteer.core.errors import UserError

# tests start servers without torch.compile: ~45 s less per start on 2 cores (the answers
# are the same; `make bench` times the compiled engine)
EAGER = EngineConfig(name="vllm", args=("--enforce-eager",))

ENGINE = (
    'name = "r"\n[model]\nid = "smollm2"\n[questions]\nn_train = 4\nn_eval = 0\n'
    '[compare]\nmethods = []\n[eval]\nsuites = []\n[engine]\nname = "vllm"\n'
)


def run_vllm(tmp_path, capsys, extra: str = ""):
    cfg = tmp_path / "c.toml"
    cfg.write_text(ENGINE + extra)
    return cli(["run", "--config", cfg, "--runs-dir", tmp_path / "runs"], capsys)


def one_line_and_nothing_made(code, err, tmp_path, phrase):
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and phrase in " ".join(err.split()), err
    assert not (tmp_path / "runs").exists()


def test_a_missing_vllm_install_is_one_line_before_any_stage(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(PYTHON_ENV, str(tmp_path / "no-such-python"))
    code, _, err = run_vllm(tmp_path, capsys)
    one_line_and_nothing_made(code, err, tmp_path, "no vLLM environment")


def test_an_unreachable_engine_url_is_one_line_before_any_stage(tmp_path, capsys):
    code, _, err = run_vllm(tmp_path, capsys, f'url = "http://127.0.0.1:{free_port()}"\n')
    one_line_and_nothing_made(code, err, tmp_path, "no vLLM server answers")


def test_a_port_in_use_is_refused_before_a_server_starts(tmp_path, monkeypatch):
    monkeypatch.setenv(PYTHON_ENV, sys.executable)  # a python is there; the port is not free
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with (
            pytest.raises(UserError, match=f"port {port}"),
            start_server(tmp_path, tmp_path / "log", EngineConfig(), port=port),
        ):
            pass  # pragma: no cover
    assert not (tmp_path / "log").exists()


def test_fallback_refuse_with_an_activation_method_is_one_line_before_any_stage(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(PYTHON_ENV, sys.executable)  # an environment is there
    cfg = tmp_path / "c.toml"
    methods = 'methods = ["weight", "act:mean_diff"]'
    cfg.write_text(ENGINE.replace("methods = []", methods) + 'fallback = "refuse"\n')
    code, _, err = cli(["run", "--config", cfg, "--runs-dir", tmp_path / "runs"], capsys)
    one_line_and_nothing_made(code, err, tmp_path, "act:mean_diff cannot be applied")


class ActLike:
    """What the server cannot apply: an activation method's ``served`` (the base class's)."""

    method = "act:fake"

    def served(self, strength):
        from weightsteer.methods.intervention import Intervention

        return Intervention.served(self, strength)  # type: ignore[arg-type]


def test_what_the_server_cannot_apply_is_generated_here_with_one_line(tiny):
    """On a model with a server attached, an activation method's answers come from
    transformers (equal to no server at all), said once; with fallback = "refuse" it
    stops with one line; the base at strength 0 goes to the server (here unreachable:
    one line naming it)."""
    from weightsteer.core.generation import generate_ids
    from weightsteer.core.served import Served, serving, steering_served

    model, tok = tiny
    prompts = ["Is the sky blue?", "Is water dry?"]
    want = generate_ids(model, tok, prompts, max_new_tokens=4)
    said: list[str] = []
    url = f"http://127.0.0.1:{free_port()}"
    cfg = EngineConfig(name="vllm", retries=0)
    served = Served(url, [tok.eos_token_id], cfg, folder=Path("unused"), say=said.append)
    with serving(model, served), steering_served(model, ActLike(), lambda s: None) as set_s:
        set_s(1.0)
        assert generate_ids(model, tok, prompts, max_new_tokens=4) == want
        assert generate_ids(model, tok, prompts, max_new_tokens=4) == want
        assert len(said) == 1 and "act:fake" in said[0] and "transformers" in said[0]
        set_s(0.0)
        with pytest.raises(UserError, match="failed a request"):
            generate_ids(model, tok, prompts, max_new_tokens=4)
    refuse = Served(url, [tok.eos_token_id], EngineConfig(name="vllm", fallback="refuse"),
                    folder=Path("unused"))  # fmt: skip
    with serving(model, refuse), steering_served(model, ActLike(), lambda s: None) as set_s:
        set_s(-1.0)
        with pytest.raises(UserError, match='fallback = "refuse"'):
            generate_ids(model, tok, prompts, max_new_tokens=4)


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ("nonsense", "NAME=PATH@STRENGTHS"),
        ("v=missing.safetensors@1", "missing.safetensors"),
        ("v=x.safetensors@0", "non-zero"),
        ("v=x.safetensors@one", "must be numbers"),
    ],
)
def test_serve_refuses_a_bad_vector_spec_in_one_line(tmp_path, capsys, spec, phrase):
    code, _, err = cli(["serve", "--model", "toyworld", "--vector", spec], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and phrase in err, err


def test_a_server_that_answers_without_token_ids_is_one_line():
    """An OpenAI-compatible server that is not vLLM (no token ids in its answer)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from weightsteer.core.engine import served_generate

    class NotVllm(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"choices": [{"text": "hi", "finish_reason": "stop"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotVllm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(UserError, match="without token_ids"):
            served_generate(url, [[1, 2]], max_new_tokens=2, ends=[0])
    finally:
        server.shutdown()


def test_engine_hf_with_an_engine_url_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(ENGINE)
    argv = ["run", "--config", cfg, "--engine", "hf", "--engine-url", "http://x:1"]
    code, _, err = cli(argv, capsys)
    assert code == 2 and "--engine-url" in err and not (tmp_path / "runs").exists(), err


@pytest.mark.vllm
@pytest.mark.skipif(not LOCAL_ENV.is_file(), reason="no .vllm environment (make vllm)")
def test_greedy_persona_data_from_the_server_equals_transformers(tmp_path):
    """SmolLM2 in float32, 24 questions x 2 personas, 32 greedy tokens: the answers of a
    vLLM server equal HF generate's (text and whether the turn ended) on >= 95%."""
    from weightsteer.core.generation import end_token_ids
    from weightsteer.core.models import load_model, load_tokenizer
    from weightsteer.core.served import Served, serving
    from weightsteer.core.sources import resolve_source
    from weightsteer.pairs.generate import generate_pair_data, pair_items
    from weightsteer.pairs.personas import PAIRS
    from weightsteer.pairs.questions import QuestionsConfig, split_questions

    folder = resolve_source("smollm2")
    model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder)
    qs = split_questions(QuestionsConfig(source="builtin:chat-prompts", column="prompt",
                                         n_train=24, n_eval=0)).train  # fmt: skip
    items = pair_items(qs, paraphrases=1, samples=1)
    pair = PAIRS["french"]
    ends = end_token_ids(model, tok)
    hf = generate_pair_data(model, tok, items, pair, work_dir=tmp_path / "hf",
                            max_new_tokens=32, truncated="keep")  # fmt: skip
    with start_server(folder, tmp_path / "engine.log", EAGER) as server:
        on_server = Served(server.url, ends, EAGER, folder=tmp_path / "adapters")
        with serving(model, on_server):
            served = generate_pair_data(model, tok, items, pair, work_dir=tmp_path / "vllm",
                                        max_new_tokens=32, truncated="keep")  # fmt: skip
    assert hf is not None and served is not None

    def answers(work):
        rows = [r for f in sorted(work.glob("chunk-*.json")) for r in json.loads(f.read_text())]
        return [(r[side]["text"], r[side]["finished"]) for r in rows for side in ("pos", "neg")]

    pairs = list(zip(answers(tmp_path / "hf"), answers(tmp_path / "vllm"), strict=True))
    same = sum(a == b for a, b in pairs)
    differing = next(((a, b) for a, b in pairs if a != b), None)
    print(f"equal: {same} of {len(pairs)}; first differing: {differing}")
    assert len(pairs) == 48 and same >= 0.95 * len(pairs)


@pytest.mark.vllm
@pytest.mark.skipif(not LOCAL_ENV.is_file(), reason="no .vllm environment (make vllm)")
def test_served_steering_equals_in_process_steering(tmp_path):
    """One server of SmolLM2 (float32) with a vector at alpha -1 and +1 as LoRA modules
    (``weightsteer serve``): the next-token log-probs of each (top 20) equal in-process
    steering to 1e-3, while steering moves them far more; and the eval path (adapters
    loaded at runtime, one per strength, per request) gives the greedy answers of
    in-process steered generation."""
    import torch

    from weightsteer.core.engine import served_logprobs
    from weightsteer.core.generation import end_token_ids, generate_ids
    from weightsteer.core.models import load_model, load_tokenizer, render_chat
    from weightsteer.core.served import Served, serving, steering_served
    from weightsteer.core.sources import resolve_source
    from weightsteer.core.steer import Steerer
    from weightsteer.export import export_lora
    from weightsteer.export.serve import Steering, serve_steerings, served_name
    from weightsteer.methods.weight import WeightSteering

    folder = resolve_source("smollm2")
    model, tok = load_model(folder, dtype="float32"), load_tokenizer(folder)
    vec = random_lowrank_vector(model)
    chats = [[{"role": "user", "content": q}] for q in
             ("What is the capital of France?", "Write a haiku about rain.",
              "How do I boil an egg?", "Name three colours.")]  # fmt: skip
    prompts = [tok.encode(render_chat(tok, c), add_special_tokens=False) for c in chats]

    def next_logprobs(ids):
        with torch.no_grad():
            return model(torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)

    base = [next_logprobs(p) for p in prompts]
    with serve_steerings(folder, [Steering("v", vec, (-1.0, 1.0))], cfg=EAGER,
                         log=tmp_path / "serve.log") as (server, _):  # fmt: skip
        worst, moved = 0.0, 0.0
        for alpha in (-1.0, 1.0):
            with Steerer(model, vec) as s:
                s.set_alpha(alpha)
                ref = [next_logprobs(p) for p in prompts]
            for p, r, b in zip(prompts, ref, base, strict=True):
                got = served_logprobs(server.url, p, model=served_name("v", alpha))
                ids = torch.tensor(list(got))
                worst = max(worst, float((torch.tensor(list(got.values())) - r[ids]).abs().max()))
                moved = max(moved, float((r - b).abs().max()))
        print(f"served vs in-process: max |d log p| {worst:.2e}; steering moved {moved:.2f}")
        assert worst < 1e-3 and moved > 0.1

        def export(vector, strength, path):
            export_lora(vector, path, alpha=strength, overwrite=True)
            return ""

        served = Served(server.url, end_token_ids(model, tok), EAGER,
                        folder=tmp_path / "adapters", export=export)  # fmt: skip
        steering = WeightSteering(vector=vec, family="lora")
        answers = {}
        for alpha in (-1.0, 0.0, 1.0):
            with steering.attach(model) as set_alpha:
                set_alpha(alpha)
                want = generate_ids(model, tok, prompts, max_new_tokens=16)
            with (serving(model, served), steering.attach(model) as in_process,
                  steering_served(model, steering, in_process) as set_both):  # fmt: skip
                set_both(alpha)
                got_ids = generate_ids(model, tok, prompts, max_new_tokens=16)
                assert served.adapters or alpha == 0
            same = sum(a == b for a, b in zip(want, got_ids, strict=True))
            print(f"alpha {alpha:+g}: {same} of {len(want)} greedy answers equal")
            assert same == len(want)
            answers[alpha] = want
        assert answers[-1.0] != answers[0.0] != answers[1.0]  # the vector steers them


KILLED = (
    'name = "k"\n[model]\nid = "smollm2"\nsystem_prompt = "none"\n[behavior]\nname = "french"\n'
    '[questions]\nsource = "builtin:chat-prompts"\ncolumn = "prompt"\nn_train = 8\nn_eval = 0\n'
    '[data]\nparaphrases = 1\nmax_new_tokens = 16\ntruncated = "keep"\nchunk_size = 2\n'
    '[train]\nfamilies = ["lora"]\nseeds = [0]\nepochs = 1\nbatch_size = 4\nlayers = [0.3, 0.8]\n'
    "[eval]\nsuites = []\n[compare]\nmethods = []\n"
)


@pytest.mark.vllm
@pytest.mark.skipif(not LOCAL_ENV.is_file(), reason="no .vllm environment (make vllm)")
def test_a_server_killed_mid_stage_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    """The server dies after the data stage's first chunk: one line naming it, exit 2; a
    resume on a new server makes only the chunks left and ends with the files of a run
    that was never interrupted (made with transformers: the engines agree on them)."""
    import weightsteer.core.served as served_mod
    from weightsteer.core.sources import resolve_source

    cfg = tmp_path / "c.toml"
    cfg.write_text(KILLED)
    folder = resolve_source("smollm2")
    calls, real = [], served_mod.served_generate

    with start_server(folder, tmp_path / "one.log", EAGER) as server:

        def dies_after_the_first_chunk(*args, **kwargs):
            if len(calls) == 2:  # chunk 0's POS and NEG answers are back
                server.kill()
            calls.append(1)
            return real(*args, **kwargs)

        monkeypatch.setattr(served_mod, "served_generate", dies_after_the_first_chunk)
        argv = ["run", "--config", cfg, "--runs-dir", tmp_path / "runs"]
        code, _, err = cli([*argv, "--engine-url", server.url], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and server.url in err, err
    work = list((tmp_path / "runs" / "k" / ".work").glob("data-*/chunk-*.json"))
    assert len(work) == 1  # the finished chunk is kept
    monkeypatch.setattr(served_mod, "served_generate", real)
    calls.clear()
    with start_server(folder, tmp_path / "two.log", EAGER) as server:
        code, _, err = cli([*argv, "--engine-url", server.url], capsys)
    assert code == 0, err
    code, _, err = cli(["run", "--config", cfg, "--runs-dir", tmp_path / "hf"], capsys)
    assert code == 0, err
    resumed, straight = tmp_path / "runs" / "k", tmp_path / "hf" / "k"
    for rel in ("data/pos.jsonl", "data/neg.jsonl", "vectors/lora-seed0.safetensors"):
        assert (resumed / rel).read_bytes() == (straight / rel).read_bytes(), rel
    assert not (resumed / ".work").exists()


def test_a_vector_with_a_1d_delta_is_not_served_and_says_which(tiny):
    """A LoRA adapter carries 2-D weights only: a vector that also changes a norm or a
    bias is generated with transformers (``Served`` says so), never half served."""
    import torch

    from weightsteer.core.fingerprint import fingerprint
    from weightsteer.core.served import BASE
    from weightsteer.core.vector import VectorMeta, WeightVector
    from weightsteer.methods.weight import WeightSteering

    model, _ = tiny
    flat = next(n for n, p in model.named_parameters() if p.dim() == 1)
    square = next(n for n, p in model.named_parameters() if p.dim() == 2)
    params = dict(model.named_parameters())
    deltas = {n: torch.zeros_like(params[n]) for n in (flat, square)}
    vec = WeightVector(deltas, VectorMeta(base=fingerprint(model)))
    steering = WeightSteering(vector=vec, family="dora")
    assert steering.served(0.0) == BASE
    assert flat in steering.served(1.0).why_not
    two_d = WeightSteering(vector=WeightVector({square: deltas[square]}, vec.meta))
    assert two_d.served(-1.0).vector is two_d.vector and two_d.served(-1.0).strength == -1.0


def test_a_vector_its_exporter_refuses_is_generated_here_said_once(tiny):
    """A dense vector whose LoRA would be off by more than [engine] max_error: the
    exporter refuses it (``NotServable``), the answers come from transformers, the line is
    said once, and no server is asked (none answers here)."""
    from weightsteer.core.generation import generate_ids
    from weightsteer.core.served import NotServable, Served, ServedAs, serving

    model, tok = tiny
    prompts = ["Is the sky blue?"]
    want = generate_ids(model, tok, prompts, max_new_tokens=4)

    def refuse(vector, strength, path):
        raise NotServable("off by 1.9e-01")

    said: list[str] = []
    url = f"http://127.0.0.1:{free_port()}"
    served = Served(url, [tok.eos_token_id], EngineConfig(name="vllm", retries=0),
                    folder=Path("unused"), export=refuse, say=said.append)  # fmt: skip
    dense = ServedAs(vector=object(), strength=1.0, key="dora")
    with serving(model, served):
        served.prefetch([(dense, [[1, 2]], 4)])
        for strength in (1.0, -1.0):
            served.state = ServedAs(vector=dense.vector, strength=strength, key="dora")
            assert generate_ids(model, tok, prompts, max_new_tokens=4) == want
    assert said == ["  engine: off by 1.9e-01"]


def test_the_dosed_prompt_is_generated_here_and_says_so(tiny):
    """The dosed prompt mixes logits in this process: with a server attached its answers
    equal no server's, and one line says why."""
    from weightsteer.core.generation import generate_ids
    from weightsteer.core.served import Served, serving, steering_served
    from weightsteer.methods.prompt_dosed import DosedPrompt

    model, tok = tiny
    prompts = ["Is the sky blue?"]
    dosed = DosedPrompt(pos="Always say yes.", neg="Always say no.")
    with dosed.attach(model) as set_strength:
        set_strength(0.5)
        want = generate_ids(model, tok, prompts, max_new_tokens=4)
    said: list[str] = []
    served = Served(f"http://127.0.0.1:{free_port()}", [tok.eos_token_id],
                    EngineConfig(name="vllm", retries=0), folder=Path("unused"),
                    say=said.append)  # fmt: skip
    with (serving(model, served), dosed.attach(model) as in_process,
          steering_served(model, dosed, in_process) as set_both):  # fmt: skip
        set_both(0.5)
        assert generate_ids(model, tok, prompts, max_new_tokens=4) == want
    assert len(said) == 1 and "prompt:dosed" in said[0]
