"""research: pure-function Flax models and a shared JAX training core.

The headline names are here; each subpackage exports the rest of its public API
(its `__all__`): `research.models`, `research.data`, `research.generation`
(greedy and beam search, character sampling, next-word search, diffusion schedules
and samplers), `research.train`, `research.tasks` and `research.families`. Anything
not exported (names with a leading `_`, and module-level helpers not listed in an
`__all__`) may change.

`load_run(workdir)` reads a trained run back from its directory (see
`research.families.loaded_run`); it is imported on first use.

`research.platform_policy` makes every platform-specific choice of the library (the
CPU paths of the models and drivers, and the automatic parts of a train batch,
`batch_parts`), each named there with its reason.

Importing this package parses no flags, imports no TensorFlow, touches no network
and allocates no device memory.
"""

from typing import TYPE_CHECKING

from research import generation
from research import platform_policy
from research._lazy import lazy_attributes
from research.errors import NonFiniteLossError
from research.errors import Preempted
from research.errors import UserInputError
from research.generation import Schedule
from research.generation import beam_search
from research.generation import classifier_free_guidance
from research.generation import ddim_sample
from research.generation import ddpm_sample
from research.generation import greedy
from research.generation import make_schedule
from research.generation import q_sample
from research.models import CNN
from research.models import Bidirectional
from research.models import CharLM
from research.models import CharLMConfig
from research.models import CNNConfig
from research.models import Denoiser
from research.models import Recurrent
from research.models import RecurrentCell
from research.models import TextEncoder
from research.models import TextEncoderConfig
from research.models import Transformer
from research.models import TransformerConfig
from research.models import UNet
from research.models import UNetConfig
from research.train import OptimizerConfig
from research.train import TrainState
from research.train import count_params
from research.train import eval_step
from research.train import init_train_state
from research.train import make_driver
from research.train import make_optimizer
from research.train import train_step

if TYPE_CHECKING:
  from research.families.loaded_run import load_run

# Reading a run back needs orbax and the families: imported on first use.
__getattr__, __dir__ = lazy_attributes(__name__, {'load_run': 'research.families.loaded_run'})

__all__ = [
  'Bidirectional',
  'CNN',
  'CNNConfig',
  'CharLM',
  'CharLMConfig',
  'Denoiser',
  'NonFiniteLossError',
  'OptimizerConfig',
  'Preempted',
  'Recurrent',
  'RecurrentCell',
  'Schedule',
  'TextEncoder',
  'TextEncoderConfig',
  'TrainState',
  'Transformer',
  'TransformerConfig',
  'UNet',
  'UNetConfig',
  'UserInputError',
  'beam_search',
  'classifier_free_guidance',
  'count_params',
  'ddim_sample',
  'ddpm_sample',
  'eval_step',
  'generation',
  'greedy',
  'init_train_state',
  'load_run',
  'make_driver',
  'make_optimizer',
  'make_schedule',
  'platform_policy',
  'q_sample',
  'train_step',
]
__version__ = '0.1.0'
