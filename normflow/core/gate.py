"""The champion/challenger gate: promote a new version only if it is no worse on the same holdout."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

DECISION_TAG_PREFIX = "normflow.gate."


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger takes the champion alias, why, and the scores behind it."""

    promote: bool
    reason: str
    challenger_mse: float | None = None
    champion_mse: float | None = None
    champion_version: str | None = None
    outcome: str | None = None  # the decision's name when it is neither "promoted" nor "not promoted"

    @property
    def label(self) -> str:
        """``promoted``, ``not promoted`` or ``nothing new``."""
        return self.outcome or ("promoted" if self.promote else "not promoted")

    def tags(self) -> dict[str, str]:
        """The decision as tags for the model version and the run."""
        tags = {
            DECISION_TAG_PREFIX + "decision": self.label,
            DECISION_TAG_PREFIX + "reason": self.reason,
        }
        if self.challenger_mse is not None:
            tags[DECISION_TAG_PREFIX + "challenger_holdout_mse"] = repr(self.challenger_mse)
        if self.champion_mse is not None:
            tags[DECISION_TAG_PREFIX + "champion_holdout_mse"] = repr(self.champion_mse)
        if self.champion_version is not None:
            tags[DECISION_TAG_PREFIX + "champion_version"] = self.champion_version
        return tags

    def held(self, version: str) -> GateDecision:
        """The same scores, not acted on: the champion is held; the reason says what the gate would have done."""
        would = "promoted" if self.promote else "not promoted"
        return replace(
            self,
            promote=False,
            reason=f"champion version {version} is held (promote.py --release lifts the hold); "
            f"the gate would have {would} this version: {self.reason}",
        )

    def lost_race(self, winner: str | None) -> GateDecision:
        """The same decision, overruled: another run moved the champion first."""
        return replace(
            self,
            promote=False,
            reason=f"lost the race: the champion moved to version {winner} while this run was deciding",
        )


def nothing_new(version: str) -> GateDecision:
    """Same data files (by digest), settings and training code as a registered version's run: nothing to register."""
    return GateDecision(
        False,
        f"nothing new: the data files (by digest), settings and training code are those of version {version}'s run; "
        "nothing registered",
        champion_version=version,
        outcome="nothing new",
    )


def gate(
    challenger_mse: float | None,
    champion_mse: float | None,
    champion_version: str | None,
    tolerance: float,
    noise_floor: float = 0.0,
    incomparable: tuple[str, bool] | None = None,
) -> GateDecision:
    """Promote when ``challenger <= champion * (1 + tolerance)`` (plus float noise) on the same holdout.

    Without a holdout there is nothing to compare on, and the new version is promoted as before
    the gate existed; without a champion, the first version wins by default. ``incomparable``
    (a reason, and whether to promote anyway) covers champions that cannot be scored fairly.
    """
    if challenger_mse is None:
        return GateDecision(True, "no holdout: promoted without comparison", champion_version=champion_version)
    if champion_version is None:
        return GateDecision(True, "no champion yet", challenger_mse)
    if incomparable is not None:
        reason, promote_anyway = incomparable
        return GateDecision(promote_anyway, reason, challenger_mse, None, champion_version)
    if champion_mse is None:
        return GateDecision(
            False,
            f"champion version {champion_version} has no holdout score; compare them by hand, then promote one by hand",
            challenger_mse,
            None,
            champion_version,
        )
    limit = champion_mse * (1.0 + tolerance) + noise_floor
    if challenger_mse <= limit:
        reason = f"holdout MSE {challenger_mse:.6g} <= champion's {champion_mse:.6g} (tolerance {tolerance:g})"
        return GateDecision(True, reason, challenger_mse, champion_mse, champion_version)
    reason = f"holdout MSE {challenger_mse:.6g} > champion's {champion_mse:.6g} (tolerance {tolerance:g})"
    return GateDecision(False, reason, challenger_mse, champion_mse, champion_version)


SAMPLING_Z = 2.0
"""How many standard errors of a holdout MSE a challenger may be worse by, under ``auto`` tolerance."""
CONTRADICTION_P = 1e-3
"""A new file contradicts the champion when its own least squares beats the champion's coefficients on it with
a p-value below this (the F test of the champion's coefficients on the file's rows)."""
NEGLIGIBLE_SPREAD = 1e-6
"""A gain below this fraction of the target's standard deviation (root mean square per row) is rounding, never a
contradiction: an exact-fit file and a champion fit exactly on other rows differ by float noise only."""


def mse_relative_error(rows: int) -> float:
    """The relative standard error of a mean squared error over ``rows`` rows: ``sqrt(2 / n)`` for roughly
    normal residuals."""
    return math.sqrt(2.0 / max(rows, 1))


def sampling_tolerance(holdout_rows: int) -> float:
    """The relative sampling error of a mean squared error over ``holdout_rows`` rows, times :data:`SAMPLING_Z`:
    two models within that of each other on the same holdout are not told apart by it."""
    return SAMPLING_Z * mse_relative_error(holdout_rows)


@dataclass(frozen=True)
class FileCheck:
    """A new file judged by the F test: is its own least-squares fit significantly better than the champion's
    coefficients on its rows? (Not: is its error larger than the champion's own, which noisier data of the same
    relation always is.)"""

    path: str
    rows: int
    mse: float  # the champion's mean squared error on the file
    own_mse: float  # the file's own least-squares mean squared error
    f_statistic: float
    f_dof: tuple[int, int]
    p_value: float  # nan when the file has too few rows to judge
    negligible: bool  # the champion's extra error is float noise

    @property
    def contradicts(self) -> bool:
        """The file's rows follow another relation than the champion's."""
        return not self.negligible and self.p_value < CONTRADICTION_P

    def describe(self) -> str:
        """One clause naming the file and the figures."""
        return (
            f"{self.path} ({self.rows} rows) has MSE {self.mse:.6g} under the champion against {self.own_mse:.6g} "
            f"under its own least squares: F {self.f_statistic:.4g} on {self.f_dof[0]} and {self.f_dof[1]} DF, "
            f"p {self.p_value:.3g}"
        )


def check_new_file(path: str, rows: int, mse: float, own_mse: float, terms: int, target_variance: float) -> FileCheck:
    """The F test of the champion's coefficients on a new file: ``F = ((RSS_c - RSS_own) / k) / (RSS_own / (n - k))``
    with ``k`` the file's own fitted terms (intercept included). Too few rows to judge (``n <= k``) never
    contradicts."""
    from scipy.stats import f as f_distribution

    gain = max(mse - own_mse, 0.0) * rows
    dof = rows - terms
    negligible = gain / max(rows, 1) <= NEGLIGIBLE_SPREAD**2 * target_variance
    if dof <= 0:
        return FileCheck(path, rows, mse, own_mse, math.nan, (terms, dof), math.nan, negligible)
    own = own_mse * rows
    if own <= 0:
        statistic, p = (math.inf, 0.0) if gain > 0 else (math.nan, math.nan)
    else:
        statistic = (gain / terms) / (own / dof)
        p = float(f_distribution.sf(statistic, terms, dof))
    return FileCheck(path, rows, mse, own_mse, statistic, (terms, dof), p, negligible)


def contradiction(checks: list[FileCheck], champion_version: str, challenger_mse: float | None) -> GateDecision | None:
    """Not promoted when a new file contradicts the champion; None when none does."""
    bad = [check for check in checks if check.contradicts]
    if not bad:
        return None
    reason = (
        f"new data contradicts champion version {champion_version}: "
        + "; ".join(c.describe() for c in bad)
        + ". Check the file; if the relation really changed, promote by hand or retrain with --allow-contradicting-files"
    )
    return GateDecision(False, reason, challenger_mse, None, champion_version)
