"""Control-plane fixtures: a local HTTP server speaking the subset of the Kubernetes API
valleyctl uses, a real MLflow tracking server, and the real valleyctl app in process.

The API server keeps objects by (plural, name) in one namespace and records every request.
Besides create (with server-side dry-run), list by label, read, merge patch, delete, pod logs
and Status errors it plays the parts of the control plane the tests need:
  * namespaces: a request into any other namespace than the fake's is refused as the real
    server does (`namespaces "x" not found`); a list there is empty;
  * RBAC or admission refusals: `fail[(method, plural)] = code` refuses every such request,
    `fail_after_dry_run` only the real ones (a quota or webhook a dry-run does not hit);
  * a Job controller: `run_job` makes the Job's pod, with container states, logs and the
    Job's conditions as the controller sets them, podFailurePolicy's FailJob rules included;
  * pod logs as the kubelet answers them: 400 for a container that never started.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/?]+)"
    r"(?:/(?P<name>[^/?]+))?(?:/(?P<sub>log|status|token))?$"
)
#: the token of the kubeconfig the tests use as cluster admin (RBAC is not evaluated for it)
ADMIN_TOKEN = "not-a-secret"
#: HTTP method (and whether a name is given) -> RBAC verb
VERBS = {("GET", True): "get", ("GET", False): "list", ("POST", False): "create", ("PATCH", True): "patch"}
VERBS |= {("PUT", True): "update", ("DELETE", True): "delete", ("POST", True): "create"}


class FakeKube:
    """Objects by (plural, name); every request recorded; failures injectable."""

    def __init__(self, namespace: str = "valley") -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.fail: dict[tuple[str, str], int] = {}
        self.fail_after_dry_run: dict[tuple[str, str], int] = {}
        #: (pod, container) -> log text of a container that ran
        self.logs: dict[tuple[str, str], str] = {}
        #: token -> ServiceAccount name, for tokens this server issued (TokenRequest)
        self.tokens: dict[str, str] = {}
        #: True: play the Job controller (pods for open Jobs, conditions from the pods' status)
        self.controller = False
        #: 503 for every request while set (an API server that is unavailable)
        self.unavailable = False
        self.lock = threading.RLock()
        self.version = 0

    def stamp(self, obj: dict) -> dict:
        """A new resourceVersion, as the server gives an object on every write (a client holding an older
        copy sees it changed)."""
        self.version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        return obj

    # --------------------------------------------------------------------- RBAC, quota

    def allowed(self, account: str, verb: str, group: str, resource: str) -> bool:
        """RBAC as the API server evaluates it: any rule of a Role bound to the ServiceAccount."""
        for binding in (o for (p, _), o in self.objects.items() if p == "rolebindings"):
            if not any(
                s.get("kind") == "ServiceAccount" and s.get("name") == account and s.get("namespace") == self.namespace
                for s in binding.get("subjects") or []
            ):
                continue
            role = self.objects.get(("roles", binding["roleRef"]["name"]))
            for rule in (role or {}).get("rules") or []:
                if (
                    group in rule.get("apiGroups", [])
                    and (resource in rule.get("resources", []) or "*" in rule.get("resources", []))
                    and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
                ):
                    return True
        return False

    def over_quota(self, group: str, plural: str) -> str | None:
        """Quota admission for a create: charged before the object's existence is looked at, as the
        API server's admission chain runs before storage (a create that then finds the object there
        has still been refused when the quota is full)."""
        resource = f"count/{plural}.{group}" if group else f"count/{plural}"
        for quota in (o for (p, _), o in self.objects.items() if p == "resourcequotas"):
            hard = (quota.get("spec") or {}).get("hard") or {}
            if resource in hard:
                used = len(self.names(plural))
                if used + 1 > int(hard[resource]):
                    return (
                        f"exceeded quota: {quota['metadata']['name']}, requested: {resource}=1, "
                        f"used: {resource}={used}, limited: {resource}={hard[resource]}"
                    )
        return None

    def matches(self, obj: dict, selector: str) -> bool:
        labels = obj["metadata"].get("labels", {})
        return all(labels.get(k) == v for k, v in (p.split("=", 1) for p in selector.split(",") if p))

    def names(self, plural: str) -> set[str]:
        return {name for (p, name) in self.objects if p == plural}

    # ----------------------------------------------------------------- Job controller

    def run_job(
        self,
        job_name: str,
        *,
        exit_code: int = 0,
        container: str | None = None,
        message: str = "",
        phase: str | None = None,
        waiting: str | None = None,
    ) -> dict:
        """Play the Job controller and kubelet for one pod of the Job: it ran to `exit_code` in
        `container` (default: the main one; init containers before it succeeded), or it is stuck
        with every container waiting for `waiting` (e.g. ContainerCreating). Sets the Job's
        conditions as the controller does, reading its podFailurePolicy."""
        job = self.objects[("jobs", job_name)]
        template = job["spec"]["template"]
        pod_name = f"{job_name}-x{len(self.names('pods')):04d}"
        labels = {
            **template["metadata"].get("labels", {}),
            "batch.kubernetes.io/job-name": job_name,
            "job-name": job_name,
        }
        inits = [c["name"] for c in template["spec"].get("initContainers", [])]
        mains = [c["name"] for c in template["spec"]["containers"]]
        failing = container or mains[0]
        statuses, init_statuses = [], []
        for name in inits + mains:
            if waiting:
                state = {"waiting": {"reason": waiting}}
            elif name == failing:
                state = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}}
            elif name in inits and inits.index(name) < (inits.index(failing) if failing in inits else len(inits)):
                state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
            elif name in inits or failing in inits:
                state = {"waiting": {"reason": "PodInitializing"}}
            else:
                state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
            entry = {"name": name, "state": state, "image": "valley", "imageID": "", "ready": False, "restartCount": 0}
            (init_statuses if name in inits else statuses).append(entry)
            if "terminated" in state:
                self.logs[(pod_name, name)] = f"{name} of {pod_name}: {message or 'ran'}\n"
        pod_phase = phase or ("Pending" if waiting else "Succeeded" if exit_code == 0 else "Failed")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": self.namespace,
                "labels": labels,
                "creationTimestamp": f"2026-01-01T00:00:{len(self.names('pods')):02d}Z",
            },
            "spec": {**template["spec"], "nodeName": "node-1"},  # on a node: its kubelet answers for logs
            "status": {"phase": pod_phase, "containerStatuses": statuses, "initContainerStatuses": init_statuses},
        }
        self.objects[("pods", pod_name)] = self.stamp(pod)
        if waiting:
            job["status"] = {"active": 1}
        elif exit_code == 0:
            job["status"] = {
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ],
            }
        else:
            rule = next(
                (
                    i
                    for i, r in enumerate((job["spec"].get("podFailurePolicy") or {}).get("rules", []))
                    if r["action"] == "FailJob"
                    and r.get("onExitCodes", {}).get("containerName") in (None, failing)
                    and exit_code in r["onExitCodes"]["values"]
                ),
                None,
            )
            if rule is not None:
                reason = "PodFailurePolicy"
                text = (
                    f"Container {failing} for pod {self.namespace}/{pod_name} failed with exit code "
                    f"{exit_code} matching FailJob rule at index {rule}"
                )
            else:
                reason, text = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            job["status"] = {
                "failed": 1,
                "conditions": [
                    {"type": "FailureTarget", "status": "True", "reason": reason, "message": text},
                    {"type": "Failed", "status": "True", "reason": reason, "message": text},
                ],
            }
        return pod


class JobController:
    """The Job controller's part the tests rely on, as kube-controller-manager plays it: a pod for an
    open Job (up to `parallelism`), a replacement after a failure counted against backoffLimit,
    podFailurePolicy decided from the pod whose failure is being handled, Complete at `completions`."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake

    def sync(self) -> None:
        for (plural, _), job in list(self.fake.objects.items()):
            if plural == "jobs":
                before = copy.deepcopy(job.get("status"))
                self.sync_job(job)
                if job.get("status") != before:
                    self.fake.stamp(job)

    def pods(self, job: dict) -> list[dict]:
        name = job["metadata"]["name"]
        return [
            o
            for (p, _), o in self.fake.objects.items()
            if p == "pods" and o["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name
        ]

    def sync_job(self, job: dict) -> None:
        spec, status = job["spec"], job.setdefault("status", {})
        if spec.get("suspend") or any(
            c.get("status") == "True" and c["type"] in ("Complete", "Failed") for c in status.get("conditions") or []
        ):
            return
        counted = set(status.get("uncountedPods", []))
        for pod in sorted(self.pods(job), key=lambda p: p["metadata"]["name"]):
            phase, pod_name = (pod.get("status") or {}).get("phase"), pod["metadata"]["name"]
            if pod_name in counted or phase not in ("Succeeded", "Failed"):
                continue
            counted.add(pod_name)
            if phase == "Succeeded":
                status["succeeded"] = status.get("succeeded", 0) + 1
                continue
            action, index, container, code = self.policy(job, pod)
            if action == "Ignore":
                continue
            if action == "FailJob":
                message = (
                    f"Container {container} for pod {self.fake.namespace}/{pod_name} failed with exit code {code} "
                    f"matching FailJob rule at index {index}"
                )
                return self.finish(job, counted, "PodFailurePolicy", message)
            status["failed"] = status.get("failed", 0) + 1
            if status["failed"] > spec.get("backoffLimit", 6):
                return self.finish(job, counted, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        status["uncountedPods"] = sorted(counted)
        if status.get("succeeded", 0) >= spec.get("completions", 1):
            return self.finish(job, counted, None, "")
        live = [p for p in self.pods(job) if (p.get("status") or {}).get("phase") in (None, "Pending", "Running")]
        status["active"] = len(live)
        status["ready"] = sum(1 for p in live if (p.get("status") or {}).get("phase") == "Running")
        for _ in range(spec.get("parallelism", 1) - len(live)):
            self.create_pod(job)
            status["active"] += 1

    def policy(self, job: dict, pod: dict) -> tuple[str, int, str, int]:
        """(action, rule index, container, exit code) of the first podFailurePolicy rule the pod matches."""
        status = pod.get("status") or {}
        conditions = {(c["type"], c.get("status")) for c in status.get("conditions") or []}
        exits = [
            (c["name"], c["state"]["terminated"]["exitCode"])
            for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
            if "terminated" in (c.get("state") or {}) and c["state"]["terminated"].get("exitCode", 0) != 0
        ]
        for index, rule in enumerate((job["spec"].get("podFailurePolicy") or {}).get("rules", [])):
            if "onExitCodes" in rule:
                wanted = rule["onExitCodes"]
                for container, code in exits:
                    if wanted.get("containerName") in (None, container) and (code in wanted["values"]) == (
                        wanted["operator"] == "In"
                    ):
                        return rule["action"], index, container, code
            for pattern in rule.get("onPodConditions", []):
                if (pattern["type"], pattern.get("status", "True")) in conditions:
                    return rule["action"], index, "", 0
        container, code = exits[0] if exits else ("", 0)
        return "Count", -1, container, code

    def finish(self, job: dict, counted: set, reason: str | None, message: str) -> None:
        status = job["status"]
        status["uncountedPods"] = sorted(counted)
        status["active"] = status["ready"] = 0
        if reason is None:
            status["conditions"] = [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ]
            return
        status["conditions"] = [
            {"type": "FailureTarget", "status": "True", "reason": reason, "message": message},
            {"type": "Failed", "status": "True", "reason": reason, "message": message},
        ]
        for pod in self.pods(job):  # the controller deletes what still runs of a failed Job
            if (pod.get("status") or {}).get("phase") in (None, "Pending", "Running"):
                self.fake.objects.pop(("pods", pod["metadata"]["name"]), None)

    def create_pod(self, job: dict) -> None:
        template, job_name = job["spec"]["template"], job["metadata"]["name"]
        count = len(self.fake.names("pods"))
        name = f"{job_name}-{count:05d}"
        self.fake.objects[("pods", name)] = self.fake.stamp(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": self.fake.namespace,
                    "labels": {
                        **(template.get("metadata") or {}).get("labels", {}),  # a template may have none
                        "batch.kubernetes.io/job-name": job_name,
                        "job-name": job_name,
                    },
                    "creationTimestamp": f"2026-01-01T00:{count // 60:02d}:{count % 60:02d}Z",
                },
                "spec": copy.deepcopy(template["spec"]),
                "status": {"phase": "Pending"},
            }
        )


#: list fields a strategic merge patch merges item by item, by this key, as the API's schema declares them
#: (patchMergeKey); others, container statuses included (listType=atomic), are replaced whole
MERGE_KEYS = {"conditions": "type"}


def merge(target: dict, patch: dict, *, strategic: bool = False) -> None:
    """A JSON merge patch (RFC 7386: null deletes, a list replaces), or a strategic merge patch, which
    merges the lists of MERGE_KEYS item by item (what the official client sends for a dict body)."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value, strategic=strategic)
        elif strategic and key in MERGE_KEYS and isinstance(value, list) and isinstance(target.get(key), list):
            by_key = {item.get(MERGE_KEYS[key]): item for item in target[key]}
            for item in value:
                if item.get(MERGE_KEYS[key]) in by_key:
                    merge(by_key[item[MERGE_KEYS[key]]], item, strategic=True)
                else:
                    target[key].append(item)
        else:
            target[key] = value


def status_transition_errors(pod: dict, old: dict, new: dict) -> list[str]:
    """What the API server's pod status validation refuses: a container that terminated may not run
    again unless the pod (Always), its exit code (OnFailure, non-zero) or its own restartPolicy (a
    native sidecar) lets it restart."""
    spec, errors = pod["spec"], []
    policy = spec.get("restartPolicy", "Always")
    if policy == "Always":
        return errors
    sidecars = {c["name"] for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"}
    for field in ("containerStatuses", "initContainerStatuses"):
        now = {c["name"]: c for c in new.get(field) or []}
        for index, before in enumerate(old.get(field) or []):
            ended = (before.get("state") or {}).get("terminated")
            if ended is None or before["name"] in sidecars:
                continue
            if policy == "OnFailure" and ended.get("exitCode", 0) != 0:
                continue
            after = now.get(before["name"])
            if after is not None and "terminated" not in (after.get("state") or {}):
                errors.append(
                    f"status.{field}[{index}].state: Forbidden: may not be transitioned to non-terminated state"
                )
    return errors


def invalid_log_container(pod: dict, container: str) -> str | None:
    """Why kube-apiserver refuses the logs of `container` (400), as it checks before asking a kubelet."""
    spec = pod.get("spec") or {}
    names = [c["name"] for c in spec.get("containers", [])]
    others = [c["name"] for c in spec.get("initContainers", [])]
    if not container:
        if len(names) == 1:
            return None
        listed = f"choose one of: [{' '.join(names)}]" + (
            f" or one of the init containers: [{' '.join(others)}]" if others else ""
        )
        return f"a container name must be specified for pod {pod['metadata']['name']}, {listed}"
    if container in names + others:
        return None
    return f"container {container} is not valid for pod {pod['metadata']['name']}"


def handler_for(fake: FakeKube):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code: int, body) -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def status(self, code: int, reason: str, message: str) -> None:
            self.reply(
                code,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": reason,
                    "message": message,
                    "code": code,
                },
            )

        def handle_any(self, method: str) -> None:
            with fake.lock:
                self.handle_locked(method)

        def caller(self) -> str | None:
            """None for the admin; the ServiceAccount name for a token this server issued."""
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            return None if token == ADMIN_TOKEN else fake.tokens.get(token, "")

        def handle_locked(self, method: str) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            match = PATH.match(url.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.requests.append((method, self.path if "dryRun" in url.query else url.path, body))
            if fake.unavailable:
                return self.status(503, "ServiceUnavailable", "the server is currently unable to handle the request")
            if match is None:
                return self.status(404, "NotFound", f"no route for {url.path}")
            group, plural, name, sub = match["group"] or "", match["plural"], match["name"], match["sub"]
            dry_run = "All" in query.get("dryRun", [])
            account = self.caller()
            resource = f"{plural}/{sub}" if sub else plural
            verb = VERBS.get((method, name is not None), method.lower())
            where = f"{plural}.{group}" if group else plural
            if account == "":
                return self.status(401, "Unauthorized", "Unauthorized")
            if account is not None and (
                match["ns"] != fake.namespace or not fake.allowed(account, verb, group, resource)
            ):
                what = f'{where} "{name}"' if name else where
                return self.status(
                    403,
                    "Forbidden",
                    f'{what} is forbidden: User "system:serviceaccount:{fake.namespace}:{account}" cannot {verb} '
                    f'resource "{resource}" in API group "{group}" in the namespace "{match["ns"]}"',
                )
            refusal = fake.fail.get((method, plural)) or (
                None if dry_run else fake.fail_after_dry_run.get((method, plural))
            )
            if refusal == 403:  # as RBAC words it
                return self.status(
                    403,
                    "Forbidden",
                    f'{where} is forbidden: User "system:serviceaccount:{fake.namespace}:tester" cannot {verb} '
                    f'resource "{resource}" in API group "{group}" in the namespace "{match["ns"]}"',
                )
            if refusal == 503:
                return self.status(503, "ServiceUnavailable", "the server is currently unable to handle the request")
            if refusal:
                return self.status(refusal, "Invalid", f"{plural} denied by the test")
            if match["ns"] is not None and match["ns"] != fake.namespace:
                if method == "GET" and name is None:
                    return self.reply(200, {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": []})
                if method != "POST":  # only a create asks for the namespace; the rest look for the object
                    return self.status(404, "NotFound", f'{where} "{name}" not found')
                return self.status(404, "NotFound", f'namespaces "{match["ns"]}" not found')
            if plural == "namespaces" and method == "POST":
                if body["metadata"]["name"] != fake.namespace:
                    return self.status(403, "Forbidden", "this fake serves one namespace")
            key = (plural, name or (body or {}).get("metadata", {}).get("name"))
            if sub == "token":
                if (plural, name) not in fake.objects:
                    return self.status(404, "NotFound", f'serviceaccounts "{name}" not found')
                token = f"token-{name}-{len(fake.tokens)}"
                fake.tokens[token] = name
                return self.reply(
                    201, {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "status": {"token": token}}
                )
            if sub == "log":
                container = query.get("container", [""])[0]
                if key not in fake.objects:
                    return self.status(404, "NotFound", f'pods "{name}" not found')
                if why := invalid_log_container(fake.objects[key], container):  # before the node is looked at
                    return self.status(400, "BadRequest", why)
                if (name, container) in fake.logs:
                    return self.reply(200, fake.logs[(name, container)])
                if not fake.objects[key]["spec"].get("nodeName"):  # no node, no kubelet: the server answers empty
                    return self.reply_empty(204)
                return self.status(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
                )
            if method == "POST":
                if why := fake.over_quota(group, plural):  # quota admission holds for admins too
                    return self.status(403, "Forbidden", f'{where} "{key[1]}" is forbidden: {why}')
                if key in fake.objects:
                    return self.status(409, "AlreadyExists", f'{where} "{key[1]}" already exists')
                if dry_run:
                    return self.reply(201, body)
                body.setdefault("status", {})
                body["metadata"].setdefault("uid", f"uid-{len(fake.requests)}")
                if plural == "resourcequotas":  # the quota controller's first count
                    hard = body["spec"]["hard"]
                    used = {k: str(len(fake.names(k.split("/")[1].split(".")[0]))) for k in hard}
                    body["status"] = {"hard": hard, "used": used}
                fake.objects[key] = fake.stamp(body)
                self.settle()
                return self.reply(
                    201, {k: v for k, v in body.items() if k != "status" or v}
                )  # as the server: no empty status
            if method == "GET" and name is None:
                selector = query.get("labelSelector", [""])[0]
                items = [o for (p, _), o in fake.objects.items() if p == plural and fake.matches(o, selector)]
                return self.reply(200, {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
            if key not in fake.objects:
                return self.status(404, "NotFound", f'{where} "{name}" not found')
            if method == "GET":
                return self.reply(200, fake.objects[key])
            if method == "PATCH":
                strategic = "strategic-merge-patch" in (self.headers.get("Content-Type") or "")
                if sub == "status":
                    status = copy.deepcopy(fake.objects[key].get("status") or {})
                    merge(status, body.get("status", {}), strategic=strategic)
                    if plural == "pods" and (
                        errors := status_transition_errors(
                            fake.objects[key], fake.objects[key].get("status") or {}, status
                        )
                    ):
                        listed = errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"
                        return self.status(422, "Invalid", f'Pod "{name}" is invalid: {listed}')
                    fake.objects[key]["status"] = status
                else:
                    merge(fake.objects[key], body, strategic=strategic)
                fake.stamp(fake.objects[key])
                self.settle()
                return self.reply(200, fake.objects[key])
            if method == "DELETE":
                deleted = fake.objects.pop(key)
                if plural == "jobs":  # background propagation: the garbage collector takes the Job's pods
                    for pod in [
                        n
                        for (p, n), o in fake.objects.items()
                        if p == "pods" and o["metadata"]["labels"].get("batch.kubernetes.io/job-name") == name
                    ]:
                        fake.objects.pop(("pods", pod))
                if plural == "services":  # a Service DELETE answers with the object, as a real server does
                    return self.reply(200, deleted)
                return self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        def settle(self) -> None:
            if fake.controller:
                JobController(fake).sync()

        def reply_empty(self, code: int) -> None:
            self.send_response(code)
            self.end_headers()

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PATCH(self):
            self.handle_any("PATCH")

        def do_DELETE(self):
            self.handle_any("DELETE")

        def do_PUT(self):
            self.handle_any("PUT")

    return Handler


@pytest.fixture
def cluster(tmp_path):
    fake = FakeKube()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": "valley"}}],
            }
        )
    )
    yield fake, kubeconfig
    server.shutdown()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real tracking server (sqlite, one worker), as port-forwarded from the cluster."""
    from manager.mlflow_ui import mlflow_server as server

    root = tmp_path_factory.mktemp("mlflow-server")
    with server(f"sqlite:///{root / 'mlflow.db'}", workdir=root) as url:
        yield url


@pytest.fixture
def ctl(monkeypatch, capsys, tmp_path):
    """The real valleyctl app and its error wrapper, in this process (the cluster paths load
    mlflow and kubernetes once instead of per command): (exit code, stdout, stderr)."""
    from manager.cli import app
    from valley.cli_kit import run_cli

    monkeypatch.chdir(tmp_path)

    def invoke(args, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        try:
            run_cli(app, list(args), prog_name="valleyctl")
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


#: images as `valleyctl images build --registry R --push` records them: pullable by a node
PUSHED = {
    role: f"registry.example.com/ml/valley-{role}:0123456789abcdef@sha256:{'0' * 64}"
    for role in ("trainer", "evaluator", "grader")
}


def env_for(kubeconfig: Path, tmp_path: Path, uri: str | None = None) -> dict:
    """The kubeconfig, the namespace, a cluster profile with pushed images, the MLflow URI."""
    profile = tmp_path / "cluster.yaml"
    profile.write_text(json.dumps({"images": PUSHED}))
    env = {
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(tmp_path),
        "VALLEY_NAMESPACE": "valley",
        "VALLEY_PROFILE": str(profile),
    }
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


@pytest.fixture
def kube_env():
    """env_for(kubeconfig, tmp_path, tracking_uri): what a valleyctl call against the fake needs."""
    return env_for
