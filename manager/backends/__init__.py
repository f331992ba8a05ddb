"""Where runs execute: one interface (`base.Backend`: launch, status, logs, cancel, reconcile)
with a Kubernetes and a local implementation. The CLI picks one with `backend()`."""

from __future__ import annotations

from typing import Callable

from manager.backends.base import Backend

EXECUTORS = ("k8s", "local")


def backend(
    executor: str,
    *,
    tracking_uri: str | None = None,
    namespace: str = "valley",
    context=None,
    echo: Callable[[str], None] | None = None,
    console=None,
    parallel: int | None = None,
) -> Backend:
    """`k8s`, `local`, or `auto` (Kubernetes when a cluster answers, local states otherwise)."""
    from valley.errors import ValleyError

    kwargs = {"echo": echo} if echo is not None else {}
    if executor == "local":
        from manager.backends.local import LocalBackend

        return LocalBackend(tracking_uri, console=console, parallel=parallel, **kwargs)
    if executor in ("k8s", "auto"):
        from manager.backends.kubernetes import KubernetesBackend

        fallback = backend("local", tracking_uri=tracking_uri) if executor == "auto" else None
        return KubernetesBackend(tracking_uri, namespace=namespace, context=context, fallback=fallback, **kwargs)
    raise ValleyError(f"--executor: {executor!r}; allowed: auto, k8s, local")
