"""Job specs shared by the API, the CLIs and the trainer: one schema, no copies.

Torch-free on purpose: `service` imports this module at start-up.
"""

from trainer.spec.eval import BENCHMARK_NAMES, CheckpointRef, EvalModel, EvalSpec
from trainer.spec.jobs import EvalJobRequest, JobRequest, Resources, TrainJobRequest, load_job_file
from trainer.spec.loss import LOSS_AGG_MODES, POLICY_LOSS_NAMES, PolicyLossConfig
from trainer.spec.schedule import (
    JobBaseline,
    LatestCheckpointOf,
    ScheduleEvalSpec,
    SchedulePatch,
    ScheduleRequest,
    ScheduleTarget,
)
from trainer.spec.train import (
    ADVANTAGE_ESTIMATORS,
    REWARD_NAMES,
    AlgorithmConfig,
    CheckpointConfig,
    DatasetConfig,
    LoggingConfig,
    ModelConfig,
    OptimConfig,
    PeriodicEvalConfig,
    PromptConfig,
    RolloutConfig,
    TrainSpec,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "BENCHMARK_NAMES",
    "LOSS_AGG_MODES",
    "POLICY_LOSS_NAMES",
    "REWARD_NAMES",
    "AlgorithmConfig",
    "CheckpointConfig",
    "CheckpointRef",
    "DatasetConfig",
    "EvalJobRequest",
    "EvalModel",
    "EvalSpec",
    "JobBaseline",
    "JobRequest",
    "LatestCheckpointOf",
    "LoggingConfig",
    "ModelConfig",
    "OptimConfig",
    "PeriodicEvalConfig",
    "PolicyLossConfig",
    "PromptConfig",
    "Resources",
    "RolloutConfig",
    "ScheduleEvalSpec",
    "SchedulePatch",
    "ScheduleRequest",
    "ScheduleTarget",
    "TrainJobRequest",
    "TrainSpec",
    "load_job_file",
]
