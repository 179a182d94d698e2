"""Statistics for mnistlab.report: seeds pooled into groups, Welch comparisons, matched effects.

Rules, chosen so that a handful of seeds is never over-read:

- A *group* is the runs whose resolved configs differ only in ``trainer.seed`` (and in keys that
  change no result). Per metric it reports n, the mean, the sample std (ddof=1) and a 95 %
  confidence interval of the mean, mean ± t(0.975, n-1)·std/√n (Student t: with 3 seeds a normal
  interval would be far too narrow). One run has no std and no interval.
- Two samples are compared with Welch's test (``scipy.stats.ttest_ind(equal_var=False)``), since
  two settings need not have the same seed-to-seed spread: difference of means a − b, standard
  error se = √(s_a²/n_a + s_b²/n_b), Welch–Satterthwaite df, interval diff ± t(0.975, df)·se.
  Fewer than 2 runs on a side, or no spread at all, leaves it untested.
- *Effects*: for each factor, every pair of its levels (level before vs in level order, diff =
  level − vs, on test accuracy). Only *matched* runs are compared: a stratum is one combination
  of the other factors' levels, and only strata holding runs of both levels count, so the other
  factors never masquerade as this one. Their runs are pooled when the strata weigh the same in
  both levels (n_level,s/N_level = n_vs,s/N_vs: a balanced design, seeds all there); otherwise
  each stratum keeps its first min(n_level,s, n_vs,s) runs of each level by seed, which balances
  it. Pairs with no matched stratum are not compared (they differ in other factors too). Verdict:
  better/worse when p < 0.05 and the interval excludes 0, else "no clear difference".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
METRICS = ("train_acc", "val_acc", "test_acc", "gap")  # gap = train_acc - val_acc


@dataclass(frozen=True)
class Stat:
    """n, mean, sample std and confidence interval of the mean; None where undefined."""

    n: int
    mean: float | None = None
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def t_quantile(df: float) -> float:
    """The two-sided CONFIDENCE quantile of Student's t."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def describe(values: Sequence[float]) -> Stat:
    """Summary of one metric over a group's runs (see the module docstring)."""
    n = len(values)
    if n == 0:
        return Stat(0)
    mean = float(np.mean(values))
    if n == 1:
        return Stat(1, mean)
    std = float(np.std(values, ddof=1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Stat(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    """Welch's comparison of two samples, a − b; test fields None when it cannot be tested."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float
    df: float | None = None
    t: float | None = None
    p: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def tested(self) -> bool:
        return self.p is not None

    def reversed(self) -> Comparison:
        """b − a: the same test read the other way round."""
        return replace(
            self, n_a=self.n_b, n_b=self.n_a, mean_a=self.mean_b, mean_b=self.mean_a,
            diff=-self.diff, t=_neg(self.t), ci_low=_neg(self.ci_high), ci_high=_neg(self.ci_low),
        )  # fmt: skip


def _neg(x: float | None) -> float | None:
    return None if x is None else -x


def welch(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Welch's t-test of mean(a) − mean(b); untested below 2 runs a side or with no spread."""
    mean_a, mean_b = float(np.mean(a)), float(np.mean(b))
    base = Comparison(len(a), len(b), mean_a, mean_b, mean_a - mean_b)
    if len(a) < 2 or len(b) < 2:
        return base
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return base
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    test = stats.ttest_ind(a, b, equal_var=False)
    half = t_quantile(df) * se
    return replace(
        base, df=float(df), t=float(test.statistic), p=float(test.pvalue),
        ci_low=base.diff - half, ci_high=base.diff + half,
    )  # fmt: skip


def effect_verdict(c: Comparison) -> str:
    """better / worse (p < ALPHA and the interval excludes 0) or no clear difference."""
    if c.p is None or c.ci_low is None or c.ci_high is None:
        if min(c.n_a, c.n_b) < 2:
            return f"untested: {min(c.n_a, c.n_b)} run on one side, needs 2"
        return "untested: no spread between runs"
    if c.p < ALPHA and c.ci_low > 0:
        return "better"
    if c.p < ALPHA and c.ci_high < 0:
        return "worse"
    return f"no clear difference at {c.n_a} vs {c.n_b} runs"


# ---------------------------------------------------------------------------- effects


class Obs(NamedTuple):
    """One completed run as the effects see it."""

    levels: Mapping[str, str]  # factor -> level
    seed: Any
    value: float


@dataclass(frozen=True)
class Effect:
    """One pair of levels of one factor, compared on matched runs."""

    factor: str
    level: str
    vs: str
    strata: int  # combinations of the other factors holding runs of both levels
    balanced: bool  # False: strata trimmed to equal runs of each level
    result: Comparison  # level − vs
    verdict: str
    confounded: tuple[str, ...] = ()  # keys that changed along with the factor


def _stratum(obs: Obs, factor: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in obs.levels.items() if k != factor))


def matched_samples(
    obs: Sequence[Obs], factor: str, level: str, vs: str
) -> tuple[list[float], list[float], int, bool] | None:
    """Values of ``level`` and ``vs`` in the strata holding both, per the module's rule."""
    strata: dict[tuple, tuple[list[Obs], list[Obs]]] = {}
    for o in obs:
        if o.levels[factor] in (level, vs):
            strata.setdefault(_stratum(o, factor), ([], []))[o.levels[factor] == vs].append(o)
    cells = [(a, b) for a, b in strata.values() if a and b]
    if not cells:
        return None
    n_a, n_b = sum(len(a) for a, _ in cells), sum(len(b) for _, b in cells)
    balanced = all(len(a) * n_b == len(b) * n_a for a, b in cells)
    if not balanced:
        cells = [_trim(a, b) for a, b in cells]
    values = [[o.value for cell in cells for o in cell[side]] for side in (0, 1)]
    return values[0], values[1], len(cells), balanced


def _trim(a: list[Obs], b: list[Obs]) -> tuple[list[Obs], list[Obs]]:
    """Equal runs of each level, lowest seeds first so that seeds pair up."""
    k = min(len(a), len(b))
    return sorted(a, key=_seed_key)[:k], sorted(b, key=_seed_key)[:k]


def _seed_key(o: Obs) -> tuple[bool, float, str]:
    """Integer seeds in numeric order, anything else after them."""
    number = isinstance(o.seed, int) and not isinstance(o.seed, bool)
    return not number, float(o.seed) if number else 0.0, str(o.seed)


def factor_effects(
    obs: Sequence[Obs],
    levels: Mapping[str, Sequence[str]],
    confounded: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[Effect], int]:
    """Every pair of each factor's (ordered) levels on matched runs; and how many pairs had no
    matched stratum. ``confounded``: per factor, the keys that changed along with it."""
    effects, unmatched = [], 0
    confounded = confounded or {}
    for factor, order in levels.items():
        for i, level in enumerate(order):
            for vs in order[i + 1 :]:
                samples = matched_samples(obs, factor, level, vs)
                if samples is None:
                    unmatched += 1
                    continue
                a, b, strata, balanced = samples
                result = welch(a, b)
                also = tuple(confounded.get(factor, ()))
                effects.append(Effect(
                    factor, level, vs, strata, balanced, result, effect_verdict(result), also
                ))  # fmt: skip
    return effects, unmatched


# ---------------------------------------------------------------------------- groups


@dataclass
class Group:
    """Runs that differ only in the seed; ``stats`` over its completed runs."""

    label: str  # factor=level ... (the varying keys only), "(nothing varied)" when none
    levels: dict[str, str]  # factor -> level
    setting: dict[str, Any]  # the report's varying keys (seed aside) -> value
    config: dict[str, Any]  # flattened resolved config of its first run ({} if unreadable)
    runs: list[str]
    seeds: list[Any]
    failed: int
    values: dict[str, list[float]]  # metric -> values of completed runs
    experiment: str | None = None  # the named experiment (`experiment=`) all its runs are, if any
    pruned: int = 0  # runs an Optuna search's pruner stopped: neither completed nor failed
    stats: dict[str, Stat] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stats = {m: describe(self.values.get(m, [])) for m in METRICS}

    @property
    def n(self) -> int:
        return len(self.runs) - self.failed - self.pruned

    @property
    def backend(self) -> str:
        return str(self.config.get("backend.name", "?"))


def setting_diff(a: Group, b: Group) -> list[str]:
    """The varying keys whose values differ between two groups."""
    keys = dict.fromkeys([*a.setting, *b.setting])
    return [k for k in keys if not _same(a.setting.get(k), b.setting.get(k))]


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, int | float) and isinstance(y, int | float):
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    return x == y
