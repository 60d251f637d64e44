"""Flax (linen) models, one family per module, each with a frozen config dataclass.

- `CNN`, `CNNConfig` (`cnn.py`): the seed's image classifier; `Conv3x3` and
  `max_pool2` (`layers.py`) are its building blocks.
- `Recurrent` (an LSTM/GRU layer under `lax.scan`), `RecurrentCell` (the same step for
  `flax.linen.RNN`), `Bidirectional`, `CharLM`, `CharLMConfig`, `zero_lm_carry`
  (`rnn.py`; `research.generation` samples text from a `CharLM`). The cells
  `lstm_cell`, `gru_cell`, `zero_carry` and the scan over time with its CPU gradient
  are in `recurrence.py`.
- `Transformer`, `TransformerConfig` (`transformer.py`): encoder-decoder with a KV
  cache for decoding; `MultiHeadAttention`, `padding_mask`, `causal_mask`
  (`attention.py`); `sinusoidal_positions`. Rotary and randomized position
  encodings (`TransformerConfig.positional`) are in `positions.py`.
- `UNet`, `UNetConfig` (`unet.py`), `TextEncoder`, `TextEncoderConfig`
  (`text_encoder.py`; its prompts are tokenized by `research.data.WordTokenizer`),
  and `Denoiser` (`denoiser.py`): the prompt-conditioned DDPM's noise predictor.
- `cnn_params_from_torch`, `cnn_params_to_torch` (`torch_weights.py`): the seed's
  PyTorch `MY_NET` weights in and out of `CNN`.
"""

from research.models.attention import MultiHeadAttention
from research.models.attention import causal_mask
from research.models.attention import padding_mask
from research.models.cnn import CNN
from research.models.cnn import CNNConfig
from research.models.denoiser import Denoiser
from research.models.layers import Conv3x3
from research.models.layers import max_pool2
from research.models.recurrence import gru_cell
from research.models.recurrence import lstm_cell
from research.models.recurrence import zero_carry
from research.models.rnn import Bidirectional
from research.models.rnn import CharLM
from research.models.rnn import CharLMConfig
from research.models.rnn import Recurrent
from research.models.rnn import RecurrentCell
from research.models.rnn import zero_lm_carry
from research.models.text_encoder import TextEncoder
from research.models.text_encoder import TextEncoderConfig
from research.models.torch_weights import cnn_params_from_torch
from research.models.torch_weights import cnn_params_to_torch
from research.models.transformer import Transformer
from research.models.transformer import TransformerConfig
from research.models.transformer import sinusoidal_positions
from research.models.unet import UNet
from research.models.unet import UNetConfig

__all__ = [
  'Bidirectional',
  'CNN',
  'CNNConfig',
  'CharLM',
  'CharLMConfig',
  'Conv3x3',
  'Denoiser',
  'MultiHeadAttention',
  'Recurrent',
  'RecurrentCell',
  'TextEncoder',
  'TextEncoderConfig',
  'Transformer',
  'TransformerConfig',
  'UNet',
  'UNetConfig',
  'causal_mask',
  'cnn_params_from_torch',
  'cnn_params_to_torch',
  'gru_cell',
  'lstm_cell',
  'max_pool2',
  'padding_mask',
  'sinusoidal_positions',
  'zero_carry',
  'zero_lm_carry',
]
