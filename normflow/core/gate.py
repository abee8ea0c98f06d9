"""The champion/challenger gate: promote a new version only if it is no worse on the same holdout."""

from __future__ import annotations

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

    def tags(self) -> dict[str, str]:
        """The decision as tags for the model version and the run."""
        tags = {
            DECISION_TAG_PREFIX + "decision": "promoted" if self.promote else "not promoted",
            DECISION_TAG_PREFIX + "reason": self.reason,
        }
        if self.challenger_mse is not None:
            tags[DECISION_TAG_PREFIX + "challenger_holdout_mse"] = repr(self.challenger_mse)
        if self.champion_mse is not None:
            tags[DECISION_TAG_PREFIX + "champion_holdout_mse"] = repr(self.champion_mse)
        if self.champion_version is not None:
            tags[DECISION_TAG_PREFIX + "champion_version"] = self.champion_version
        return tags

    def lost_race(self, winner: str | None) -> "GateDecision":
        """The same decision, overruled: another run moved the champion first."""
        return replace(
            self,
            promote=False,
            reason=f"lost the race: the champion moved to version {winner} while this run was deciding",
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
