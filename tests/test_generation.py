"""End of turn: generation stops at every token that ends an assistant turn, not only the
tokenizer's EOS (Llama-3's <|eot_id|>, Gemma's <end_of_turn> are not their EOS)."""

from __future__ import annotations

import torch
from transformers import GenerationConfig

from weightsteer.core.generation import complete, end_token_ids, generate_ids


class Scripted(torch.nn.Module):
    """A 'model' whose generate appends a fixed continuation, and records its end tokens."""

    def __init__(self, continuation: list[int], eos: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.continuation = continuation
        self.generation_config = GenerationConfig(eos_token_id=eos)
        self.asked_to_stop_at = None

    def generate(self, input_ids, attention_mask, eos_token_id, **kw):
        self.asked_to_stop_at = eos_token_id
        tail = torch.tensor(self.continuation).expand(input_ids.shape[0], -1)
        return torch.cat([input_ids, tail], dim=1)


def test_the_template_end_of_turn_ends_generation_when_it_is_not_the_eos(tiny):
    _, tok = tiny
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    tok.eos_token = "<|endoftext|>"  # EOS now differs from the template's end of turn
    eos = tok.eos_token_id
    assert eos != im_end
    model = Scripted([7, 8, im_end, 9, 9], eos)
    assert set(end_token_ids(model, tok)) == {eos, im_end}
    got = generate_ids(model, tok, ["hello"], max_new_tokens=5)
    assert got == [[7, 8, im_end]] and set(model.asked_to_stop_at) == {eos, im_end}
    done = complete(model, tok, [[{"role": "user", "content": "hi"}]], max_new_tokens=5)
    assert done[0].finished


def test_an_answer_without_an_end_token_is_unfinished(tiny):
    _, tok = tiny
    model = Scripted([7, 8, 9], tok.eos_token_id)
    done = complete(model, tok, [[{"role": "user", "content": "hi"}]], max_new_tokens=3)
    assert not done[0].finished
