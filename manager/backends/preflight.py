"""`valleyctl launch --dry-run` on a cluster: every check the real launch makes, with each refusal
collected instead of stopping at the first, and a summary of what the launch would start. Nothing
is created: the API objects go through the server's dry-run, MLflow is only asked for its health."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from valley.errors import ValleyError, one_line
from valley.spec import RunSpec

#: the roles whose images a run's pods use (the kit's control image is set in its overlay)
POD_ROLES = ("trainer", "evaluator", "grader")


@dataclass(frozen=True)
class Preflight:
    runs: list[str]
    #: GPUs the largest run asks for at once (training or evaluation)
    peak_gpus: int
    train_gpu_hours: float
    eval_gpu_hours: float
    #: role -> (image ref, whether a node can get it)
    images: dict[str, tuple[str, str]]
    objects: int
    refusals: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [
            f"dry run: {len(self.runs)} run(s): {', '.join(self.runs)}",
            f"  GPUs: up to {self.peak_gpus} at once for one run; "
            f"≈ {self.train_gpu_hours:,.0f} GPU-hours training + {self.eval_gpu_hours:,.0f} evaluation "
            "(`valleyctl plan` shows the assumptions)",
        ]
        lines += [f"  image {role}: {ref} ({state})" for role, (ref, state) in self.images.items()]
        lines.append(f"  {self.objects} objects checked by the API server's dry-run; nothing was created")
        lines.append("  manifests: `valleyctl render` with the same selection")
        if self.refusals:
            lines.append(f"the real launch would be refused ({len(self.refusals)}):")
            lines += [f"  - {reason}" for reason in self.refusals]
        else:
            lines.append("the real launch would go ahead")
        return "\n".join(lines) + "\n"


def preflight(backend, runs: list[RunSpec]) -> Preflight:
    """What `backend.launch(runs)` would check, in the same order, each refusal kept."""
    from manager.images import require_pullable
    from manager.render import render_runs
    from manager.study import gpu_hours
    from manager.tracking import require_reachable, resolve_tracking_uri

    ctx = backend.context
    refusals: list[str] = []
    uri = resolve_tracking_uri(backend.tracking_uri)
    try:
        if not uri.startswith(("http://", "https://")):
            from manager.backends.kubernetes import NEEDS_SERVER

            raise ValleyError(NEEDS_SERVER.format(ns=backend.namespace))
        require_reachable(uri)
    except ValleyError as error:
        refusals.append(one_line(error))
    try:
        require_pullable(ctx.images, ctx.profile.image_pull_policy)
    except ValleyError as error:
        refusals.append(one_line(error))
    objects = render_runs(runs, replace(ctx, run_id="dry-run"))
    refused: dict[str, list[str]] = {}  # one reason (a missing namespace, a Role) often refuses many objects
    try:
        kube = backend.kube
        for obj in objects:  # namespace, RBAC, quota and admission, schema validation
            try:
                kube.create(obj, dry_run=True)
            except Exception as error:
                name = obj["metadata"]["name"]
                reason = one_line(error)
                head, _, rest = reason.partition(": ")
                if name in head and rest:  # "Job ns/name: forbidden ...": one reason for every object it refuses
                    reason = rest
                refused.setdefault(reason, []).append(f"{obj['kind']} {name}")
    except ValleyError as error:  # no cluster to ask
        refused[one_line(error)] = []
    for reason, names in refused.items():
        more = f" ({len(names)} objects, first {names[0]})" if len(names) > 1 else f" ({names[0]})" if names else ""
        refusals.append(reason + more)
    hours = [gpu_hours(run) for run in runs]
    never = ctx.profile.image_pull_policy == "Never"
    return Preflight(
        runs=[run.label for run in runs],
        peak_gpus=max(max(run.train.data_parallel_size if run.train else 0, run.eval.gpus) for run in runs),
        train_gpu_hours=sum(train for train, _ in hours),
        eval_gpu_hours=sum(evaluation for _, evaluation in hours),
        images={role: (ctx.images[role], image_state(ctx.images[role], never)) for role in POD_ROLES},
        objects=len(objects),
        refusals=refusals,
    )


def image_state(ref: str, loaded_into_nodes: bool) -> str:
    if loaded_into_nodes:
        return "loaded into the nodes: pull policy Never"
    return "pushed, pinned by digest" if "@sha256:" in ref else "not pushed: a node cannot pull it"
