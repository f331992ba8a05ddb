"""The names valleyctl and the workloads agree on: the Kubernetes labels, annotations and label
selectors on what a run renders, and the MLflow tags on what it records, with their builders.

Every key is written here once; render writes them, the backends and the reconciler select and
read by them, tracking records them and compare reads them back. It sits at the bottom of valley/
because the workloads write some of the tags the control plane reads (valley/ never imports
manager/); it imports nothing but the spec.
"""

from __future__ import annotations

from valley.spec import RunSpec, format_size

# ------------------------------------------------------------------ Kubernetes labels

#: the recommended labels (app.kubernetes.io/*) on every object valleyctl renders
APP_NAME = "app.kubernetes.io/name"
APP_INSTANCE = "app.kubernetes.io/instance"
APP_COMPONENT = "app.kubernetes.io/component"
APP_PART_OF = "app.kubernetes.io/part-of"
APP_MANAGED_BY = "app.kubernetes.io/managed-by"
#: the run an object belongs to (its name), and its study, research question and spec hash
RUN_LABEL = "valley.run"
STUDY_LABEL = "valley.study"
RQ_LABEL = "valley.rq"
SPEC_HASH_LABEL = "valley.spec-hash"
#: on shared data Jobs (no RUN_LABEL: they serve several runs): fetch | lcb | data
SHARED_LABEL = "valley.shared"
#: on a continued run's train Job: the run whose checkpoint it starts from
BASE_RUN_LABEL = "valley.base-run"
#: set by the Job controller on the pods of a Job
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
#: the label Kueue admits a Job on
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

#: components: a run's own Jobs, its grader and ConfigMaps, the shared data Jobs
STAGE_COMPONENTS = ("data", "train", "eval")
GRADER_COMPONENT, CONFIG_COMPONENT, DATA_COMPONENT = "grader", "config", "data"

# ------------------------------------------------------------- Kubernetes annotations

#: a gated Job's annotation naming the Jobs that must succeed before the reconciler opens it
NEEDS_ANNOTATION = "valley/needs"
#: a gated Job's Kueue queue; the reconciler turns it into QUEUE_LABEL when the gate opens
#: (Kueue would otherwise admit and unsuspend it too early)
QUEUE_ANNOTATION = "valley/queue"
#: the run's label (qwen-10k) on each of its objects
LABEL_ANNOTATION = "valley/label"
#: a shared Job's stage key (data:<subset>, fetch:<preset>, lcb:<window>)
STAGE_ANNOTATION = "valley/stage"


def common_labels(instance: str, component: str) -> dict[str, str]:
    return {
        APP_NAME: "valley",
        APP_INSTANCE: instance,
        APP_COMPONENT: component,
        APP_PART_OF: "valley",
        APP_MANAGED_BY: "valleyctl",
    }


def run_labels(run: RunSpec, component: str) -> dict[str, str]:
    """The labels of a run's own objects: the recommended ones plus those the CLI selects on."""
    return {
        **common_labels(run.name, component),
        RUN_LABEL: run.name,
        STUDY_LABEL: run.study,
        RQ_LABEL: run.rq,
        SPEC_HASH_LABEL: run.spec_hash,
    }


def shared_labels(name: str, kind: str) -> dict[str, str]:
    """A shared data Job's labels; no RUN_LABEL, so cancelling one run never deletes it."""
    return {**common_labels(name, DATA_COMPONENT), SHARED_LABEL: kind}


def run_component(run_name: str, component: str) -> dict[str, str]:
    """matchLabels picking a run's pods of one component."""
    return {RUN_LABEL: run_name, APP_COMPONENT: component}


def label(obj: dict, key: str) -> str | None:
    """A label of an object as the API returns it (labels may be absent or null)."""
    return ((obj.get("metadata") or {}).get("labels") or {}).get(key)


def annotation(obj: dict, key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(key)


# ------------------------------------------------------------ Kubernetes label selectors


def selector(labels: dict[str, str]) -> str:
    """A label selector string (`k=v,k=v`) for list calls."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


#: everything valleyctl rendered
ALL_OBJECTS = selector({APP_PART_OF: "valley"})
#: every run's spec and MLflow ConfigMaps
CONFIGMAPS = selector({APP_PART_OF: "valley", APP_COMPONENT: CONFIG_COMPONENT})


def of_run(run_name: str) -> str:
    """A run's own objects (never the shared data Jobs)."""
    return selector({RUN_LABEL: run_name})


def pods_of_job(job_name: str) -> str:
    return selector({JOB_NAME_LABEL: job_name})


# ----------------------------------------------------------------------- MLflow tags

#: `run` on a cell's run, `study` on the study's parent run
KIND_TAG = "valley.kind"
RUN_KIND, STUDY_KIND = "run", "study"
STUDY_TAG = "valley.study"
RUN_NAME_TAG = "valley.run_name"
LABEL_TAG = "valley.label"
SPEC_HASH_TAG = "valley.spec_hash"
RQ_TAG = "valley.rq"
MODEL_TAG = "valley.model"
SIZE_TAG = "valley.size"
SUBSET_TAG = "valley.subset"
BASE_TAG = "valley.base"
#: links a run to its study run (besides PARENT_RUN_TAG, which nests it there in the UI)
STUDY_RUN_TAG = "valley.study_run_id"
#: MLflow's own parent link: the UI nests a run under its parent (study run > cell run > stages)
PARENT_RUN_TAG = "mlflow.parentRunId"
#: a cell's stage runs, children of its run, each created by the workload doing the stage's work
#: (so its duration counts that work, not the queue): `valley train` and `valley eval`
TRAIN_KIND, EVAL_KIND = "train", "eval"
#: metrics by namespace, so the UI groups its charts: `train/loss`, `eval/pass_at_1`, `system/...`
TRAIN_METRICS, EVAL_METRICS, SYSTEM_METRICS = "train/", "eval/", "system/"
#: a relaunch after cancel or failure is a new attempt: its number and the run it follows
ATTEMPT_TAG = "valley.attempt"
PREVIOUS_RUN_TAG = "valley.previous_run_id"
CREATED_BY_TAG = "valley.created_by"
#: where a run was launched (k8s, local): what `logs` and `cancel` use when no --executor is given
EXECUTOR_TAG = "valley.executor"
#: the namespace a cluster launch put the run's objects in
NAMESPACE_TAG = "valley.namespace"
#: a cluster launch records a run `pending` until every object of it exists, then `done`; a pending run with
#: nothing in its namespace after LAUNCH_DEADLINE_TAG (UTC, ISO 8601) is one the reconciler marks KILLED, `abandoned`
LAUNCH_TAG = "valley.launch"
LAUNCH_DEADLINE_TAG = "valley.launch_deadline"
LAUNCH_PENDING, LAUNCH_DONE, LAUNCH_ABANDONED = "pending", "done", "abandoned"
#: why the run has its status (cancelled, interrupted, a failed step's log)
STATUS_NOTE_TAG = "valley.status_note"
#: one line saying why the run failed; FAILURE_TAG.<field> holds its parts (stage, reason, ...)
FAILURE_TAG = "valley.failure"
#: the eval spec a run was evaluated with (canonical JSON), written by `valley eval`
EVAL_SPEC_TAG = "valley.eval_spec"


#: the experiment's type in the MLflow UI: model training opens on the runs table (not on the
#: GenAI overview of traces, where the runs appeared under "Evaluations")
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
#: an experiment tag holding a saved runs-table view (MLflow's "share view"); the UI opens it at
#: `#/experiments/<id>/runs?viewStateShareKey=valley`
VIEW_KEY = "valley"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"


def stage_run_name(label: str, kind: str) -> str:
    return f"{label}/{kind}"


def stage_tags(parent_run_id: str, parent_tags: dict[str, str], kind: str) -> dict[str, str]:
    """A stage run's tags: nested under the cell's run, and carrying the cell's identity."""
    identity = {key: parent_tags[key] for key in (STUDY_TAG, RUN_NAME_TAG, LABEL_TAG) if key in parent_tags}
    return {**identity, KIND_TAG: kind, PARENT_RUN_TAG: parent_run_id}


def failure_tags(failure: dict[str, str], line: str) -> dict[str, str]:
    """The failure line and each of its fields as `valley.failure.<field>`."""
    return {f"{FAILURE_TAG}.{key}": value for key, value in failure.items()} | {FAILURE_TAG: line}


def logs_tag(stage: str) -> str:
    """Set once a stage's pod logs are uploaded as artifacts."""
    return f"valley.logs.{stage}"


def run_tags(run: RunSpec) -> dict[str, str]:
    """What a cell's MLflow run is found and grouped by."""
    return {
        KIND_TAG: RUN_KIND,
        STUDY_TAG: run.study,
        RUN_NAME_TAG: run.name,
        LABEL_TAG: run.label,
        SPEC_HASH_TAG: run.spec_hash,
        RQ_TAG: run.rq,
        MODEL_TAG: run.model.preset,
        SIZE_TAG: format_size(run.data.size) if run.data else "0",
        SUBSET_TAG: run.data.subset if run.data else "none",
        BASE_TAG: run.base.label if run.base else "none",
    }


def study_tags(study: str) -> dict[str, str]:
    return {KIND_TAG: STUDY_KIND, STUDY_TAG: study}


def tag_filter(tags: dict[str, str]) -> str:
    """An MLflow search filter matching every tag exactly (values never hold a quote: they are
    names, hashes and labels)."""
    quoted = [value for value in tags.values() if "'" in value]
    if quoted:
        raise ValueError(f"MLflow tag filter: a value holds a quote: {quoted[0]!r}")
    return " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
