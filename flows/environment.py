"""What a command checks of its environment before any work: the MLflow store and the Prefect server it is
pointed at must answer, or the command ends at once with one line (MLflow and Prefect would retry for
minutes, or fail with a traceback)."""

from __future__ import annotations

import os

from normflow.core.errors import ConfigError

PREFECT_PROBE_TIMEOUT_S = 5.0
"""How long a configured Prefect server may take to answer its health check."""


def check_stores() -> None:
    """Bound MLflow's HTTP retries, then refuse a tracking (or registry) store that cannot work, in one line."""
    from normflow.tracking import store

    store.limit_http_waits()
    store.check_store(store.tracking_uri())
    registry = os.environ.get("MLFLOW_REGISTRY_URI")
    if registry and registry != store.tracking_uri():
        store.check_store(registry)


def reachable_prefect_server(temporary_url: str | None) -> str | None:
    """``temporary_url`` (the command's own temporary server) as given; without one, the server Prefect is
    configured with (``PREFECT_API_URL``) must answer its health check, else one line says what to do."""
    if temporary_url is not None:
        return temporary_url
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    if configured:
        problem = unanswered(configured.rstrip("/") + "/health")
        if problem:
            raise ConfigError(
                f"no Prefect server answers at PREFECT_API_URL={configured} ({problem}); start it "
                "(`prefect server start`), or unset PREFECT_API_URL and the command starts a temporary one"
            )
    return None


def unanswered(url: str) -> str | None:
    """Why ``url`` gives no HTTP answer within :data:`PREFECT_PROBE_TIMEOUT_S` (any status is an answer), or None."""
    import ssl
    import urllib.error
    import urllib.request

    from normflow.tracking.store import unreachable_reason

    try:
        with urllib.request.urlopen(url, timeout=PREFECT_PROBE_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):  # something answers: TLS is Prefect's to check, with its settings
            return None
        return unreachable_reason(reason if isinstance(reason, BaseException) else exc)
