"""torchtune's MLFlowLogger, attached to the run the control plane pre-created.

torchtune 0.6.1's MLFlowLogger attaches to an existing run only through MLFLOW_RUN_ID (its
`run_id` argument is ignored) and reads `self._nested_run`, which it never sets. Its
`log_config` logs the flattened config as params, which fails on a resumed attempt because
MLflow params are immutable and a resumed config differs (resume flag, shard paths); it also
files the config under the absolute output path. This subclass fixes those three things, logs
path params relative to the run's directory (no machine paths in a store that moves) and the
recipe's metrics (loss, lr, tokens_per_second_per_gpu by step) under `train/`, so the UI groups
them. MLFLOW_RUN_ID is the `<label>/train` run `valley train` opened (valley.tracking.stage_run);
without it it logs nothing: workloads never create runs of their own.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torchtune.training.metric_logging import MLFlowLogger, flatten_dict, save_config

from valley.vocabulary import TRAIN_METRICS

#: params from the rendered config are logged under this prefix, apart from the spec's own params
PARAM_PREFIX = "torchtune."
CONFIG_ARTIFACT_DIR = "train"


class AttachedMLFlowLogger(MLFlowLogger):
    def __init__(self) -> None:
        self._nested_run = False
        self._enabled = bool(os.environ.get("MLFLOW_RUN_ID"))
        if self._enabled:
            super().__init__()
        else:
            import mlflow

            self._mlflow = mlflow
            self.rank, self._run_id = 0, None

    def log_config(self, config: DictConfig) -> None:
        if not self._enabled or not self._mlflow.active_run():
            return
        client = self._mlflow.MlflowClient()
        logged = client.get_run(self._run_id).data.params
        run_dir = Path(config.output_dir).parent
        params = {
            PARAM_PREFIX + key: relative_path(value, run_dir)
            for key, value in flatten_dict(OmegaConf.to_container(config, resolve=True)).items()
            if PARAM_PREFIX + key not in logged  # a resumed attempt keeps the first attempt's values
        }
        if params:
            self._mlflow.log_params(params, run_id=self._run_id)
        self._mlflow.log_artifact(str(save_config(config)), artifact_path=CONFIG_ARTIFACT_DIR, run_id=self._run_id)

    def log(self, name, data, step) -> None:
        if self._enabled:
            super().log(TRAIN_METRICS + name, data, step)

    def log_dict(self, payload, step) -> None:
        if self._enabled:
            super().log_dict({TRAIN_METRICS + name: value for name, value in payload.items()}, step)

    def close(self) -> None:
        if self._enabled:
            super().close()

    def __del__(self) -> None:
        if getattr(self, "_enabled", False):
            super().__del__()


def relative_path(value, run_dir: Path):
    """An absolute path as seen from the run directory (`torchtune`, `../../models/qwen`); other values as is."""
    if isinstance(value, str) and value.startswith("/"):
        return os.path.relpath(value, run_dir)
    return value
