"""Iso-KL calibration: the strength at which a method costs a fixed KL budget.

Methods are compared at equal side effects, not at equal nominal strength. For an
intervention at strength ``s`` and a set of calibration prompts (held out of the
training questions and of every eval):

1. greedy-generate ``N`` tokens (default 20) from each prompt WITH the intervention (its
   system prompt and its model change);
2. teacher-force those same tokens through the intervened model and through the base
   (no system prompt, no change), and take the per-token
   ``KL(steered || base) = sum_v p_s(v) (log p_s(v) - log p_b(v))`` over the whole
   vocabulary, at every generated position (up to and including an end of turn);
3. pool the tokens of all prompts; the statistic is their 95th percentile.

Both passes go through the same teacher-forced forward, so a no-op intervention scores
exactly 0. ``calibrate_strength`` then finds ``s > 0`` and ``s < 0`` separately such
that the statistic equals the target (default 1 nat) within a relative tolerance:
bracket by doubling or halving ``|s|`` from 1, then secant steps on ``log KL`` vs
``log |s|``, falling back to bisection; bounded. A method that cannot reach the target
(its KL stays below it however strong, or is above it however weak) is reported as
such with the closest strength found, never as a silent guess. Prompting, whose only
knob is on/off, is measured at +1 and -1 instead. The strength is switched inside one
``attach``: the model is never reloaded or copied.

Two savings, neither changing what is measured: a later budget's search of the same sign
starts from the KLs already measured (``calibrate_strength(known=...)``), often with its
bracket ready or its answer among them; and the base pass, which depends only on the
prompt and the generated tokens (strength 0 is the unsteered model for every method),
is kept per continuation (``BaseLogprobs``, shared by every method of a compare stage):
steps that generate the same tokens as an earlier one cost one forward instead of two.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from weightsteer.core.errors import UserError
from weightsteer.core.models import Message, render_chat, with_system
from weightsteer.methods.compare_config import CompareConfig

OK, FIXED, TOO_WEAK, TOO_STRONG, JUMP, UNCONVERGED = (
    "ok",
    "fixed",
    "too weak",
    "too strong",
    "jumps",
    "not converged",
)


@torch.no_grad()
def token_kls(
    model,
    tokenizer,
    chats: Sequence[Sequence[Message]],
    intervention,
    set_strength: Callable[[float], None],
    strength: float,
    *,
    tokens: int = 20,
    batch_size: int = 16,
    base_cache: BaseLogprobs | None = None,
) -> torch.Tensor:
    """``[generated tokens]`` float32 per-token ``KL(steered || base)`` of every prompt,
    pooled (step 1-2 of the module docstring). Leaves the strength at 0. ``base_cache``:
    the unsteered log-probs of continuations seen before (``BaseLogprobs``)."""
    from weightsteer.core.generation import generate_ids

    if not chats:
        raise UserError("no calibration prompts")
    system = intervention.system_prompt(strength)
    enc = lambda chat, sys: tokenizer.encode(  # noqa: E731
        render_chat(tokenizer, with_system(chat, sys)), add_special_tokens=False
    )
    kls = []
    for start in range(0, len(chats), batch_size):
        chunk = chats[start : start + batch_size]
        steered_prompts = [enc(c, system) for c in chunk]
        base_prompts = [enc(c, None) for c in chunk]
        set_strength(strength)
        try:
            gen = generate_ids(
                model, tokenizer, steered_prompts, max_new_tokens=tokens, batch_size=len(chunk)
            )
            steered = _logprobs(model, tokenizer, steered_prompts, gen)
        finally:
            set_strength(0.0)
        cache = base_cache if base_cache is not None else BaseLogprobs(0)
        base = cache.get(model, tokenizer, base_prompts, gen)
        for lp_s, lp_b in zip(steered, base, strict=True):  # [k, vocab] each
            lp_b = lp_b.to(lp_s.device)
            p_s = lp_s.exp()
            kl = torch.where(p_s > 0, p_s * (lp_s - lp_b), 0.0).sum(-1)  # [k]
            kls.append(kl.clamp_min(0.0).cpu())
    return torch.cat(kls)


def _logprobs(model, tokenizer, prompts, gen) -> list[torch.Tensor]:
    """Per prompt, ``[len(gen_i), vocab]`` log-probs of the distributions that predicted
    each generated token: one teacher-forced pass over ``prompt + gen[:-1]``."""
    from weightsteer.core.scoring import last_logprobs

    k = max(len(g) for g in gen)
    seqs = [p + g[:-1] for p, g in zip(prompts, gen, strict=True)]
    out: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
    for idx, logp in last_logprobs(model, tokenizer, seqs, len(seqs), k):  # [b, k, vocab]
        for row, i in enumerate(idx.tolist()):
            n = len(gen[i])
            out[i] = logp[row, k - n :]  # right-aligned: the last n positions
    return out


class BaseLogprobs:
    """The unsteered model's teacher-forced log-probs (``_logprobs``) of ``(prompt,
    continuation)`` token pairs, kept on the CPU up to ``max_bytes`` (least recently used
    dropped first; 0 keeps nothing). Valid while the model's weights are unchanged at
    strength 0, which every intervention guarantees (``methods``' contract). A kept entry
    was computed in another batch: equal to a fresh one up to float rounding."""

    def __init__(self, max_bytes: int = 2**30):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0
        self._kept: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def get(self, model, tokenizer, prompts, gen) -> list[torch.Tensor]:
        keys = [(tuple(p), tuple(g)) for p, g in zip(prompts, gen, strict=True)]
        out: list[torch.Tensor | None] = [self._kept.get(k) for k in keys]
        todo = [i for i, lp in enumerate(out) if lp is None]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        for i, k in enumerate(keys):
            if out[i] is not None:
                self._kept.move_to_end(k)
        if todo:
            fresh = _logprobs(model, tokenizer, [prompts[i] for i in todo], [gen[i] for i in todo])
            for i, lp in zip(todo, fresh, strict=True):
                out[i] = lp
                self._keep(keys[i], lp)
        return out  # type: ignore[return-value]

    def _keep(self, key: tuple, lp: torch.Tensor) -> None:
        size = lp.numel() * lp.element_size()
        if key in self._kept or size > self.max_bytes:
            return
        self._kept[key] = lp.to("cpu", copy=True)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, old = self._kept.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()


def kl_statistic(kls: torch.Tensor, quantile: float = 0.95) -> float:
    return float(torch.quantile(kls.double(), quantile)) if kls.numel() else float("nan")


@dataclass
class Calibration:
    """The outcome of one strength search (one sign of one method)."""

    sign: int
    strength: float  # the strength used (the closest found when not ``ok``)
    kl: float  # the statistic at ``strength`` on the calibration prompts
    target: float
    status: str  # ok / fixed / too weak / too strong / jumps / not converged
    audit_kl: float = float("nan")  # the same statistic on the audit prompts
    evaluations: list[tuple[float, float]] = field(default_factory=list)  # (s, kl) tried

    @property
    def reached(self) -> bool:
        return self.status == OK

    def message(self) -> str:
        at = f"s = {self.strength:+.4g}, KL = {self.kl:.3g}"
        return {
            OK: f"{at} (target {self.target:g})",
            FIXED: f"{at}: fixed strength, cannot be tuned to {self.target:g}",
            TOO_WEAK: f"{at}: cannot reach {self.target:g}, KL stays below it up to this strength",
            TOO_STRONG: f"{at}: cannot reach {self.target:g}, KL is above it even this weak",
            JUMP: f"{at}: the KL jumps across {self.target:g} here (a greedy continuation "
            "changes); no strength hits it",
            UNCONVERGED: f"{at}: did not converge to {self.target:g} in "
            f"{len(self.evaluations)} steps",
        }[self.status]

    def to_json(self) -> dict:
        return asdict(self)


def calibrate_strength(
    measure: Callable[[float], float],
    *,
    target: float = 1.0,
    sign: int = 1,
    tolerance: float = 0.1,
    max_evals: int = 16,
    start: float = 1.0,
    min_strength: float = 2.0**-10,
    max_strength: float = 2.0**10,
    resolution: float = 1e-3,
    known: Sequence[tuple[float, float]] = (),
) -> Calibration:
    """Find ``s`` of sign ``sign`` with ``measure(s)`` within ``tolerance`` (relative) of
    ``target``; ``measure`` is assumed to grow with ``|s|`` (where it does not, the
    search still ends inside a bracket around a crossing, or reports not converged).
    A bracket narrower than ``resolution`` (relative) that still straddles the target is
    a jump of the KL: reported as such with the closer end.

    ``known``: ``(s, KL)`` already measured (another budget's search of the same
    intervention). The search starts from them: one within tolerance is the answer at
    no cost; else the closest below and above the target are the bracket, and only
    what is missing is measured. They count in ``evaluations``, not in ``max_evals``."""
    if sign not in (1, -1):
        raise ValueError("sign must be +1 or -1")
    evals: list[tuple[float, float]] = [(s, kl) for s, kl in known if s * sign > 0]
    budget = max_evals + len(evals)  # fresh measurements allowed
    log_target = math.log(target)

    def f(mag: float) -> float:
        kl = float(measure(sign * mag))
        if math.isnan(kl):
            raise UserError(f"the KL at strength {sign * mag:+g} is NaN; the model diverges")
        evals.append((sign * mag, kl))
        return kl

    def done(status: str, mag: float, kl: float) -> Calibration:
        return Calibration(sign, sign * mag, kl, target, status, evaluations=evals)

    def gap(kl: float) -> float:
        return abs(math.log(max(kl, 1e-30)) - log_target)

    def close(kl: float) -> bool:
        return gap(kl) <= math.log1p(tolerance)

    def closest() -> tuple[float, float]:
        s, kl = min(evals, key=lambda e: gap(e[1]))
        return abs(s), kl

    # 1. bracket: lo below the target, hi above (the nearest known ones, if any)
    lo = hi = None
    if evals:
        mag, kl = closest()
        if close(kl):
            return done(OK, mag, kl)
        above = [(abs(s), k) for s, k in evals if k >= target]
        hi = min(above) if above else None
        below = [(abs(s), k) for s, k in evals if k < target and (hi is None or abs(s) < hi[0])]
        lo = max(below) if below else None
        # continue the doubling or halving from the known end
        mag, kl = lo or hi
    else:
        mag = start
        kl = f(mag)
        if close(kl):
            return done(OK, mag, kl)
    while lo is None or hi is None:
        if kl < target:
            lo = (mag, kl)
            mag *= 2
            if mag > max_strength or len(evals) >= budget:
                return done(TOO_WEAK, *lo)
        else:
            hi = (mag, kl)
            mag /= 2
            if mag < min_strength or len(evals) >= budget:
                return done(TOO_STRONG, *hi)
        if lo is None or hi is None:
            kl = f(mag)
            if close(kl):
                return done(OK, mag, kl)
    # 2. secant on (log |s|, log KL); bisection when the step leaves the bracket, or when
    # the same end moved twice running (a one-sided secant crawls)
    last_side, bisect = None, False
    while len(evals) < budget:
        if hi[0] / lo[0] < 1 + resolution:  # the closer end; a tie stays within budget
            return done(JUMP, *(lo if gap(lo[1]) <= gap(hi[1]) else hi))
        x0, y0 = math.log(lo[0]), math.log(max(lo[1], 1e-30))
        x1, y1 = math.log(hi[0]), math.log(max(hi[1], 1e-30))
        x = x0 + (log_target - y0) * (x1 - x0) / (y1 - y0) if y1 > y0 else math.nan
        margin = 0.05 * (x1 - x0)
        if bisect or not (x0 + margin < x < x1 - margin):
            x = (x0 + x1) / 2
        mag = math.exp(x)
        kl = f(mag)
        if close(kl):
            return done(OK, mag, kl)
        side = "lo" if kl < target else "hi"
        if side == "lo":
            lo = (mag, kl)
        else:
            hi = (mag, kl)
        bisect, last_side = side == last_side, side
    return done(UNCONVERGED, *closest())


def calibrate_intervention(
    model,
    tokenizer,
    intervention,
    calibration: Sequence[Sequence[Message]],
    audit: Sequence[Sequence[Message]] = (),
    settings=None,
    on_measure: Callable[[], None] | None = None,
) -> dict[int, Calibration]:
    """``{+1: ..., -1: ...}``: the strength of each sign at ``settings.target_kl``
    (``settings``: a ``CompareConfig``), with the achieved KL on the audit prompts."""
    c = settings or CompareConfig()
    found = calibrate_budgets(
        model, tokenizer, intervention, calibration, audit, c, [c.target_kl], on_measure
    )
    return found[c.target_kl]


def calibrate_budgets(
    model,
    tokenizer,
    intervention,
    calibration: Sequence[Sequence[Message]],
    audit: Sequence[Sequence[Message]] = (),
    settings=None,
    budgets: Sequence[float] | None = None,
    on_measure: Callable[[], None] | None = None,
    base_cache: BaseLogprobs | None = None,
) -> dict[float, dict[int, Calibration]]:
    """``{budget: {+1: ..., -1: ...}}`` for every budget (default ``settings.all_budgets``).

    One strength search per budget and sign; the first starts at ``|s| = 1``, every later
    one from the KLs measured so far (``calibrate_strength(known=...)``). A method with a
    fixed strength (a prompt) is measured once per sign: the same ``fixed`` outcome
    stands for every budget. ``base_cache``: share the unsteered log-probs with other
    calls on the same model (default: kept for this call only)."""
    c = settings or CompareConfig()
    budgets = list(budgets) if budgets is not None else list(c.all_budgets)
    out: dict[float, dict[int, Calibration]] = {b: {} for b in budgets}
    cache = base_cache if base_cache is not None else BaseLogprobs()
    with intervention.attach(model) as set_strength:
        seen: dict[tuple[float, int], float] = {}

        def measure(strength: float, chats, which: int) -> float:
            if (strength, which) not in seen:
                kls = token_kls(
                    model,
                    tokenizer,
                    chats,
                    intervention,
                    set_strength,
                    strength,
                    tokens=c.tokens,
                    batch_size=c.batch_size,
                    base_cache=cache,
                )
                if on_measure is not None:
                    on_measure()
                seen[strength, which] = kl_statistic(kls, c.quantile)
            return seen[strength, which]

        for sign in (1, -1):
            for budget in budgets:
                if intervention.discrete:
                    kl = measure(float(sign), calibration, 0)
                    cal = Calibration(
                        sign, float(sign), kl, budget, FIXED, evaluations=[(sign, kl)]
                    )
                else:
                    cal = calibrate_strength(
                        lambda s: measure(s, calibration, 0),
                        target=budget,
                        sign=sign,
                        tolerance=c.tolerance,
                        max_evals=c.max_evals,
                        known=[(s, kl) for (s, which), kl in seen.items() if which == 0],
                    )
                if audit:
                    cal.audit_kl = measure(cal.strength, audit, 1)
                out[budget][sign] = cal
    return out
