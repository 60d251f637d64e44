r"""Transformer encoder-decoder on string reversal (offline, generated data).

Run:
  python -m experiments.seq2seq.main --config=experiments/seq2seq/configs/default.py \
      --workdir=runs/reverse
  ... --config.task=addition            # or configs/addition.py (tuned for it)
  ... --config.task=translate           # tfds ted_hrlr_translate/pt_to_en, BLEU

Expect (reverse, 1-16 letters of a-z, 1,000 held-out strings, held out per
length so every test length is also trained on): 100.00% exact sequences, greedy and
beam (size 4), at every input length, for each of seeds 0, 1, 2 (where and how long
in docs/results.md). The report gives exact match per input length and its minimum.
configs/length_generalisation.py tests on longer strings than trained.

One accelerator host: --config=experiments/seq2seq/configs/default.py:gpu (or :tpu)
trains 256 pairs per step through a 512-wide, 4 + 4 layer model in bfloat16, with
cuDNN's fused attention on GPU (`_size_for_accelerator`); configs/large.py is the
~1B-parameter model for several devices. Its figures are unmeasured until a device
run measures them.
"""

import ml_collections

from experiments import accelerator_sizes
from experiments import shared_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; every field can be overridden with --config.X=...

  Args:
    arg: the text after ':' in --config=...default.py:ARG: none for the CPU config,
      'gpu' or 'tpu' for one accelerator host.
  """
  platform = accelerator_sizes.platform(arg)
  c = ml_collections.ConfigDict()
  c.task = 'reverse'  # 'reverse', 'addition' (generated offline) or 'translate' (tfds).
  shared_config.add_training_fields(
    c,
    num_epochs=12,
    batch_size=128,
    eval_batch_size=500,
    eval_every_epochs=2,
    steps_per_dispatch=8,
    progress=False,
  )
  c.label_smoothing = 0.0  # Label smoothing of the training targets.
  c.beam_size = 4  # Beams for the beam-search evaluation.
  c.length_penalty = 0.0  # GNMT length-penalty exponent alpha (0: none).
  c.num_examples_to_print = 5  # Decoded test examples printed next to references.

  c.generated = ml_collections.ConfigDict()
  c.generated.num_train = 40_000  # Generated training examples.
  c.generated.num_test = 1_000  # Held-out examples (inputs never in training).
  # 'stratified': held-out strings of the training lengths (each test length is also
  # a training length); 'length' (reverse): test lengths test_min..test_max_length.
  c.generated.split = 'stratified'
  c.generated.test_min_length = 0  # split 'length': shortest test string (else 0).
  c.generated.test_max_length = 0  # split 'length': longest test string (else 0).
  c.generated.equal_lengths = False  # split 'length': same count per training length.
  c.generated.min_length = 1  # reverse: shortest string.
  c.generated.max_length = 16  # reverse: longest string (= max input length).
  c.generated.num_letters = 26  # reverse: alphabet, the first letters of a-z.
  c.generated.num_digits = 3  # addition: longest operand, in digits.

  c.translate = ml_collections.ConfigDict()
  c.translate.dataset = 'ted_hrlr_translate/pt_to_en'  # tfds translation set.
  c.translate.source_language = 'pt'  # Feature key of the source text.
  c.translate.target_language = 'en'  # Feature key of the target text.
  c.translate.train_split = 'train'  # tfds split to train on.
  c.translate.test_split = 'validation'  # tfds split for the report and BLEU.
  c.translate.max_input_length = 128  # Source bytes kept.
  c.translate.max_target_length = 128  # Target bytes kept (EOS included).
  c.translate.data_dir = ''  # tfds data directory ('' = tfds's default).

  c.model = ml_collections.ConfigDict()
  c.model.emb_dim = 64  # Model width D.
  c.model.num_heads = 4  # Attention heads (must divide emb_dim).
  c.model.num_encoder_layers = 2  # Encoder depth.
  c.model.num_decoder_layers = 2  # Decoder depth.
  c.model.mlp_dim = 256  # Feed-forward width.
  c.model.dropout_rate = 0.0  # Dropout on embeddings and residual branches.
  c.model.pre_norm = True  # Layer norm before each sub-layer (False: after).
  # 'sinusoidal', 'learned', 'rotary', 'randomized_sinusoidal' or 'randomized_rotary'.
  c.model.positional = 'sinusoidal'
  c.model.max_random_position = 2048  # randomized_*: training positions lie in [0, this).
  c.model.share_embeddings = True  # One embedding for source, target and output.
  c.model.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (params float32).

  c.optimizer = shared_config.optimizer_section(
    name='adamw',
    learning_rate=1e-3,
    weight_decay=0.01,
    schedule='warmup_cosine',
    warmup_steps=200,
    b2=0.98,
    clip_grad_norm=1.0,
  )
  if platform is not None:
    _size_for_accelerator(c)
  return c


def _size_for_accelerator(c: ml_collections.ConfigDict) -> None:
  """Sizes the CPU config `c` for one GPU or TPU host."""
  base_batch = c.batch_size
  # 16 steps per call: the short sequences make a step brief, so the host's per-call
  # overhead would show at the shared 8.
  accelerator_sizes.size_training_fields(c, batch_size=256, steps_per_dispatch=16)
  c.model.emb_dim = 512  # A larger model: width D ...
  c.model.num_heads = 8  # ... head width 64, which cuDNN's flash attention takes ...
  c.model.num_encoder_layers = 4  # ... and depth.
  c.model.num_decoder_layers = 4  # As deep as the encoder.
  c.model.mlp_dim = 2048  # 4 D, as usual.
  c.model.dtype = 'bfloat16'  # The accelerators' fast matmul dtype; parameters stay float32.
  # cuDNN's fused attention in programs lowered for cuda, XLA's elsewhere (TPU).
  c.model.attention = 'auto'
  c.model.remat = 'none'  # The activations of this size fit; remat would only cost time.
  # Twice the batch: Adam's square-root scaling of the peak rate (1e-3 -> 1.41e-3), and
  # the warm-up keeps its length in examples (200 -> 100 steps).
  c.optimizer.learning_rate = accelerator_sizes.sqrt_scaled_learning_rate(
    c.optimizer.learning_rate, base_batch, c.batch_size
  )
  c.optimizer.warmup_steps = c.optimizer.warmup_steps * base_batch // c.batch_size
