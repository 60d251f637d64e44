"""research: pure-function Flax models and a shared JAX training core.

The headline names are here; each subpackage exports the rest of its public API
(its `__all__`): `research.models`, `research.train`, `research.data`,
`research.tasks`, `research.families`, and the modules `research.diffusion`
(schedules, q(x_t | x_0), DDPM and DDIM samplers, classifier-free guidance) and
`research.decoding` (greedy and beam search). Anything not exported (names with a
leading `_`, and module-level helpers not listed in an `__all__`) may change.

Importing this package parses no flags, imports no TensorFlow, touches no network
and allocates no device memory.
"""

from research import decoding
from research import diffusion
from research.decoding import beam_search
from research.decoding import greedy
from research.diffusion import Schedule
from research.diffusion import classifier_free_guidance
from research.diffusion import ddim_sample
from research.diffusion import ddpm_sample
from research.diffusion import make_schedule
from research.diffusion import q_sample
from research.errors import NonFiniteLossError
from research.errors import Preempted
from research.errors import UserInputError
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
  'decoding',
  'diffusion',
  'eval_step',
  'greedy',
  'init_train_state',
  'make_driver',
  'make_optimizer',
  'make_schedule',
  'q_sample',
  'train_step',
]
__version__ = '0.1.0'
