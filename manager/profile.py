"""The cluster profile: what differs between clusters, in one file that `render` and `launch` read.

    # valley-cluster.yaml  (valleyctl render|launch --profile FILE, or VALLEY_PROFILE=FILE)
    registry: ghcr.io/your-org          # image refs: <registry>/valley-<role>:<tag>@<digest>
    images:                             # or pin a role's ref outright
      grader: ghcr.io/your-org/valley-grader:0a1b2c3d4e5f6a7b@sha256:...
    variant: gpu                        # or cpu: the trainer-cpu and evaluator-cpu images
    image_pull_policy: IfNotPresent     # Never: images loaded into the nodes (kind load, k3d import)
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
      grader:
        resources: {requests: {cpu: 50m, memory: 128Mi}, limits: {cpu: "1", memory: 1Gi}}

Every field is optional; an absent file means the defaults. `--profile NAME` names a profile the
kit ships (k8s/profiles/NAME.yaml: `cpu`, the mini study on a small CPU cluster). Typed and
validated here, turned into PodSpec fields only by the renderer (`manager.render.common.pod_spec`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from valley.errors import ValleyError

PROFILE_ENV = "VALLEY_PROFILE"
#: the profiles the kit ships, by name (`--profile cpu`)
KIT_PROFILES = Path(__file__).resolve().parents[1] / "k8s" / "profiles"
#: a Kubernetes resource quantity: 500m, 2, 1.5, 4Gi, 512Mi
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")]
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


class Resources(Frozen):
    """Requests and limits (core/v1 ResourceRequirements), for clusters the GPU sizing does not fit."""

    requests: dict[str, Quantity]
    limits: dict[str, Quantity] = {}

    def to_k8s(self) -> dict:
        return {"requests": dict(self.requests), "limits": {**self.requests, **self.limits}}


#: GPU node pools are commonly tainted so that only GPU workloads land there
GPU_TOLERATION = Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


class PodPlacement(Frozen):
    """Where one kind of pod runs, and any other PodSpec field a cluster needs."""

    node_selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    priority_class_name: str | None = None
    #: the main container's requests and limits, instead of what render sizes from the run's GPUs
    #: (train, eval) or the kind of pod (data, grader); a limit left out equals its request
    resources: Resources | None = None
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
    #: which images: `gpu` (CUDA trainer and evaluator) or `cpu` (trainer-cpu, evaluator-cpu)
    variant: Literal["gpu", "cpu"] = "gpu"
    #: every container's imagePullPolicy; `Never` for images loaded into the nodes (kind load,
    #: k3d image import), which launch then takes without a registry or a digest
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    #: RuntimeClass of grader pods (isolation `split`; GKE Sandbox ships one named `gvisor` too)
    gvisor_runtime_class: str = Field("gvisor", min_length=1)
    #: RuntimeClass of eval pods with isolation `pod`: gVisor with nvproxy, for the GPUs
    gvisor_gpu_runtime_class: str = Field("gvisor-nvproxy", min_length=1)
    pods: Pods = Pods()


def kit_profiles() -> list[str]:
    return sorted(p.stem for p in KIT_PROFILES.glob("*.yaml"))


def profile_path(value: Path | str) -> Path:
    """A profile file, or the name of one the kit ships (`cpu` → k8s/profiles/cpu.yaml)."""
    path = Path(value).expanduser()
    if not path.exists() and re.fullmatch(r"[a-z0-9-]+", str(value)) and (KIT_PROFILES / f"{value}.yaml").is_file():
        return KIT_PROFILES / f"{value}.yaml"
    return path


def load_profile(path: Path | str | None = None) -> ClusterProfile:
    """The profile at `path` (else $VALLEY_PROFILE), a file or a kit profile's name; the defaults
    when neither is set."""
    import yaml
    from pydantic import ValidationError

    from valley.errors import validation_error_line

    path = path or os.environ.get(PROFILE_ENV)
    if not path:
        return ClusterProfile()
    path = profile_path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ValleyError(
            f"--profile: {path} is neither a file nor a profile of the kit ({', '.join(kit_profiles())}); "
            f"unset {PROFILE_ENV} or point it at a cluster profile"
        ) from None
    except yaml.YAMLError as error:
        raise ValleyError(f"--profile: {path} is not YAML: {str(error).splitlines()[0]}") from None
    try:
        return ClusterProfile.model_validate(data)
    except ValidationError as error:
        raise ValleyError(f"--profile {path}: {validation_error_line(error)}") from None
