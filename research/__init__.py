"""research: pure-function Flax models and a shared JAX training core.

Importing this package parses no flags, imports no TensorFlow, touches no network
and allocates no device memory.
"""

from research.errors import UserInputError
from research.models.cnn import CNN, CNNConfig
from research.models.rnn import Bidirectional, CharLM, CharLMConfig, Recurrent
from research.models.transformer import Transformer, TransformerConfig
from research.train.optimizers import OptimizerConfig, make_optimizer
from research.train.steps import TrainState, eval_step, train_step

__all__ = [
    'Bidirectional', 'CNN', 'CNNConfig', 'CharLM', 'CharLMConfig', 'OptimizerConfig',
    'Recurrent', 'TrainState', 'Transformer',
    'TransformerConfig', 'UserInputError', 'eval_step', 'make_optimizer', 'train_step',
]
__version__ = '0.1.0'
