"""MLflow run records of a study, laid out as people browse them:

    experiment valley-<study>      MLflow type "model training" (opens on the runs table), with a
                                   saved table view showing pass@1, its CI and the loss as columns
      study-<study>                the study's run (compare's plot and summary when asked)
        <label>                    one run per RunSpec, nested under it: spec params, tags,
                                   spec/run.json, manifests; the workloads attach to it
          <label>/train            `valley train`'s own run: train/ metrics, system metrics, the
                                   dataset input, the checkpoint as an external LoggedModel
          <label>/eval             `valley eval`'s own run: eval/ metrics, system metrics, artifacts

The stage runs are created by the workloads when their stage starts (valley.tracking.stage_run),
so their durations count work, not the time queued since launch.

Idempotent: a RunSpec's run is found again by its `valley.spec_hash` and name tags, so
launching the same spec twice reports the existing run instead of making a duplicate.
mlflow loads lazily (it takes over a second to import).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Callable

from valley.cli_kit import on_path
from valley.errors import ValleyError, one_line
from valley.spec import RunSpec
from valley.vocabulary import (
    ATTEMPT_TAG,
    CREATED_BY_TAG,
    EVAL_KIND,
    EVAL_METRICS,
    EXPERIMENT_KIND_TAG,
    KIND_TAG,
    LABEL_TAG,
    LAUNCH_PENDING,
    LAUNCH_TAG,
    MODEL_TRAINING,
    NAMESPACE_TAG,
    PARENT_RUN_TAG,
    PREVIOUS_RUN_TAG,
    RUN_KIND,
    RUN_NAME_TAG,
    SHARED_VIEW_TAG,
    SPEC_HASH_TAG,
    STATUS_NOTE_TAG,
    STUDY_RUN_TAG,
    STUDY_TAG,
    TRAIN_METRICS,
    VIEW_KEY,
    run_tags,
    study_tags,
    tag_filter,
)

#: MLflow RunStatus names, as the store spells them
SCHEDULED, RUNNING, FINISHED, FAILED, KILLED = "SCHEDULED", "RUNNING", "FINISHED", "FAILED", "KILLED"
TERMINAL = {FINISHED, FAILED, KILLED}
ACTIVE = {SCHEDULED, RUNNING}


def resolve_tracking_uri(flag: str | None = None) -> str:
    """`--tracking-uri`, else MLFLOW_TRACKING_URI, else `./mlflow.db` (no server needed)."""
    if flag:
        return flag
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


#: how long a tracking server has to answer before a command gives up on it
REACH_TIMEOUT_S = 5.0


def require_reachable(uri: str) -> None:
    """A tracking server answers its health check within REACH_TIMEOUT_S, or one line names the URI
    and the fix. MLflow's own client would retry for minutes before a raw error; its retries and
    timeouts are kept short here too, so a server that dies mid-command fails the command fast."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=REACH_TIMEOUT_S).close()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ValleyError(
            f"--tracking-uri: the MLflow server at {uri} does not answer ({reason}); start it, or port-forward "
            "the cluster's (`kubectl -n valley port-forward svc/valley-mlflow 5000:5000`), or pass --tracking-uri"
        ) from None


def experiment_name(study: str) -> str:
    return f"valley-{study}"


def flat_params(run: RunSpec) -> dict[str, str]:
    """The spec as dotted params; a base run is named, not repeated (it is in the artifact)."""
    spec = run.model_dump(mode="json")
    base = spec.pop("base")
    params: dict[str, str] = {}

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        else:
            params[prefix] = "" if value is None else str(value)

    walk("", spec)
    params["base"] = run.base.name if base else "none"
    return params


#: the runs-table columns the saved view shows (MLflow's canonical keys: `metrics.\`name\``)
VIEW_COLUMNS = (
    *(f"metrics.`{EVAL_METRICS}{name}`" for name in ("pass_at_1", "pass_at_1_ci_low", "pass_at_1_ci_high")),
    *(f"metrics.`{EVAL_METRICS}{name}`" for name in ("completion_rate", "think_tag_rate")),
    f"metrics.`{TRAIN_METRICS}loss`",
    "attributes.`Dataset`",
    "attributes.`Models`",
)


def experiment_tags(study: str) -> dict[str, str]:
    """The experiment's tags: its study, MLflow's "model training" type, and the saved table view."""
    view = {"selectedColumns": list(VIEW_COLUMNS), "orderByKey": "attributes.start_time", "orderByAsc": True}
    return {STUDY_TAG: study, EXPERIMENT_KIND_TAG: MODEL_TRAINING, SHARED_VIEW_TAG: json.dumps(view)}


def _local_artifact_root(tracking_uri: str) -> str | None:
    """Artifacts of a local sqlite store go beside the database file, wherever the cwd is."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


class Tracker:
    """The control plane's view of MLflow: experiments, the study run, one run per spec."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        import logging

        self.uri = resolve_tracking_uri(tracking_uri)
        require_reachable(self.uri)  # before mlflow's import, which alone takes seconds on a busy machine
        from mlflow.tracking import MlflowClient

        # a new sqlite store announces its schema migrations at INFO; the CLI's output stays ours
        for noisy in ("mlflow.store.db.utils", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.uri)

    # ------------------------------------------------------------------- experiment

    def experiment_id(self, study: str) -> str:
        name = experiment_name(study)
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            for key, value in experiment_tags(study).items():  # a store from before these tags
                if existing.tags.get(key) != value:
                    self.client.set_experiment_tag(existing.experiment_id, key, value)
            return existing.experiment_id
        root = _local_artifact_root(self.uri)
        try:
            return self.client.create_experiment(
                name, artifact_location=f"{root}/{name}" if root else None, tags=experiment_tags(study)
            )
        except Exception:  # created concurrently (two launches at once): use theirs
            existing = self.client.get_experiment_by_name(name)
            if existing is None:
                raise
            return existing.experiment_id

    def _find(self, experiment_id: str, filter_string: str, *, newest: bool = False):
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=filter_string,
            max_results=1,
            order_by=[f"attributes.start_time {'DESC' if newest else 'ASC'}"],
        )
        return runs[0] if runs else None

    def has_study_run(self, study: str) -> bool:
        experiment = self.client.get_experiment_by_name(experiment_name(study))
        return (
            experiment is not None and self._find(experiment.experiment_id, tag_filter(study_tags(study))) is not None
        )

    def study_run_id(self, study: str) -> str:
        """The study's parent run (created once, tagged `valley.kind=study`)."""
        experiment_id = self.experiment_id(study)
        found = self._find(experiment_id, tag_filter(study_tags(study)))
        if found is not None:
            return found.info.run_id
        run = self.client.create_run(experiment_id, run_name=f"study-{study}", tags=study_tags(study))
        self.client.update_run(run.info.run_id, status=SCHEDULED)
        return run.info.run_id

    # -------------------------------------------------------------------------- runs

    def find_run(self, run: RunSpec):
        """The newest MLflow run (attempt) of this exact spec, or None."""
        experiment = self.client.get_experiment_by_name(experiment_name(run.study))
        if experiment is None:
            return None
        return self._find(
            experiment.experiment_id,
            tag_filter({SPEC_HASH_TAG: run.spec_hash, RUN_NAME_TAG: run.name}),
            newest=True,
        )

    def find_by_name(self, study: str, run_name: str):
        """The newest attempt of a run by name, or None."""
        experiment = self.client.get_experiment_by_name(experiment_name(study))
        if experiment is None:
            return None
        return self._find(experiment.experiment_id, tag_filter({RUN_NAME_TAG: run_name}), newest=True)

    def recorded(self, study: str, wanted: str) -> list:
        """The newest attempt of each run of `study` whose label or name is `wanted`."""
        experiment = self.client.get_experiment_by_name(experiment_name(study))
        if experiment is None or "'" in wanted:  # no label or name holds a quote
            return []
        newest: dict[str, object] = {}
        for tag in (LABEL_TAG, RUN_NAME_TAG):
            for found in self.client.search_runs(
                [experiment.experiment_id],
                filter_string=tag_filter({KIND_TAG: RUN_KIND, tag: wanted}),
                order_by=["attributes.start_time DESC"],
                max_results=1000,
            ):
                newest.setdefault(found.data.tags.get(RUN_NAME_TAG), found)
        return list(newest.values())

    def recorded_spec(self, record) -> RunSpec:
        """The spec a run was recorded with (its `spec/run.json` artifact), checked against its name."""
        import tempfile

        name = record.data.tags.get(RUN_NAME_TAG)
        with tempfile.TemporaryDirectory(prefix="valley-spec-") as scratch:
            try:
                path = self.client.download_artifacts(record.info.run_id, "spec/run.json", scratch)
                spec = RunSpec.from_json(Path(path).read_text())
            except Exception as error:  # absent, or not a spec: the record cannot say which run it is
                raise ValleyError(
                    f"MLflow run {record.info.run_id} ({name}): its spec/run.json cannot be read ({one_line(error)})"
                ) from None
        if spec.name != name:
            raise ValleyError(
                f"MLflow run {record.info.run_id}: its spec/run.json is run {spec.name}, its tag says {name}"
            )
        return spec

    def ensure_run(
        self,
        run: RunSpec,
        manifests: str | None = None,
        *,
        restart: frozenset[str] = frozenset({KILLED}),
        tags: dict[str, str] | None = None,
        recorded: Callable[[str], None] | None = None,
    ) -> tuple[str, bool]:
        """(run id, created): the newest run of this spec, or a new SCHEDULED one with tags (`tags`
        added, in the same request that creates it), params, the spec JSON and (when given) the
        rendered manifests as artifacts. `recorded` gets the new run's id as soon as it exists, so a
        caller can undo a run whose filling-in failed.

        A newest run whose status is in `restart` (a cancelled one) is never reopened: the
        relaunch is a new attempt, tagged `valley.attempt` and `valley.previous_run_id`."""
        found = self.find_run(run)
        if found is not None and found.info.status not in restart:
            return found.info.run_id, False
        from mlflow.entities import Param

        experiment_id = self.experiment_id(run.study)
        parent = self.study_run_id(run.study)
        attempt = {}
        if found is not None:
            attempt = {
                ATTEMPT_TAG: str(int(found.data.tags.get(ATTEMPT_TAG, "1")) + 1),
                PREVIOUS_RUN_TAG: found.info.run_id,
            }
        created = self.client.create_run(
            experiment_id,
            run_name=run.label,
            tags={**run_tags(run), STUDY_RUN_TAG: parent, PARENT_RUN_TAG: parent, **attempt, **(tags or {})},
        )
        run_id = created.info.run_id
        if recorded is not None:
            recorded(run_id)
        params = [Param(k, v) for k, v in sorted(flat_params(run).items())]
        for start in range(0, len(params), 100):  # the store takes at most 100 params a batch
            self.client.log_batch(run_id, params=params[start : start + 100])
        self.client.log_dict(run_id, json.loads(run.to_json()), "spec/run.json")
        if manifests is not None:
            self.log_manifests(run_id, manifests)
        self.client.set_tag(run_id, CREATED_BY_TAG, "valleyctl")
        self.client.update_run(run_id, status=SCHEDULED)
        return run_id, True

    def log_manifests(self, run_id: str, manifests: str) -> None:
        self.client.log_text(run_id, manifests, "manifests/manifests.yaml")

    def status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    def set_status(self, run_id: str, status: str, *, note: str | None = None) -> None:
        """Mirror a state into the run; terminal states also set the end time."""
        if note:
            self.client.set_tag(run_id, STATUS_NOTE_TAG, note)
        if status in TERMINAL:
            # against an http server MLflow prints "View run ... at: <url>" to stdout, which would
            # break `--json` documents; valleyctl's own output names the run already
            with contextlib.redirect_stdout(io.StringIO()):
                self.client.set_terminated(run_id, status=status)
                if status != FINISHED:  # a stage stopped from outside (cancel, a killed pod) ends with its run
                    for stage in self._children(run_id, ACTIVE):
                        self.client.set_terminated(stage.info.run_id, status=status)
        else:
            self.client.update_run(run_id, status=status)

    def _children(self, run_id: str, statuses: set[str]) -> list:
        run = self.client.get_run(run_id)
        children = self.client.search_runs([run.info.experiment_id], tag_filter({PARENT_RUN_TAG: run_id}))
        return [child for child in children if child.info.status in statuses]

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def delete_run(self, run_id: str) -> None:
        """Undo a run this launch recorded (it moves to MLflow's deleted lifecycle stage)."""
        self.client.delete_run(run_id)

    def study_runs(self, study: str) -> list:
        experiment = self.client.get_experiment_by_name(experiment_name(study))
        if experiment is None:
            return []
        return self.client.search_runs(
            [experiment.experiment_id],
            filter_string=tag_filter({KIND_TAG: RUN_KIND}),
            max_results=1000,
            order_by=["attributes.start_time ASC"],
        )

    def pending_launches(self, namespace: str) -> list:
        """The runs a cluster launch into `namespace` recorded and never finished (a pending run is its run's
        newest attempt: a relaunch resumes it rather than starting another)."""
        experiments = [e.experiment_id for e in self.client.search_experiments() if e.name.startswith("valley-")]
        if not experiments:
            return []
        return self.client.search_runs(
            experiments,
            filter_string=tag_filter({KIND_TAG: RUN_KIND, NAMESPACE_TAG: namespace, LAUNCH_TAG: LAUNCH_PENDING}),
            max_results=1000,
        )

    def unreachable(self) -> str | None:
        """Why the tracking server does not answer now (one line), or None when it does."""
        try:
            require_reachable(self.uri)
        except ValleyError as error:
            return str(error)
        return None

    def stage_runs(self, study: str, kind: str) -> dict[str, object]:
        """The study's stage runs of one kind (`train`, `eval`) by the id of the run they belong
        to; the newest where a stage was recorded twice."""
        experiment = self.client.get_experiment_by_name(experiment_name(study))
        if experiment is None:
            return {}
        found = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=tag_filter({KIND_TAG: kind}),
            max_results=5000,
            order_by=["attributes.start_time ASC"],
        )
        return {run.data.tags[PARENT_RUN_TAG]: run for run in found if PARENT_RUN_TAG in run.data.tags}

    def evaluations(self, study: str) -> dict[str, tuple[object, dict[str, float]]]:
        """Each evaluated run's eval run and its `eval/` metrics (prefix dropped: `pass_at_1`), by
        the id of the run evaluated."""
        return {
            parent: (
                run,
                {k.removeprefix(EVAL_METRICS): v for k, v in run.data.metrics.items() if k.startswith(EVAL_METRICS)},
            )
            for parent, run in self.stage_runs(study, EVAL_KIND).items()
        }

    def run_url(self, run_id: str) -> str:
        """A link for http stores; for a local store, the `mlflow ui` command that shows it."""
        run = self.client.get_run(run_id)
        if self.uri.startswith("http"):
            return f"{self.uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
        where = f"experiment {run.info.experiment_id}, run {run_id}"
        return f"{on_path('mlflow')} ui --backend-store-uri {self.uri}  ({where})"

    def ui_hint(self, study: str) -> str:
        """Where to look at a study: its runs table in valley's view (a local store: the `mlflow ui`
        command first, which serves on port 5000)."""
        experiment = self.client.get_experiment_by_name(experiment_name(study))
        where = f"#/experiments/{experiment.experiment_id if experiment else ''}/runs?viewStateShareKey={VIEW_KEY}"
        where += "&workflowType=machine_learning"
        if self.uri.startswith("http"):
            return f"{self.uri.rstrip('/')}/{where}"
        return f"{on_path('mlflow')} ui --backend-store-uri {self.uri}, then http://127.0.0.1:5000/{where}"
