"""Where runs execute: one interface (`base.Backend`: launch, status, logs, cancel, reconcile)
with a Kubernetes and a local implementation. The CLI picks one with `backend()`."""

from __future__ import annotations

from typing import Callable, Literal, get_args

from manager.backends.base import Backend

#: where runs execute: Jobs on a cluster, or subprocesses on this machine
Executor = Literal["k8s", "local"]
#: what commands that read (status) also take: the cluster's Jobs when one answers, the local steps otherwise
ReadExecutor = Literal["auto", "k8s", "local"]
EXECUTORS, AUTO = get_args(Executor), "auto"


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
    """One of EXECUTORS, or AUTO (Kubernetes when a cluster answers, local states otherwise)."""
    from valley.errors import ValleyError

    kwargs = {"echo": echo} if echo is not None else {}
    if executor == "local":
        from manager.backends.local import LocalBackend

        return LocalBackend(tracking_uri, console=console, parallel=parallel, **kwargs)
    if executor in ("k8s", AUTO):
        from manager.backends.kubernetes import KubernetesBackend

        fallback = backend("local", tracking_uri=tracking_uri) if executor == AUTO else None
        return KubernetesBackend(tracking_uri, namespace=namespace, context=context, fallback=fallback, **kwargs)
    raise ValleyError(f"--executor: {executor!r}; allowed: {', '.join(get_args(ReadExecutor))}")
