"""The shared training core: steps, drivers, optimisers, loop, checkpoints, metrics.

- Steps (`steps.py`): `TrainState` (and `CarriedTrainState`, which also carries a
  recurrent state from step to step), the pure `train_step` and `eval_step`, whose task
  plugs in one `LossFn` (params, batch, rng, train) -> ({name: (sum, count)}, aux),
  or a `SplitLoss` whose first half prepares the model's inputs (`prepare_train_batch`
  runs it as a train step would); `split_batch` cuts a batch into micro-batches.
- State (`state.py`): `init_train_state`, `abstract_train_state` (shapes only, via
  `jax.eval_shape`) and `count_params`.
- Optimisers (`optimizers.py`): `OptimizerConfig` and `make_optimizer`.
- Drivers (`parallel.py`): `make_driver` builds a `DataParallel` (jit over a device
  mesh) or `PmapDataParallel` that run the steps on data gathered by `take_examples`.
- Batch plans (`batch_plans.py`): `batch_plan`, the fixed-shape indices and masks of
  one pass, and `IndexSource`, the examples of every training step.
- Input pipelines (`input_pipeline.py`): 'device' (the split on the devices) or
  'stream' (batches gathered on the host, by the same plan, and streamed to them).
- Evaluation (`evaluation.py`): `evaluate` scores every example once, in order.
- The step loop (`step_loop.py`): `run_steps` dispatches chunks of steps, checks
  their metrics for non-finite values (`check_finite`) and calls the trainer's hooks.
- Runs (`trainer.py`): `train_and_evaluate` runs a `Family` (its `TrainData` and
  `Model`) in a workdir, `train_in_memory` without one, each through a `Run`;
  `Checkpointer` (`checkpoint.py`, orbax); `MetricSums` and `MetricWriter`
  (`metrics.py`); `StopOnSignal` (`preemption.py`); `initialize` and `is_primary`
  (`distributed.py`, multi-process runs).
- Efficiency (`efficiency.py`): FLOPs per train step from XLA's cost analysis, the
  devices' peak, MFU and where a run's wall time went; `profiling.py` traces the steps
  `profile_steps` names.

The trainer and checkpoint names are imported on first use: `import research.train`
does not import orbax.
"""

from typing import TYPE_CHECKING

from research._lazy import lazy_attributes
from research.train.batch_plans import batch_plan
from research.train.distributed import initialize
from research.train.distributed import is_primary
from research.train.evaluation import evaluate
from research.train.metrics import MetricSums
from research.train.metrics import MetricWriter
from research.train.optimizers import OptimizerConfig
from research.train.optimizers import make_optimizer
from research.train.parallel import DataParallel
from research.train.parallel import PmapDataParallel
from research.train.parallel import make_driver
from research.train.parallel import take_examples
from research.train.preemption import StopOnSignal
from research.train.state import abstract_train_state
from research.train.state import count_params
from research.train.state import init_train_state
from research.train.steps import CarriedTrainState
from research.train.steps import LossFn
from research.train.steps import SplitLoss
from research.train.steps import TrainState
from research.train.steps import eval_step
from research.train.steps import prepare_train_batch
from research.train.steps import split_batch
from research.train.steps import train_step

if TYPE_CHECKING:
  from research.train.checkpoint import Checkpointer
  from research.train.trainer import Family
  from research.train.trainer import Model
  from research.train.trainer import Run
  from research.train.trainer import TrainData
  from research.train.trainer import train_and_evaluate
  from research.train.trainer import train_in_memory

_LAZY = {
  'Checkpointer': 'research.train.checkpoint',
  'Family': 'research.train.trainer',
  'Model': 'research.train.trainer',
  'Run': 'research.train.trainer',
  'TrainData': 'research.train.trainer',
  'train_and_evaluate': 'research.train.trainer',
  'train_in_memory': 'research.train.trainer',
}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = [
  'CarriedTrainState',
  'Checkpointer',
  'DataParallel',
  'Family',
  'LossFn',
  'MetricSums',
  'MetricWriter',
  'Model',
  'OptimizerConfig',
  'PmapDataParallel',
  'Run',
  'SplitLoss',
  'StopOnSignal',
  'TrainData',
  'TrainState',
  'abstract_train_state',
  'batch_plan',
  'count_params',
  'eval_step',
  'evaluate',
  'init_train_state',
  'initialize',
  'is_primary',
  'make_driver',
  'make_optimizer',
  'prepare_train_batch',
  'split_batch',
  'take_examples',
  'train_and_evaluate',
  'train_in_memory',
  'train_step',
]
