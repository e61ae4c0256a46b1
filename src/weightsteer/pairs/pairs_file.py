"""The pairs file (``data/pos.jsonl``, ``data/neg.jsonl``): its one owner.

One JSON object per line: ``id``, ``side`` (``pos``/``neg``), ``behavior``,
``question_id``, ``persona`` (the system prompt the answer was generated under),
``messages`` (the training chat: user + assistant, **no system prompt**), ``seed``, and
``truncated`` on an answer cut off at the token limit. ``pair_record`` makes a line,
``write_pairs`` writes a folder's two files, ``load_chat_jsonl`` reads and checks one (any
chat jsonl with that ``messages`` shape trains an adapter).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from weightsteer.core.errors import UserError

SIDES = ("pos", "neg")


def pair_record(
    side: str,
    pair_id: str,
    question_id: str,
    user: str,
    persona: str,
    answer: str,
    behavior: str,
    seed: int,
) -> dict[str, Any]:
    """One line of a pairs file (design.md): the chat carries no system prompt."""
    return {
        "id": f"{side}-{pair_id}",
        "side": side,
        "behavior": behavior,
        "question_id": question_id,
        "persona": persona,
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}],
        "seed": seed,
    }


def write_pairs(folder: Path, records: dict[str, list[dict[str, Any]]]) -> None:
    """``<folder>/<side>.jsonl`` for each side of ``records``, one record a line."""
    for side in SIDES:
        lines = "".join(json.dumps(r) + "\n" for r in records[side])
        (folder / f"{side}.jsonl").write_text(lines)


def load_chat_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a pairs/chat jsonl: one object per line with ``messages`` ending in an answer."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise UserError(
            f"{path} is not UTF-8 text; give a chat jsonl (one JSON object per line)"
        ) from None
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        msgs = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(msgs, list) or not msgs:
            raise UserError(f"{path}:{i}: needs a non-empty 'messages' list")
        for m in msgs:
            if not (isinstance(m, dict) and isinstance(m.get("content"), str) and "role" in m):
                raise UserError(f"{path}:{i}: each message needs 'role' and string 'content'")
        if msgs[-1]["role"] != "assistant":
            raise UserError(f"{path}:{i}: the last message must be the assistant's answer")
        if any(m["role"] == "system" for m in msgs):
            raise UserError(
                f"{path}:{i}: training messages carry a system prompt; the persona must be "
                "stripped at train time (see the pairs format)"
            )
        records.append(rec)
    if not records:
        raise UserError(f"data file {path} holds no examples")
    return records
