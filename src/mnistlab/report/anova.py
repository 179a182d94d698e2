"""Factorial analysis for mnistlab.report: when every combination of the factors' levels ran, an
analysis of variance gives each factor's main effect and each interaction an F test, and linear
contrasts of the cell means give each effect a difference with its CI and p.

Why beside the matched Welch comparisons of :mod:`~mnistlab.report.stats`: in a full factorial
every run informs every effect, and the other factors' effects are part of the model instead of
the noise, so the seeds' spread alone sets the error (one pooled residual variance, with the
residual degrees of freedom). The Welch comparisons pool the other factors' strata into each
sample, which counts their effects as noise.

Rules (statsmodels' OLS on sum-to-zero coded factors, ``anova_lm`` type III):

- *Factorial*: every combination of the levels of the factors (one factor or more) holds a
  completed run, and some combination more than one (seeds): the model has every interaction,
  and the seeds' spread within the combinations (cells) is the error. With one run per cell,
  or runs that agree exactly, nothing measures that spread, and there is no analysis.
- *Main effect* of a pair of levels: the difference of their marginal means, each the unweighted
  mean of its cells (least-squares means), so a missing seed does not tilt it.
- *Interaction contrast* of factors A and B: A's effect (level − vs) at one level of B minus the
  same effect at another level of B, each averaged over the remaining factors; zero when A's
  effect does not depend on B. *Simple effects* of a two-level factor at each level of another
  say how large its effect is there.
- Intervals: effect ± t(0.975, residual df)·se. p: two-sided t test of the contrast; each
  contrast alone (no correction for the number of contrasts: the F tests are the primary tests).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from mnistlab.report.stats import ALPHA, Comparison, Obs, t_quantile

INTERACTION = " × "  # joins the factors of an interaction term's name


@dataclass(frozen=True)
class Term:
    """One row of the ANOVA table."""

    factors: tuple[str, ...]  # one factor: a main effect; more: their interaction
    df: float
    sum_sq: float
    f: float
    p: float
    partial_eta_sq: float  # SS_term / (SS_term + SS_residual): the share of variance it explains

    @property
    def name(self) -> str:
        return INTERACTION.join(self.factors)

    @property
    def significant(self) -> bool:
        return self.p < ALPHA


@dataclass(frozen=True)
class Contrast:
    """A linear contrast of the cell means with its t test."""

    kind: str  # "main", "interaction" or "simple"
    factors: tuple[str, ...]  # the term it belongs to
    what: str  # in words: "adam - rmsprop", "(adam - rmsprop) at flip - at none"
    result: Comparison  # diff, ci, p; df = the residual df


@dataclass(frozen=True)
class Factorial:
    """The analysis of one metric over a full factorial design."""

    metric: str
    factors: list[str]
    levels: dict[str, list[str]]  # factor -> its levels, in report order
    runs: int
    per_cell: tuple[int, int]  # fewest and most runs in a cell
    residual_df: int
    mse: float  # residual mean square: the seeds' variance
    terms: list[Term]
    contrasts: list[Contrast]
    cells: dict[tuple[str, ...], list[float]]  # levels (in factor order) -> values

    def term(self, *factors: str) -> Term | None:
        return next((t for t in self.terms if set(t.factors) == set(factors)), None)

    def main_effect(self, factor: str, level: str, vs: str) -> Comparison | None:
        """level − vs on the marginal means, read either way round from the contrasts."""
        for c in self.contrasts:
            if c.kind == "main" and c.factors == (factor,):
                if c.what == f"{level} - {vs}":
                    return c.result
                if c.what == f"{vs} - {level}":
                    return c.result.reversed()
        return None

    def cell_means(self, a: str, b: str) -> dict[tuple[str, str], tuple[float, float, float]]:
        """(level of a, level of b) -> mean over the other factors' cells and its 95 % CI, the
        interval from the model's residual variance (what the interaction figure draws)."""
        i, j = self.factors.index(a), self.factors.index(b)
        out = {}
        for la in self.levels[a]:
            for lb in self.levels[b]:
                cells = [v for k, v in self.cells.items() if k[i] == la and k[j] == lb]
                means = [float(np.mean(v)) for v in cells]
                # var of the unweighted mean of cell means: mse * sum(1/n_c) / k^2
                se = math.sqrt(self.mse * sum(1 / len(v) for v in cells)) / len(cells)
                half = t_quantile(self.residual_df) * se
                mean = float(np.mean(means))
                out[(la, lb)] = (mean, mean - half, mean + half)
        return out


def factorial_analysis(
    obs: Sequence[Obs], levels: Mapping[str, Sequence[str]], metric: str = "test_acc"
) -> Factorial | None:
    """The ANOVA and contrasts of ``obs`` (see the module docstring), or None when the design is
    not a full factorial with replicates. ``levels``: each factor's levels in report order."""
    factors = [f for f, ls in levels.items() if len(ls) >= 2]
    if not factors or not obs:
        return None
    order = {f: list(levels[f]) for f in factors}
    cells: dict[tuple[str, ...], list[float]] = {}
    for o in obs:
        cells.setdefault(tuple(o.levels[f] for f in factors), []).append(o.value)
    if len(cells) != math.prod(len(ls) for ls in order.values()):
        return None
    if len(obs) <= len(cells):  # one run per cell: nothing measures the seeds' spread
        return None
    fit, names = _fit(obs, factors)
    mse = float(fit.mse_resid)
    if not mse > 0:  # the seeds agree to the last digit: no spread to test against
        return None
    terms = _anova_terms(fit, names, factors)
    counts = np.array([len(cells[cell]) for cell in itertools.product(*order.values())])
    contrasts = _contrasts(fit, factors, order, names, counts)
    return Factorial(
        metric=metric, factors=factors, levels=order, runs=len(obs),
        per_cell=(min(len(v) for v in cells.values()), max(len(v) for v in cells.values())),
        residual_df=int(fit.df_resid), mse=mse, terms=terms, contrasts=contrasts,
        cells=cells,
    )  # fmt: skip


def _fit(obs: Sequence[Obs], factors: Sequence[str]):  # noqa: ANN202 (statsmodels)
    """The OLS fit of the metric on sum-coded factors; ``names``: factor -> its column name."""
    import pandas as pd  # statsmodels' formulas take a DataFrame
    import statsmodels.formula.api as smf

    names = {f: f"f{i}" for i, f in enumerate(factors)}
    frame = pd.DataFrame({names[f]: [o.levels[f] for o in obs] for f in factors})
    frame["y"] = [o.value for o in obs]
    rhs = " * ".join(f"C({names[f]}, Sum)" for f in factors)  # every interaction
    return smf.ols(f"y ~ {rhs}", data=frame).fit(), names


def _anova_terms(fit, names: Mapping[str, str], factors: Sequence[str]) -> list[Term]:  # noqa: ANN001
    from statsmodels.stats.anova import anova_lm

    table = anova_lm(fit, typ=3)
    by_column = {v: k for k, v in names.items()}
    ss_resid = float(table.loc["Residual", "sum_sq"])
    terms = []
    for label, row in table.iterrows():
        if label in ("Intercept", "Residual"):
            continue
        term = tuple(by_column[part.split(",")[0].removeprefix("C(")]
                     for part in str(label).split(":"))  # fmt: skip
        ss = float(row["sum_sq"])
        terms.append(Term(
            factors=tuple(sorted(term, key=factors.index)), df=float(row["df"]), sum_sq=ss,
            f=float(row["F"]), p=float(row["PR(>F)"]),
            partial_eta_sq=ss / (ss + ss_resid) if ss + ss_resid > 0 else 0.0,
        ))  # fmt: skip
    return sorted(terms, key=lambda t: (len(t.factors), [factors.index(f) for f in t.factors]))


def _contrasts(
    fit,  # noqa: ANN001
    factors: Sequence[str],
    order: Mapping[str, Sequence[str]],
    names: Mapping[str, str],
    counts: np.ndarray,
) -> list[Contrast]:
    """Every main-effect pair, every two-way interaction contrast, and the simple effects of
    each two-level factor at each level of every other (module docstring)."""
    grid = list(itertools.product(*(order[f] for f in factors)))
    # each cell's row of the design matrix: every cell ran, so the fit's own rows hold them all
    # (taken from there, not rebuilt, so that either of statsmodels' formula engines will do)
    frame = fit.model.data.frame
    first = {}
    for i, key in enumerate(zip(*(frame[names[f]] for f in factors), strict=True)):
        first.setdefault(tuple(key), i)
    rows = np.asarray(fit.model.exog)[[first[cell] for cell in grid]]
    at = {f: np.array([cell[i] for cell in grid]) for i, f in enumerate(factors)}

    def mean_of(**where: str) -> np.ndarray:
        """The weights of the unweighted mean of the cells at the given levels."""
        mask = np.all([at[f] == level for f, level in where.items()], axis=0)
        return mask / mask.sum()

    def contrast(kind: str, term: tuple[str, ...], what: str, weights: np.ndarray) -> Contrast:
        return Contrast(kind, term, what, _t_test(fit, rows, weights, counts))

    out = []
    for f in factors:
        for i, level in enumerate(order[f]):
            for vs in order[f][i + 1:]:
                w = mean_of(**{f: level}) - mean_of(**{f: vs})
                out.append(contrast("main", (f,), f"{level} - {vs}", w))
    for a, b in itertools.combinations(factors, 2):
        for x, y in itertools.combinations(order[a], 2):
            for u, v in itertools.combinations(order[b], 2):
                w = (mean_of(**{a: x, b: u}) - mean_of(**{a: y, b: u})
                     - mean_of(**{a: x, b: v}) + mean_of(**{a: y, b: v}))  # fmt: skip
                out.append(contrast("interaction", (a, b), f"({x} - {y}) at {u} - at {v}", w))
        for first, second in ((a, b), (b, a)):
            if len(order[first]) != 2:
                continue
            x, y = order[first]
            for u in order[second]:
                w = mean_of(**{first: x, second: u}) - mean_of(**{first: y, second: u})
                out.append(contrast("simple", (first, second), f"{x} - {y} at {u}", w))
    return out


def _t_test(fit, rows: np.ndarray, weights: np.ndarray, counts: np.ndarray) -> Comparison:  # noqa: ANN001
    """The contrast ``weights`` of the cell means as a Comparison: its positive side (mean_a,
    runs n_a) minus its negative side, CI and p with the residual df."""
    from scipy import stats

    params, cov = fit.params.to_numpy(), fit.cov_params().to_numpy()
    pos, neg = np.clip(weights, 0, None), np.clip(-weights, 0, None)
    row = weights @ rows
    estimate, variance = float(row @ params), float(row @ cov @ row)
    base = Comparison(
        int(counts[pos > 0].sum()), int(counts[neg > 0].sum()),
        float(pos @ rows @ params), float(neg @ rows @ params), estimate,
    )  # fmt: skip
    if not variance > 0:
        return base
    se = math.sqrt(variance)
    df = float(fit.df_resid)
    t, half = estimate / se, t_quantile(df) * se
    return replace(base, df=df, t=t, p=float(2 * stats.t.sf(abs(t), df)),
                   ci_low=estimate - half, ci_high=estimate + half)  # fmt: skip
