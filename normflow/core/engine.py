"""Exact full-batch gradient descent on mean squared error, from moments alone (pure torch).

For a linear model ``z @ w + b`` on normalized features ``z = (x - shift) / scale`` the
loss and its gradients depend on the rows only through their moments (docs/architecture.md,
"The math"; with ``mz = (mean_x - shift) / scale``, ``Szz = C / (n scale scale')``, ``Szy = Cxy / (n scale)``):

    loss   = w'Szz w - 2 w'Szy + Syy + e^2        e = mz.w + b - my
    grad_w = 2 (Szz w - Szy) + 2 e mz             grad_b = 2 e

so every epoch costs O(d^2) however many rows were read. The optimum, the curvature and the
loss near the optimum come from the triangular statistics instead (``R`` of ``[1, x - s, y - s_y]``,
see :mod:`normflow.core.triangular`): with ``Rz`` the R factor of ``[1, z, y - s_y]``, the loss of
``(w, b)`` is ``|Rz [s_y - b, -w, 1]|^2 / n``, non-negative and accurate where the expanded form
cancels, and the Hessian's eigenvalues are ``2 sigma^2 / n`` for the singular values of ``Rz``'s
``[1, z]`` block, without squaring the condition number. Under whitening ``Szz`` is ``I`` and
``Szy`` is ``rxy / sqrt(n)`` by construction, so every quantity comes from R.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from normflow.core.errors import DivergenceError
from normflow.core.moments import DTYPE
from normflow.core.scalers import Scaler
from normflow.core.table_stats import TableStatistics
from normflow.core.triangular import LeastSquares, Triangular, feature_blocks, least_squares

DIVERGENCE_FACTOR = 1e6
"""A loss this many times the first epoch's means training diverged (GD with a stable
learning rate never increases the loss of a convex quadratic)."""

KEPT_EPOCH_VALUES = 1 << 22
"""Per-epoch values (a loss and ``d`` gradients each) kept for every epoch, 32 MB of float64: about 1.4
million epochs of a two-feature model, 2,000 of a 2,000-feature one (:data:`MIN_KEPT_EPOCHS` at least)."""

MIN_KEPT_EPOCHS = 2000
"""Epochs always kept whole, whatever the width (the default ``epochs``)."""

THINNED_GROWTH = 1.01
"""Past the epochs kept whole, an epoch is kept each time the epoch number has grown by 1% (and the last
one): about 1,800 more from 2,000 to 1e11 epochs, finer than the logged series' spacing, so the storage
grows with the logarithm of ``epochs``, never with ``epochs``."""


def kept_epochs(d: int) -> int:
    """Epochs whose loss and gradients are all kept for a model of ``d`` features (later ones are thinned)."""
    return max(MIN_KEPT_EPOCHS, KEPT_EPOCH_VALUES // (d + 1))


@dataclass(frozen=True)
class QuadraticProblem:
    """Mean squared error of ``z @ w + b`` as a quadratic in ``(w, b)``, plus its optimum."""

    szz: torch.Tensor  # (d, d) covariance of z (population)
    szy: torch.Tensor  # (d,) covariance of z with y
    syy: torch.Tensor  # () variance of y
    mz: torch.Tensor  # (d,) mean of z
    my: torch.Tensor  # () mean of y
    w_opt: torch.Tensor  # (d,) least-squares weights (from R)
    b_opt: torch.Tensor  # () least-squares bias
    loss_opt: torch.Tensor  # () smallest achievable loss, >= 0 (RSS / n from R)
    rz: torch.Tensor  # (d + 2, d + 2) R factor of [1, z, y - shift_y]
    shift_y: torch.Tensor  # () the target's shift in rz
    count: int  # rows behind the statistics
    optimum: LeastSquares  # the raw-unit fit, residual spread, R^2 and any collinear features

    @property
    def dim(self) -> int:
        """Number of features."""
        return int(self.mz.shape[0])


@dataclass(frozen=True)
class Curvature:
    """How hard the problem is for gradient descent."""

    condition_number: float  # lambda_max / lambda_min of the Hessian (inf when singular)
    max_stable_lr: float  # 2 / lambda_max: any larger learning rate diverges
    smallest_eigenvalue: float = 0.0  # smallest non-zero eigenvalue of the Hessian (directions that move the loss)
    largest_eigenvalue: float = math.inf  # lambda_max of the Hessian

    @property
    def best_lr(self) -> float:
        """The best constant learning rate, ``2 / (lambda_max + lambda_min)`` (lambda_min: smallest non-zero)."""
        return 2.0 / (self.largest_eigenvalue + self.smallest_eigenvalue)

    def contraction(self, lr: float) -> float:
        """Worst-case factor by which the distance to the optimum shrinks per epoch at ``lr``.

        Directions of zero curvature (exactly collinear features) do not change the loss and are left out.
        """
        return max(abs(1.0 - lr * self.smallest_eigenvalue), abs(1.0 - lr * self.largest_eigenvalue))

    def epochs_needed(self, lr: float, tolerance: float) -> float:
        """Epochs for the optimality gap to fall to ``tolerance`` of its start (the gap shrinks by rate^2)."""
        rate = self.contraction(lr)
        if rate >= 1.0:
            return math.inf
        if rate <= 0.0 or tolerance >= 1.0:
            return 1.0
        return max(1.0, math.ceil(math.log(tolerance) / (2.0 * math.log(rate)) - 1e-9))


@dataclass(frozen=True)
class DescentResult:
    """What a gradient-descent run produced."""

    weights: torch.Tensor  # (d,) in normalized space
    bias: torch.Tensor  # ()
    losses: torch.Tensor  # (kept,) loss before each kept epoch's update: every epoch, unless ``thinned``
    gradients: torch.Tensor  # (kept, d) gradient of every weight per kept epoch
    final_loss: float  # loss at the returned parameters
    diverged_at: int | None  # epoch whose loss was non-finite or past the bound
    converged_at: int | None = None  # epoch whose optimality gap first met the tolerance (training stopped there)
    thinned: tuple[int, ...] = ()  # the epochs of the last len(thinned) entries, when later epochs were thinned

    @property
    def epochs_run(self) -> int:
        """Epochs whose loss and gradients were computed."""
        return self.thinned[-1] + 1 if self.thinned else int(self.losses.shape[0])

    def epoch_numbers(self) -> list[int] | None:
        """The epoch of each kept loss when later epochs were thinned; None when every epoch was kept."""
        return [*range(len(self.losses) - len(self.thinned)), *self.thinned] if self.thinned else None

    @property
    def updates(self) -> int:
        """Gradient steps behind the returned parameters (a run stopped at epoch k took k steps)."""
        stopped = self.converged_at if self.converged_at is not None else self.diverged_at
        return self.epochs_run if stopped is None else stopped


def build_problem(statistics: TableStatistics, scaler: Scaler) -> QuadraticProblem:
    """The normalized-space quadratic for features ``[:d]`` and target ``[d]`` of ``statistics``.

    Diagonal scalers take ``Szz``, ``Szy``, ``Syy`` and ``mz`` from the moments (the tutorial's
    trajectories, to rounding); whitening takes them from R, where they are exact. The optimum
    always comes from R: a triangular solve, never the normal equations.
    """
    moments, triangular = statistics.moments, statistics.triangular
    d = len(scaler.feature_names)
    if moments.width != d + 1:
        raise ValueError(f"moments have {moments.width} columns, expected {d} features + 1 target")
    device = moments.mean.device
    triangular = triangular.to(device)
    n = moments.count
    shift = scaler.shift_tensor(device)
    matrix = scaler.matrix_tensor(device)
    optimum = least_squares(triangular, scaler.feature_names)
    if scaler.matrix is None:
        scale = scaler.scale_tensor(device)
        c = moments.comoment
        szz = c[:d, :d] / (n * torch.outer(scale, scale))
        szy = c[:d, d] / (n * scale)
        syy = c[d, d] / n
        mz = (moments.mean[:d] - shift) / scale
        w_opt = optimum.weights * scale
        rz = _normalized_factor(triangular, d, shift, matrix)
    else:
        _, rxy, ryy = feature_blocks(triangular, d)
        szz = torch.eye(d, dtype=DTYPE, device=device)
        szy = rxy / math.sqrt(n)
        syy = (rxy @ rxy + ryy * ryy) / n
        mz = (moments.mean[:d] - shift) @ matrix
        w_opt = torch.linalg.solve(matrix, optimum.weights)
        rz = _whitened_factor(triangular, d, mz, n)
    my = moments.mean[d]
    b_opt = my - mz @ w_opt
    return QuadraticProblem(
        szz, szy, syy, mz, my, w_opt, b_opt, szz.new_tensor(optimum.loss), rz, triangular.shift[d], n, optimum
    )


def _whitened_factor(triangular: Triangular, d: int, mz: torch.Tensor, n: int) -> torch.Tensor:
    """R of ``[1, z, y - s_y]`` for whitened z, by construction (``z'z / n = I``, ``z'(y - my) = sqrt(n) rxy``).

    Written from its definition rather than multiplied out, so the z-space quadratic GD works on
    is exactly the one whose optimum is ``rxy / sqrt(n)``: the loss after one epoch at lr 0.5 is L*.
    """
    root = math.sqrt(n)
    _, rxy, ryy = feature_blocks(triangular, d)
    rz = torch.zeros(d + 2, d + 2, dtype=DTYPE, device=rxy.device)
    rz[0, 0] = root
    rz[0, 1 : d + 1] = root * mz
    rz[0, d + 1] = triangular.r[0, d + 1]
    rz[1 : d + 1, 1 : d + 1] = root * torch.eye(d, dtype=DTYPE, device=rxy.device)
    rz[1 : d + 1, d + 1] = rxy
    rz[d + 1, d + 1] = ryy
    return rz


def _normalized_factor(triangular: Triangular, d: int, shift: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """R of ``[1, z, y - s_y]`` from R of ``[1, x - s, y - s_y]``: ``R T`` with T upper block-triangular."""
    t = torch.eye(d + 2, dtype=DTYPE, device=matrix.device)
    t[0, 1 : d + 1] = (triangular.shift[:d] - shift) @ matrix
    t[1 : d + 1, 1 : d + 1] = matrix
    return triangular.r @ t


EXPANDED_FORM_MARGIN = 1e-6
"""The expanded loss is used while it exceeds this fraction of its terms' magnitude (relative error
<= eps / margin ~ 2e-10); below that, cancellation sets in and the form around the optimum is used."""


def loss_at(problem: QuadraticProblem, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error at ``(w, b)``: accurate far from the optimum and non-negative near it.

    Far away, the expanded form ``w'Szz w - 2 w'Szy + Syy + e^2`` is exact to rounding (and is
    what the tutorial's numbers are). Near the optimum its terms cancel (it can even go
    negative), so there it is the squared norm of the residual through R, ``|Rz v|^2 / n``.
    """
    e = problem.mz @ w + b - problem.my
    quadratic = w @ problem.szz @ w
    linear = w @ problem.szy
    expanded = quadratic - 2.0 * linear + problem.syy + e * e
    magnitude = quadratic.abs() + 2.0 * linear.abs() + problem.syy + e * e
    v = torch.cat([(problem.shift_y - b).reshape(1), -w, w.new_ones(1)])
    residual = problem.rz @ v
    through_r = residual @ residual / problem.count
    return torch.where(expanded > EXPANDED_FORM_MARGIN * magnitude, expanded, through_r)


def gradients_at(problem: QuadraticProblem, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the mean squared error with respect to ``w`` and ``b``."""
    e = problem.mz @ w + b - problem.my
    return 2.0 * (problem.szz @ w - problem.szy) + 2.0 * e * problem.mz, 2.0 * e


def hessian(problem: QuadraticProblem) -> torch.Tensor:
    """The constant Hessian of the loss in ``(w, b)``: ``2 Rz1' Rz1 / n`` for ``Rz1`` the ``[1, z]`` block of
    ``rz`` (ordered ``b, w``), i.e. ``2 [[Szz + mz mz', mz], [mz', 1]]``: the matrix :func:`curvature`
    reads its eigenvalues from, as singular values of ``Rz1``."""
    d = problem.dim
    rz1 = problem.rz[: d + 1, : d + 1]
    order = [*range(1, d + 1), 0]  # (b, w) -> (w, b)
    return 2.0 * (rz1.T @ rz1)[order][:, order] / problem.count


def curvature(problem: QuadraticProblem) -> Curvature:
    """Condition number of the Hessian and the largest learning rate GD survives, from R's singular values.

    The Hessian is ``2 Rz1' Rz1 / n`` for ``Rz1`` the ``[1, z]`` block of ``rz``; its eigenvalues
    are ``2 sigma^2 / n``, so a condition number up to ~1e30 is resolved (eigenvalues of the
    Hessian itself lose everything past ~1e16).
    """
    d = problem.dim
    sigma = torch.linalg.svdvals(problem.rz[: d + 1, : d + 1]).tolist()
    floor = sigma[0] * (d + 1) * torch.finfo(DTYPE).eps
    nonzero = [value for value in sigma if value > floor] or sigma[:1]
    largest = 2.0 * sigma[0] ** 2 / problem.count
    smallest = 2.0 * nonzero[-1] ** 2 / problem.count
    condition = largest / smallest if len(nonzero) == len(sigma) else math.inf
    return Curvature(
        condition_number=condition,
        max_stable_lr=2.0 / largest,
        smallest_eigenvalue=smallest,
        largest_eigenvalue=largest,
    )


def gradient_descent(
    problem: QuadraticProblem,
    lr: float,
    epochs: int,
    divergence_factor: float = DIVERGENCE_FACTOR,
    tolerance: float = 0.0,
    keep: int | None = None,
) -> DescentResult:
    """Run full-batch GD from ``w = b = 1`` (the tutorial's start) for at most ``epochs`` epochs.

    Stops early, with ``diverged_at`` set, at the first epoch whose loss is not finite or
    exceeds ``divergence_factor`` times the first epoch's loss; and, with ``converged_at`` set,
    at the first epoch whose optimality gap is at most ``tolerance`` times the starting gap
    (``tolerance`` 0 runs every epoch: the tutorial's fixed-length runs).

    The loss and gradients of the first ``keep`` epochs (default :func:`kept_epochs`) are all kept;
    later ones are thinned (:data:`THINNED_GROWTH`, the last always kept), so the storage is bounded
    whatever ``epochs`` is.
    """
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError("learning rate must be a positive number")
    device = problem.mz.device
    d = problem.dim
    w = torch.ones(d, dtype=DTYPE, device=device)
    b = torch.ones((), dtype=DTYPE, device=device)
    kept = min(epochs, kept_epochs(d) if keep is None else max(keep, 1))
    losses = torch.empty(kept, dtype=DTYPE, device=device)
    grads = torch.empty(kept, d, dtype=DTYPE, device=device)
    thinned: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    next_thinned = kept
    bound = math.inf
    optimal = float(problem.loss_opt)
    target_gap = -math.inf
    diverged_at: int | None = None
    converged_at: int | None = None
    epoch = 0
    for epoch in range(epochs):
        loss = loss_at(problem, w, b)
        grad_w, grad_b = gradients_at(problem, w, b)
        if epoch < kept:
            losses[epoch] = loss
            grads[epoch] = grad_w
        elif epoch >= next_thinned:
            thinned.append((epoch, loss, grad_w))
            next_thinned = max(epoch + 1, math.ceil(epoch * THINNED_GROWTH))
        value = float(loss)
        if epoch == 0:
            bound = divergence_factor * value if value > 0 else math.inf
            if tolerance > 0:
                target_gap = tolerance * max(value - optimal, 0.0)
        if not math.isfinite(value) or value > bound:
            diverged_at = epoch
            break
        if value - optimal <= target_gap:
            converged_at = epoch
            break
        w = w - lr * grad_w
        b = b - lr * grad_b
    run = epoch + 1
    stopped = diverged_at is not None or converged_at is not None
    final = float(loss) if stopped else float(loss_at(problem, w, b))
    if run <= kept:
        return DescentResult(w, b, losses[:run], grads[:run], final, diverged_at, converged_at)
    if thinned[-1][0] != epoch:
        thinned.append((epoch, loss, grad_w))
    losses = torch.cat([losses, torch.stack([item[1] for item in thinned])])
    grads = torch.cat([grads, torch.stack([item[2] for item in thinned])])
    epochs_kept = tuple(item[0] for item in thinned)
    return DescentResult(w, b, losses, grads, final, diverged_at, converged_at, epochs_kept)


def gradient_ratio(gradients: torch.Tensor, feature_names: list[str] | tuple[str, ...]) -> tuple[float, str, str]:
    """Largest over smallest absolute weight gradient of one epoch, with the two features named."""
    magnitudes = gradients.abs()
    big = int(torch.argmax(magnitudes))
    small = int(torch.argmin(magnitudes))
    smallest = float(magnitudes[small])
    ratio = float(magnitudes[big]) / smallest if smallest > 0 else math.inf
    return ratio, feature_names[big], feature_names[small]


def divergence_error(
    problem: QuadraticProblem,
    result: DescentResult,
    lr: float,
    feature_names: list[str] | tuple[str, ...],
    normalization: str,
) -> DivergenceError:
    """Explain a diverged run: where it blew up, why, and what to change."""
    bend = curvature(problem)
    first_loss = float(result.losses[0])
    if result.diverged_at is not None:
        epoch = result.diverged_at
        last_loss = result.final_loss  # the diverged epoch's loss
        parts = [f"training diverged at epoch {epoch} (loss {last_loss:.4g}, from {first_loss:.4g} at epoch 0)"]
    else:
        epoch = result.epochs_run
        last_loss = result.final_loss
        parts = [
            f"training is diverging: lr {lr:g} is unstable for this problem "
            f"(loss {last_loss:.4g} after {epoch} epochs, from {first_loss:.4g} at epoch 0)"
        ]
    diagnosis: dict[str, float | str] = {
        "epoch": epoch,
        "loss": last_loss,
        "condition_number": bend.condition_number,
        "max_stable_lr": bend.max_stable_lr,
        "lr": lr,
    }
    if len(feature_names) > 1:
        ratio, big, small = gradient_ratio(result.gradients[0], feature_names)
        diagnosis["gradient_ratio"] = ratio
        parts.append(f"at epoch 0 the gradient for {big!r} was {ratio:.4g}x that for {small!r}")
    parts.append(f"Hessian condition number {bend.condition_number:.4g}")
    parts.append(
        f"largest stable learning rate {bend.max_stable_lr:.3g} (lr {lr:g} is {lr / bend.max_stable_lr:.3g}x that)"
    )
    if normalization == "none":
        advice = f"normalize the features ({{normalization}} standard) or use {{lr}} below {bend.max_stable_lr:.3g}"
    else:
        advice = f"use {{lr}} below {bend.max_stable_lr:.3g}"
    message = "; ".join(parts) + ". Fix: " + advice
    return DivergenceError(message, epoch=epoch, diagnosis=diagnosis, settings=("normalization", "lr"))


def check_converging(result: DescentResult, lr: float, bend: Curvature) -> bool:
    """True when the run is converging: no blow-up, a stable learning rate, and no loss increase.

    A learning rate at or above ``2 / lambda_max`` diverges even when the blow-up has not
    shown yet in the epochs run (the loss may still be falling along other directions).
    """
    if result.diverged_at is not None or lr >= bend.max_stable_lr:
        return False
    return math.isfinite(result.final_loss) and result.final_loss <= float(result.losses[0])
