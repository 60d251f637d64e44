r"""A ~1B-parameter transformer on byte-level translation, for 8 or more accelerators.

Run (tfds ted_hrlr_translate/pt_to_en; the parameters and optimiser state sharded over
all devices, fsdp):
  python -m experiments.seq2seq.main --config=experiments/seq2seq/configs/large.py \
      --workdir=runs/large

The model: D = 2048, F = 8192, 16 heads of 128, 8 encoder and 8 decoder layers, one
byte embedding (260 ids) tied to the output: 940,589,056 parameters
(`transformer.num_params`). Each layer is rematerialised (`model.remat='full'`): the
backward pass recomputes a layer from its input instead of keeping its activations.
benchmarks/large_memory.py prints what the compiled train step holds per device on 8
devices. Its figures (memory on an accelerator, speed, BLEU) are unmeasured until a
device run measures them.
"""

import ml_collections

from experiments.seq2seq.configs import default


def get_config() -> ml_collections.ConfigDict:
  """Returns the large config: default.py's ':gpu' sizing, then the large model."""
  c = default.get_config('gpu')
  c.task = 'translate'  # Byte-level translation: a data set that a 1B model can use.
  c.num_epochs = 10  # Passes over the ~51k training pairs.
  # Global: 16 pairs per device on 8 devices, in 2 micro-batches (below): with the
  # state's shard, what a 16 GB device holds (benchmarks/large_memory.py).
  c.batch_size = 128
  # Micro-batches per device batch, their gradients added: the activations of one
  # micro-batch are live at a time, not the device batch's.
  c.microbatches = 2
  c.eval_batch_size = 256  # Global; the decoding cache of 2048 wide layers is large.
  c.steps_per_dispatch = 8  # Steps are long at this size; no need for 16 per call.
  c.fsdp = True  # Parameters and optimiser state sharded over all devices (ZeRO-3).
  c.beam_size = 4  # Beams for the final beam-search evaluation.

  c.model.emb_dim = 2048  # D.
  c.model.num_heads = 16  # Head width 128: the widest cuDNN's flash attention takes.
  c.model.num_encoder_layers = 8  # Encoder depth.
  c.model.num_decoder_layers = 8  # Decoder depth.
  c.model.mlp_dim = 8192  # F = 4 D.
  c.model.dropout_rate = 0.1  # Regularises a model far larger than its data.
  c.model.dtype = 'bfloat16'  # Compute dtype; parameters and optimiser state float32.
  c.model.attention = 'auto'  # cuDNN's fused attention on GPU, XLA's on TPU.
  # Keep only each layer's input for the backward pass: the activations of 16 layers
  # of this width would not fit next to the state otherwise.
  c.model.remat = 'full'

  # A wider, deeper model takes a smaller peak rate than the 512-wide one (Adam's
  # update size does not shrink with width); its batch is half the ':gpu' one.
  c.optimizer.learning_rate = 3e-4
  c.optimizer.warmup_steps = 1000  # Long warm-up: large models diverge early otherwise.
  return c
