"""Exact full-batch gradient descent on mean squared error, from moments alone (pure torch).

For a linear model ``z @ w + b`` on normalized features ``z = (x - shift) / scale`` the
loss and its gradients depend on the rows only through their moments (docs/architecture.md,
"The math"; with ``mz = (mean_x - shift) / scale``, ``Szz = C / (n scale scale')``, ``Szy = Cxy / (n scale)``):

    loss   = w'Szz w - 2 w'Szy + Syy + e^2        e = mz.w + b - my
    grad_w = 2 (Szz w - Szy) + 2 e mz             grad_b = 2 e

so every epoch costs O(d^2) however many rows were read. The loss is evaluated as
``L* + (w - w*)' Szz (w - w*) + e^2`` around the closed-form optimum, which stays
non-negative and accurate where the expanded form cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from normflow.core.errors import DivergenceError
from normflow.core.moments import DTYPE, Moments
from normflow.core.scalers import Scaler

DIVERGENCE_FACTOR = 1e6
"""A loss this many times the first epoch's means training diverged (GD with a stable
learning rate never increases the loss of a convex quadratic)."""


@dataclass(frozen=True)
class QuadraticProblem:
    """Mean squared error of ``z @ w + b`` as a quadratic in ``(w, b)``, plus its optimum."""

    szz: torch.Tensor  # (d, d) covariance of z (population)
    szy: torch.Tensor  # (d,) covariance of z with y
    syy: torch.Tensor  # () variance of y
    mz: torch.Tensor  # (d,) mean of z
    my: torch.Tensor  # () mean of y
    w_opt: torch.Tensor  # (d,) closed-form least-squares weights
    b_opt: torch.Tensor  # () closed-form bias
    loss_opt: torch.Tensor  # () smallest achievable loss, >= 0

    @property
    def dim(self) -> int:
        """Number of features."""
        return int(self.mz.shape[0])


@dataclass(frozen=True)
class Curvature:
    """How hard the problem is for gradient descent."""

    condition_number: float  # lambda_max / lambda_min of the Hessian (inf when singular)
    max_stable_lr: float  # 2 / lambda_max: any larger learning rate diverges


@dataclass(frozen=True)
class DescentResult:
    """What a gradient-descent run produced."""

    weights: torch.Tensor  # (d,) in normalized space
    bias: torch.Tensor  # ()
    losses: torch.Tensor  # (epochs_run,) loss before each epoch's update
    gradients: torch.Tensor  # (epochs_run, d) gradient of every weight per epoch
    final_loss: float  # loss at the returned parameters
    diverged_at: int | None  # epoch whose loss was non-finite or past the bound

    @property
    def epochs_run(self) -> int:
        """Epochs whose loss and gradients were computed."""
        return int(self.losses.shape[0])


def build_problem(moments: Moments, scaler: Scaler) -> QuadraticProblem:
    """The normalized-space quadratic for features ``[:d]`` and target ``[d]`` of ``moments``."""
    d = len(scaler.feature_names)
    if moments.width != d + 1:
        raise ValueError(f"moments have {moments.width} columns, expected {d} features + 1 target")
    device = moments.mean.device
    n = moments.count
    shift = scaler.shift_tensor(device)
    scale = scaler.scale_tensor(device)
    c = moments.comoment
    szz = c[:d, :d] / (n * torch.outer(scale, scale))
    szy = c[:d, d] / (n * scale)
    syy = c[d, d] / n
    mz = (moments.mean[:d] - shift) / scale
    my = moments.mean[d]
    w_opt = _least_squares(szz, szy)
    loss_opt = (syy - szy @ w_opt).clamp_min(0.0)
    b_opt = my - mz @ w_opt
    return QuadraticProblem(szz, szy, syy, mz, my, w_opt, b_opt, loss_opt)


def _least_squares(szz: torch.Tensor, szy: torch.Tensor) -> torch.Tensor:
    """Solution of ``Szz w = Szy``, robust to singular (constant columns) and badly scaled Szz.

    Solved in the Jacobi-scaled system ``D^-1 Szz D^-1`` (unit diagonal), so raw features whose
    scales differ by 1e8 or more do not lose their small directions to pinv's cutoff.
    """
    if szz.numel() == 0:
        return szz.new_zeros(0)
    diagonal = torch.diagonal(szz).clamp_min(0).sqrt()
    inverse = torch.where(diagonal > 0, 1.0 / diagonal, torch.zeros_like(diagonal))
    scaled = szz * torch.outer(inverse, inverse)
    return inverse * (torch.linalg.pinv(scaled, hermitian=True) @ (inverse * szy))


EXPANDED_FORM_MARGIN = 1e-6
"""The expanded loss is used while it exceeds this fraction of its terms' magnitude (relative error
<= eps / margin ~ 2e-10); below that, cancellation sets in and the form around the optimum is used."""


def loss_at(problem: QuadraticProblem, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error at ``(w, b)``: accurate far from the optimum and non-negative near it.

    Far away, the expanded form ``w'Szz w - 2 w'Szy + Syy + e^2`` is exact to rounding. Near the
    optimum its terms cancel (it can even go negative), so there it is evaluated as
    ``L* + (w - w*)' Szz (w - w*) + e^2``, whose accuracy depends on how well ``w*`` is known
    (badly conditioned features limit that, as they limit any method working from moments).
    """
    e = problem.mz @ w + b - problem.my
    quadratic = w @ problem.szz @ w
    linear = w @ problem.szy
    expanded = quadratic - 2.0 * linear + problem.syy + e * e
    magnitude = quadratic.abs() + 2.0 * linear.abs() + problem.syy + e * e
    diff = w - problem.w_opt
    around_optimum = problem.loss_opt + diff @ problem.szz @ diff + e * e
    return torch.where(expanded > EXPANDED_FORM_MARGIN * magnitude, expanded, around_optimum.clamp_min(0.0))


def gradients_at(problem: QuadraticProblem, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the mean squared error with respect to ``w`` and ``b``."""
    e = problem.mz @ w + b - problem.my
    return 2.0 * (problem.szz @ w - problem.szy) + 2.0 * e * problem.mz, 2.0 * e


def hessian(problem: QuadraticProblem) -> torch.Tensor:
    """The constant Hessian of the loss in ``(w, b)``: ``2 [[Szz + mz mz', mz], [mz', 1]]``."""
    d = problem.dim
    h = problem.szz.new_empty(d + 1, d + 1)
    h[:d, :d] = problem.szz + torch.outer(problem.mz, problem.mz)
    h[:d, d] = problem.mz
    h[d, :d] = problem.mz
    h[d, d] = 1.0
    return 2.0 * h


def curvature(problem: QuadraticProblem) -> Curvature:
    """Condition number of the Hessian and the largest learning rate GD survives."""
    eigenvalues = torch.linalg.eigvalsh(hessian(problem))
    largest = float(eigenvalues[-1])
    smallest = float(eigenvalues[0])
    tiny = largest * eigenvalues.shape[0] * torch.finfo(DTYPE).eps
    condition = largest / smallest if smallest > tiny else math.inf
    return Curvature(condition_number=condition, max_stable_lr=2.0 / largest)


def gradient_descent(
    problem: QuadraticProblem,
    lr: float,
    epochs: int,
    divergence_factor: float = DIVERGENCE_FACTOR,
) -> DescentResult:
    """Run full-batch GD from ``w = b = 1`` (the tutorial's start) for ``epochs`` epochs.

    Stops early, with ``diverged_at`` set, at the first epoch whose loss is not finite or
    exceeds ``divergence_factor`` times the first epoch's loss.
    """
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError("learning rate must be a positive number")
    device = problem.mz.device
    d = problem.dim
    w = torch.ones(d, dtype=DTYPE, device=device)
    b = torch.ones((), dtype=DTYPE, device=device)
    losses = torch.empty(epochs, dtype=DTYPE, device=device)
    grads = torch.empty(epochs, d, dtype=DTYPE, device=device)
    bound = math.inf
    diverged_at: int | None = None
    epoch = 0
    for epoch in range(epochs):
        loss = loss_at(problem, w, b)
        grad_w, grad_b = gradients_at(problem, w, b)
        losses[epoch] = loss
        grads[epoch] = grad_w
        value = float(loss)
        if epoch == 0:
            bound = divergence_factor * value if value > 0 else math.inf
        if not math.isfinite(value) or value > bound:
            diverged_at = epoch
            break
        w = w - lr * grad_w
        b = b - lr * grad_b
    run = epoch + 1
    final = float(losses[epoch]) if diverged_at is not None else float(loss_at(problem, w, b))
    return DescentResult(w, b, losses[:run], grads[:run], final, diverged_at)


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
        last_loss = float(result.losses[epoch])
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
