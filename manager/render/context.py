"""What a render needs besides the spec: a small frozen value built at the CLI edge, where
everything read from files (the cluster profile, recorded image digests) is resolved first."""

from __future__ import annotations

from dataclasses import dataclass, field

from manager.profile import ClusterProfile

#: image refs of a context built without the recorded builds (tests, the reconciler's MLflow ConfigMaps)
DEV_IMAGES: dict[str, str] = {
    "trainer": "valley/trainer:dev",
    "evaluator": "valley/evaluator:dev",
    "grader": "valley/grader:dev",
    "control": "valley/control:dev",
}

#: the in-cluster MLflow Service of the cluster kit (k8s/base)
IN_CLUSTER_TRACKING_URI = "http://valley-mlflow:5000"


@dataclass(frozen=True)
class RenderContext:
    """Cluster-side values a run's manifests depend on."""

    namespace: str = "valley"
    #: role -> image ref (`trainer`, `evaluator`, `grader`, `control`), resolved before render
    #: (the CLI: recorded digests under the profile's registry, the profile's own images over them)
    images: dict[str, str] = field(default_factory=lambda: dict(DEV_IMAGES))
    #: the tracking URI pods use (an in-cluster address, not the laptop's)
    tracking_uri: str = IN_CLUSTER_TRACKING_URI
    #: the pre-created MLflow run; None renders no `<run>-mlflow` ConfigMap (GitOps: the
    #: reconciler creates the run and that ConfigMap when it first sees the run's spec)
    run_id: str | None = None
    #: Kueue LocalQueue; None = no queue label
    queue: str | None = None
    #: placement per pod kind, the grader's RuntimeClass (`valleyctl … --profile FILE`)
    profile: ClusterProfile = field(default_factory=ClusterProfile)
