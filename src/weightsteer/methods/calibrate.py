"""Iso-KL calibration: the strength at which a method costs a fixed KL budget.

Methods are compared at equal side effects, not at equal nominal strength. For an
intervention at strength ``s`` and a set of calibration prompts (held out of the
training questions and of every eval):

the cost is the mean (``compare.statistic``; or a quantile, the seeds' p95) of the
per-token KL(steered || unsteered) over the unsteered model's greedy continuation of each
prompt (``kl_cost.py``: the mean holds on other prompts; the same tokens at
every strength, so the KL is continuous in it; ``compare.continuations = "steered"``
measures on the intervention's own rollouts instead; a no-op scores exactly 0).
``calibrate_strength`` then finds ``s > 0`` and ``s < 0`` separately such
that the statistic equals the target (default 0.25 nat) within a relative tolerance:
bracket by doubling or halving ``|s|`` from 1, then secant steps on ``log KL`` vs
``log |s|``, falling back to bisection; bounded. A method that cannot reach the target
(its KL stays below it however strong, or is above it however weak) is reported as
such with the closest strength found, never as a silent guess. A side found ``ok`` whose KL on
the audit prompts is off the budget by more than ``compare.audit_factor`` (1.5x) is ``audit
off``: the cost does not hold beyond the prompts it was tuned on, so it is not at the
budget. Prompting, whose only
knob is on/off, is measured at +1 and -1 instead. A method that jumps at strength 0
(``jumps_at_zero``: an ablation plus a scaled addition, whose ablation does not shrink
with ``s``) is first measured at ``|s| = 2^-10``, the ablation alone: a budget below that
floor is reported ``above floor`` without a search. The strength is switched inside one
``attach``: the model is never reloaded or copied.

Two savings, neither changing what is measured: a later budget's search of the same sign
starts from the KLs already measured (``calibrate_strength(known=...)``), often with its
bracket ready or its answer among them; and the base pass, which depends only on the
prompt and the generated tokens (strength 0 is the unsteered model for every method),
is kept per continuation (``kl_cost.BaseLogprobs``, shared by every method of a compare stage):
steps that generate the same tokens as an earlier one cost one forward instead of two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from weightsteer.core.errors import UserError
from weightsteer.core.models import Message
from weightsteer.core.served import steering_served
from weightsteer.methods.compare_config import CompareConfig
from weightsteer.methods.kl_cost import BaseLogprobs, kl_statistic, token_kls

OK, FIXED, TOO_WEAK, TOO_STRONG, JUMP, UNCONVERGED, FLOOR, AUDIT = (
    "ok",
    "fixed",
    "too weak",
    "too strong",
    "jumps",
    "not converged",
    "above floor",
    "audit off",
)
FLOOR_STRENGTH = 2.0**-10  # where a method that jumps at 0 is measured alone


@dataclass
class Calibration:
    """The outcome of one strength search (one sign of one method)."""

    sign: int
    strength: float  # the strength used (the closest found when not ``ok``)
    kl: float  # the statistic at ``strength`` on the calibration prompts
    target: float
    status: str  # ok / fixed / too weak / too strong / jumps / not converged / above floor /
    # audit off
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
            FLOOR: f"{at}: cannot reach {self.target:g}, the method's part that does not scale "
            "(an ablation) costs more on its own",
            AUDIT: f"{at} (target {self.target:g}), but {self.audit_kl:.3g} on the audit "
            "prompts: the cost does not hold beyond the calibration prompts",
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
    evals = [(s, kl) for s, kl in known if s * sign > 0]
    search = _Search(measure, sign, target, tolerance, evals, max_evals + len(evals))
    found = _bracket(search, start, min_strength, max_strength)
    if isinstance(found, Calibration):
        return found
    return _narrow(search, *found, resolution)


Point = tuple[float, float]  # (|s|, KL)


@dataclass
class _Search:
    """One sign's search: the measurements so far (``(s, KL)``, known ones first) and
    how many it may hold (``budget``: the known ones plus ``max_evals`` fresh)."""

    measure: Callable[[float], float]
    sign: int
    target: float
    tolerance: float
    evals: list[tuple[float, float]]
    budget: int

    def f(self, mag: float) -> float:
        kl = float(self.measure(self.sign * mag))
        if math.isnan(kl):
            raise UserError(f"the KL at strength {self.sign * mag:+g} is NaN; the model diverges")
        self.evals.append((self.sign * mag, kl))
        return kl

    def done(self, status: str, mag: float, kl: float) -> Calibration:
        return Calibration(
            self.sign, self.sign * mag, kl, self.target, status, evaluations=self.evals
        )

    def gap(self, kl: float) -> float:
        return abs(math.log(max(kl, 1e-30)) - math.log(self.target))

    def close(self, kl: float) -> bool:
        return self.gap(kl) <= math.log1p(self.tolerance)

    def closest(self) -> Point:
        s, kl = min(self.evals, key=lambda e: self.gap(e[1]))
        return abs(s), kl

    @property
    def spent(self) -> bool:
        return len(self.evals) >= self.budget


def _bracket(
    search: _Search, start: float, min_strength: float, max_strength: float
) -> Calibration | tuple[Point, Point]:
    """``lo`` below the target and ``hi`` above it, by doubling or halving ``|s|`` from
    ``start`` (or from the nearest known measurements); an answer found on the way, or
    the end of the range or the budget, ends the search instead."""
    target = search.target
    lo = hi = None
    if search.evals:
        mag, kl = search.closest()
        if search.close(kl):
            return search.done(OK, mag, kl)
        above = [(abs(s), k) for s, k in search.evals if k >= target]
        hi = min(above) if above else None
        below = [
            (abs(s), k) for s, k in search.evals if k < target and (hi is None or abs(s) < hi[0])
        ]
        lo = max(below) if below else None
        # continue the doubling or halving from the known end
        known_end = lo or hi
        assert known_end is not None  # the known strengths are below or above the target
        mag, kl = known_end
    else:
        mag = start
        kl = search.f(mag)
        if search.close(kl):
            return search.done(OK, mag, kl)
    while lo is None or hi is None:
        if kl < target:
            lo = (mag, kl)
            mag *= 2
            if mag > max_strength or search.spent:
                return search.done(TOO_WEAK, *lo)
        else:
            hi = (mag, kl)
            mag /= 2
            if mag < min_strength or search.spent:
                return search.done(TOO_STRONG, *hi)
        if lo is None or hi is None:
            kl = search.f(mag)
            if search.close(kl):
                return search.done(OK, mag, kl)
    return lo, hi


def _narrow(search: _Search, lo: Point, hi: Point, resolution: float) -> Calibration:
    """Secant steps on (log |s|, log KL) inside the bracket; bisection when the step
    leaves it, or when the same end moved twice running (a one-sided secant crawls)."""
    log_target = math.log(search.target)
    last_side, bisect = None, False
    while not search.spent:
        if hi[0] / lo[0] < 1 + resolution:  # the closer end; a tie stays within budget
            return search.done(JUMP, *(lo if search.gap(lo[1]) <= search.gap(hi[1]) else hi))
        x0, y0 = math.log(lo[0]), math.log(max(lo[1], 1e-30))
        x1, y1 = math.log(hi[0]), math.log(max(hi[1], 1e-30))
        x = x0 + (log_target - y0) * (x1 - x0) / (y1 - y0) if y1 > y0 else math.nan
        margin = 0.05 * (x1 - x0)
        if bisect or not (x0 + margin < x < x1 - margin):
            x = (x0 + x1) / 2
        mag = math.exp(x)
        kl = search.f(mag)
        if search.close(kl):
            return search.done(OK, mag, kl)
        side = "lo" if kl < search.target else "hi"
        if side == "lo":
            lo = (mag, kl)
        else:
            hi = (mag, kl)
        bisect, last_side = side == last_side, side
    return search.done(UNCONVERGED, *search.closest())


def calibrate_intervention(
    model: Any,
    tokenizer: Any,
    intervention: Any,
    calibration: Sequence[Sequence[Message]],
    audit: Sequence[Sequence[Message]] = (),
    settings: Any = None,
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
    model: Any,
    tokenizer: Any,
    intervention: Any,
    calibration: Sequence[Sequence[Message]],
    audit: Sequence[Sequence[Message]] = (),
    settings: Any = None,
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
    with (
        intervention.attach(model) as in_process,
        steering_served(model, intervention, in_process) as set_strength,
    ):
        seen: dict[tuple[float, int], float] = {}

        def measure(strength: float, chats: Any, which: int) -> float:
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
                    continuations=c.continuations,
                )
                if on_measure is not None:
                    on_measure()
                seen[strength, which] = kl_statistic(kls, c.statistic, c.quantile)
            return seen[strength, which]

        for sign in (1, -1):
            for budget in budgets:
                floor = sign * FLOOR_STRENGTH
                if intervention.discrete:
                    kl = measure(float(sign), calibration, 0)
                    cal = Calibration(
                        sign, float(sign), kl, budget, FIXED, evaluations=[(sign, kl)]
                    )
                elif intervention.jumps_at_zero and (
                    kl := measure(floor, calibration, 0)
                ) > budget * (1 + c.tolerance):
                    cal = Calibration(sign, floor, kl, budget, FLOOR, evaluations=[(floor, kl)])
                else:
                    cal = calibrate_strength(
                        lambda s: measure(s, calibration, 0),
                        target=budget,
                        sign=sign,
                        tolerance=c.tolerance,
                        max_evals=c.max_evals,
                        max_strength=intervention.max_strength,
                        known=[(s, kl) for (s, which), kl in seen.items() if which == 0],
                    )
                if audit:
                    cal.audit_kl = measure(cal.strength, audit, 1)
                    ratio, f = cal.audit_kl / budget, c.audit_factor
                    if cal.status == OK and f is not None and not 1 / f <= ratio <= f:
                        cal.status = AUDIT
                out[budget][sign] = cal
    return out
