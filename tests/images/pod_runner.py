"""A rendered pod's container started by a real Docker engine the way a kubelet starts it.

Its image and command, its env values, the pod's uid/gid and fsGroup (as a supplementary group),
a read-only root, every capability dropped, no privilege escalation, emptyDir volumes as tmpfs,
PersistentVolumeClaims as host directories shared like an fsGroup volume (group-owned, setgid,
group-writable), ConfigMaps as read-only files, and the pod's RuntimeClass as the engine's runtime
(`gvisor` → `runsc`). The containers of one test share a network namespace (a pod's), whose
/etc/hosts resolves the Service names they use to loopback.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNTIMES = {"gvisor": "runsc"}


def claim_dir(volumes_root: Path, claim: str, fs_group: int) -> Path:
    """A PVC's directory, prepared as a kubelet prepares an fsGroup volume."""
    path = volumes_root / "claims" / claim
    if not path.exists():
        path.mkdir(parents=True)
        os.chown(path, 0, fs_group)
        path.chmod(0o2775)
    return path


def run_kwargs(
    pod: dict,
    container: dict,
    volumes_root: Path,
    *,
    configmaps: dict[str, dict[str, str]] | None = None,
    env: dict[str, str] | None = None,
    network_mode: str = "none",
) -> dict:
    """`docker.containers.run` keyword arguments for `container` of the rendered `pod`."""
    security = {**pod["securityContext"], **container["securityContext"]}
    by_name = {volume["name"]: volume for volume in pod["volumes"]}
    volumes, tmpfs, shm_size = {}, {}, None
    for mount in container.get("volumeMounts", []):
        volume = by_name[mount["name"]]
        if "emptyDir" in volume:
            if mount["mountPath"] == "/dev/shm":
                shm_size = volume["emptyDir"].get("sizeLimit", "64m").replace("Gi", "g").replace("Mi", "m")
            else:
                tmpfs[mount["mountPath"]] = "rw,mode=1777,exec"
            continue
        if "persistentVolumeClaim" in volume:
            host = claim_dir(volumes_root, volume["persistentVolumeClaim"]["claimName"], security["fsGroup"])
        elif "configMap" in volume:
            name = volume["configMap"]["name"]
            host = volumes_root / "configmaps" / name
            host.mkdir(parents=True, exist_ok=True)
            for key, text in (configmaps or {}).get(name, {}).items():
                (host / key).write_text(text)
        elif "secret" in volume and volume["secret"].get("optional"):
            host = volumes_root / "secrets" / volume["secret"]["secretName"]
            host.mkdir(parents=True, exist_ok=True)  # an optional Secret that does not exist: empty
        else:
            raise ValueError(f"volume {volume['name']}: no stand-in for {sorted(volume)}")
        volumes[str(host)] = {"bind": mount["mountPath"], "mode": "ro" if mount.get("readOnly") else "rw"}
    environment = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    kwargs = {
        "image": container["image"],
        # a container's `command` replaces the image's ENTRYPOINT, its `args` the CMD
        "entrypoint": container["command"],
        "command": container.get("args", []),
        "environment": {**environment, **(env or {})},
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "group_add": [str(security["fsGroup"])],
        "read_only": security["readOnlyRootFilesystem"],
        "cap_drop": security["capabilities"]["drop"],
        "security_opt": ["no-new-privileges"] if not security["allowPrivilegeEscalation"] else [],
        "volumes": volumes,
        "tmpfs": tmpfs,
        "network_mode": network_mode,
        "detach": True,
    }
    if shm_size:
        kwargs["shm_size"] = shm_size
    if pod.get("runtimeClassName"):
        kwargs["runtime"] = RUNTIMES[pod["runtimeClassName"]]
    return kwargs
