"""The cluster profile: what differs between clusters, in one file that `render` and `launch` read.

    # valley-cluster.yaml  (valleyctl render|launch --profile FILE, or VALLEY_PROFILE=FILE)
    registry: ghcr.io/your-org          # image refs: <registry>/valley-<role>:<tag>@<digest>
    images:                             # or pin a role's ref outright
      grader: ghcr.io/your-org/valley-grader:0a1b2c3d4e5f6a7b@sha256:...
    gvisor_runtime_class: gvisor        # RuntimeClass of grader pods (isolation split)
    gvisor_gpu_runtime_class: gvisor-nvproxy   # of eval pods with isolation pod (nvproxy)
    pods:
      train:                            # train and eval tolerate nvidia.com/gpu unless told otherwise
        node_selector: {nvidia.com/gpu.present: "true"}
        priority_class_name: valley-train
      eval:
        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
        pod_overrides: {hostIPC: false}  # any other PodSpec field, set as given
      data: {}
      grader: {}

Every field is optional; an absent file means the defaults. Typed and validated here, turned
into PodSpec fields only by the renderer (`manager.render.common.pod_spec`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from valley.errors import ValleyError

PROFILE_ENV = "VALLEY_PROFILE"
#: fields render sets itself; an override of one would silently break the run
RENDERED_POD_FIELDS = frozenset(
    {
        "containers",
        "initContainers",
        "volumes",
        "restartPolicy",
        "securityContext",
        "serviceAccountName",
        "automountServiceAccountToken",
        "runtimeClassName",
        "subdomain",
    }
)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Toleration(Frozen):
    """A Kubernetes toleration (core/v1 Toleration), snake_case here."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None

    def to_k8s(self) -> dict:
        names = {"toleration_seconds": "tolerationSeconds"}
        return {names.get(k, k): v for k, v in self.model_dump(exclude_none=True).items()}


#: GPU node pools are commonly tainted so that only GPU workloads land there
GPU_TOLERATION = Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


class PodPlacement(Frozen):
    """Where one kind of pod runs, and any other PodSpec field a cluster needs."""

    node_selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    priority_class_name: str | None = None
    #: escape hatch: PodSpec fields set as given (camelCase, as in a manifest)
    pod_overrides: dict = {}

    @model_validator(mode="after")
    def _overrides_leave_rendered_fields(self) -> "PodPlacement":
        clash = sorted(RENDERED_POD_FIELDS & set(self.pod_overrides))
        if clash:
            raise ValueError(f"pod_overrides: {', '.join(clash)} are rendered by valley and cannot be overridden")
        return self

    def pod_fields(self) -> dict:
        """The PodSpec fields this placement sets."""
        fields: dict = {}
        if self.node_selector:
            fields["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            fields["tolerations"] = [t.to_k8s() for t in self.tolerations]
        if self.priority_class_name:
            fields["priorityClassName"] = self.priority_class_name
        return {**fields, **self.pod_overrides}


class GpuPodPlacement(PodPlacement):
    tolerations: tuple[Toleration, ...] = (GPU_TOLERATION,)


class Pods(Frozen):
    """Placement per pod kind; only train and eval pods use GPUs."""

    data: PodPlacement = PodPlacement()
    train: GpuPodPlacement = GpuPodPlacement()
    eval: GpuPodPlacement = GpuPodPlacement()
    grader: PodPlacement = PodPlacement()


class ClusterProfile(Frozen):
    """What one cluster needs that the study does not decide."""

    #: registry the images were pushed to (`valleyctl images build --registry R --push`)
    registry: str | None = None
    #: role (trainer, evaluator, grader, control) -> image ref, over what the registry gives
    images: dict[Literal["trainer", "evaluator", "grader", "control"], str] = {}
    #: RuntimeClass of grader pods (isolation `split`; GKE Sandbox ships one named `gvisor` too)
    gvisor_runtime_class: str = Field("gvisor", min_length=1)
    #: RuntimeClass of eval pods with isolation `pod`: gVisor with nvproxy, for the GPUs
    gvisor_gpu_runtime_class: str = Field("gvisor-nvproxy", min_length=1)
    pods: Pods = Pods()


def load_profile(path: Path | str | None = None) -> ClusterProfile:
    """The profile at `path` (else $VALLEY_PROFILE); the defaults when neither is set."""
    import yaml
    from pydantic import ValidationError

    from valley.errors import validation_error_line

    path = path or os.environ.get(PROFILE_ENV)
    if not path:
        return ClusterProfile()
    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ValleyError(
            f"--profile: {path} does not exist (unset {PROFILE_ENV} or point it at a cluster profile)"
        ) from None
    except yaml.YAMLError as error:
        raise ValleyError(f"--profile: {path} is not YAML: {str(error).splitlines()[0]}") from None
    try:
        return ClusterProfile.model_validate(data)
    except ValidationError as error:
        raise ValleyError(f"--profile {path}: {validation_error_line(error)}") from None
