"""The platform-specific choices of the library, each made here and nowhere else.

The experiments run on GPUs and TPUs; XLA:CPU is where the library is built and
tested. A few choices let XLA:CPU run the same computation well without changing what
it computes. Models and drivers ask this module instead of branching on the platform,
and each choice is named here once, with its reason.

Chosen in the traced program by `on_cpu` (`jax.lax.platform_dependent`, resolved
when the program is lowered: one jitted function serves every backend, and a program
lowered for cuda, rocm or tpu holds XLA's native path only; tests/test_lowering.py
checks this with `jax.export`):

- `layers.conv3x3`: the forward of a 3-channel (RGB) input pads its channels to 4
  (`conv3x3_rgb_padded`): XLA:CPU's convolution kernels handle 4 input channels much
  better than 3. The padded kernel gradient is not faster, so the backward stays XLA's
  own, unpadded.
- `layers.max_pool2`: the gradient compares the four window positions as elementwise
  work (`max_pool2_split_ties`); autodiff counts each window's ties with a reduction
  over the window, which XLA:CPU runs slowly.
- `recurrence.scan_recurrence`: the LSTM/GRU gradient of the recurrent kernel w_hh is
  one large matmul after the backward loop (`scan_fused_grad`) instead of a small
  matmul and an accumulator update inside it at every step.
- `rnn.input_projections`: a layer whose inputs are rows of an embedding table
  (`EmbeddedIds`) projects the table and gathers the projected rows, where the table
  has no more rows than the batch has inputs (less matmul work in both directions).
  Other platforms gather the rows and project them: there the gradient of the
  projected table's gather, a scatter-add with many repeated rows, may cost more than
  the matmul saves.
- `parallel._train_chunk`: the S train steps of a chunk that convolves (the CNN, the
  U-Net) are traced one after another (`unrolls_steps_on_cpu`): inside an XLA:CPU while
  loop (even a fully unrolled scan keeps one) convolutions lose their fast kernels.
  Elsewhere, and for steps without a convolution everywhere, they are a `lax.scan`,
  which compiles the step once (the length-generalisation transformer's chunk of 8
  steps: 11 s of XLA compile instead of 86 s, at the same step time).

Chosen in the traced program by `on_gpu` (likewise resolved when lowered):

- `attention.dot_product_attention` with implementation 'auto': cuDNN's fused (flash)
  attention in programs lowered for cuda, where this process can trace it
  (`cudnn_attention_available`) and the shapes and dtype allow it; XLA's attention in
  programs lowered for every other platform, CPU and TPU included.

Chosen on the host from the devices' platform:

- `batch_parts`: how many independent parts the per-device train batch is cut into.
  XLA:CPU runs one convolution on one core but independent computations concurrently,
  so on CPU the CNN's convolutions run on `CPU_CONV_PARTS` interleaved parts of the
  batch (`CNNConfig.conv_parts`) and other families' train steps on
  `CPU_STEP_MICROBATCHES` micro-batches (`steps.train_step`'s `microbatches`). On an
  accelerator one big batch already fills the device. The automatic choice is made
  once per family: where the model takes it (`research.train.trainer.Model`'s
  `model_parts`, the CNN with `conv_parts=0`), the step's automatic micro-batches
  are 1.
- `splits_loss_steps`: a `steps.SplitLoss` (the CNN's augmentation, then its step)
  runs as two programs per step: XLA:CPU runs the step slower when its input is
  computed in the same program. Elsewhere XLA fuses the preparation into the step.

Either way the values are the same on every platform, up to float summation order
(the lowering tests run the accelerator branches on CPU against the CPU ones).
"""

from typing import Any, Callable

import jax
import jax.extend

from research.errors import UserInputError

CPU = 'cpu'

# Kinds of independent parts of the per-device train batch (`batch_parts`).
STEP_PARTS = 'step'  # The train step's micro-batches (`steps.train_step`).
CONV_PARTS = 'conv'  # The CNN's convolutions (`research.models.cnn.CNNConfig.conv_parts`).
PART_KINDS = (STEP_PARTS, CONV_PARTS)
_FIELDS = {STEP_PARTS: 'microbatches', CONV_PARTS: 'conv_parts'}

# Automatic parts on CPU: the CNN's convolutions on 8 parts while its dense layers
# keep the whole batch; other train steps on 2 micro-batches, for per-device batches
# of at least 16 (smaller halves leave each core too little work).
CPU_CONV_PARTS = 8
CPU_STEP_MICROBATCHES = 2
CPU_STEP_MIN_BATCH = 16


def on_cpu(cpu_fn: Callable[..., Any], default_fn: Callable[..., Any], *args: Any) -> Any:
  """`cpu_fn(*args)` in programs lowered for CPU, `default_fn(*args)` elsewhere.

  Both functions must return the same shapes and dtypes (both are traced); the one
  kept is chosen when the program is lowered, so a program lowered for one platform
  holds only that platform's code.

  Args:
    cpu_fn: the CPU path.
    default_fn: every other platform's path (XLA's native one).
    *args: positional arrays or pytrees, passed to whichever function runs.

  Returns:
    what the chosen function returns.
  """
  return jax.lax.platform_dependent(*args, cpu=cpu_fn, default=default_fn)


# Primitives whose XLA:CPU kernels are slow inside a while loop (`unrolls_steps_on_cpu`).
_LOOP_SLOW_ON_CPU = frozenset({'conv_general_dilated'})


def _holds_primitive(jaxpr: jax.extend.core.Jaxpr, names: frozenset[str]) -> bool:
  if any(eqn.primitive.name in names for eqn in jaxpr.eqns):
    return True
  return any(_holds_primitive(sub, names) for sub in jax.extend.core.subjaxprs(jaxpr))


def unrolls_steps_on_cpu(step_fn: Callable[..., Any], *args: Any) -> bool:
  """Whether a chunk of `step_fn` steps is traced flat (one after another) on CPU.

  True when the step, traced on `args` (arrays, tracers or pytrees of them; only
  their shapes and dtypes are read), holds a convolution anywhere, its gradient and
  nested calls included: XLA:CPU's convolution kernels are slow inside a while loop.
  Otherwise a `lax.scan` over the steps runs as fast on CPU and compiles the step
  once instead of S times. Other platforms always scan (`on_cpu`'s default branch).

  Args:
    step_fn: one train step, `step_fn(*args)`.
    *args: its arguments.

  Returns:
    whether CPU programs should trace the steps flat.
  """
  return _holds_primitive(jax.make_jaxpr(step_fn)(*args).jaxpr, _LOOP_SLOW_ON_CPU)


def on_gpu(gpu_fn: Callable[..., Any], default_fn: Callable[..., Any], *args: Any) -> Any:
  """`gpu_fn(*args)` in programs lowered for cuda, `default_fn(*args)` elsewhere.

  The counterpart of `on_cpu` for a kernel only NVIDIA GPUs have; both functions are
  traced, so `gpu_fn` must be traceable on the host that lowers the program.

  Args:
    gpu_fn: the cuda path.
    default_fn: every other platform's path (cpu, rocm, tpu).
    *args: positional arrays or pytrees, passed to whichever function runs.

  Returns:
    what the chosen function returns.
  """
  return jax.lax.platform_dependent(*args, cuda=gpu_fn, default=default_fn)


def cudnn_attention_available() -> bool:
  """Whether this process can trace cuDNN's fused attention (a CUDA jaxlib with cuDNN).

  `jax.nn.dot_product_attention(implementation='cudnn')` asks for cuDNN's version when
  it is traced and raises without it, so a CPU-only install keeps XLA's attention
  even in programs it lowers for cuda.
  """
  # The check the cuDNN path itself makes; JAX exposes it only under _src.
  from jax._src.cudnn import fused_attention_stablehlo  # pylint: disable=g-import-not-at-top

  try:
    fused_attention_stablehlo.check_cudnn_version()
  except RuntimeError:
    return False
  return True


def is_cpu(platform: str) -> bool:
  """Whether `platform` (a device's `.platform`, or `jax.default_backend()`) is the CPU."""
  return platform == CPU


def _automatic_parts(kind: str, per_device_batch: int, platform: str) -> int:
  if not is_cpu(platform):
    return 1
  if kind == CONV_PARTS:
    return CPU_CONV_PARTS if per_device_batch % CPU_CONV_PARTS == 0 else 1
  even = per_device_batch % CPU_STEP_MICROBATCHES == 0
  return CPU_STEP_MICROBATCHES if even and per_device_batch >= CPU_STEP_MIN_BATCH else 1


def batch_parts(
  requested: int, per_device_batch: int, platform: str, kind: str = STEP_PARTS
) -> int:
  """Independent parts of the per-device train batch (same values as one part).

  Args:
    requested: a positive count, used as given; or 0, automatic: on CPU
      `CPU_CONV_PARTS` for `CONV_PARTS` when it divides the per-device batch, and
      `CPU_STEP_MICROBATCHES` for `STEP_PARTS` when it divides the batch and the batch
      has at least `CPU_STEP_MIN_BATCH` examples; 1 otherwise and on every other
      platform.
    per_device_batch: examples per device in one train step.
    platform: the devices' platform ('cpu', 'gpu', 'tpu', ...).
    kind: `STEP_PARTS` (the step's micro-batches) or `CONV_PARTS` (the CNN's).

  Returns:
    the number of parts, a divisor of `per_device_batch` when requested.

  Raises:
    UserInputError: `requested` is negative or does not divide the per-device batch.
  """
  if kind not in PART_KINDS:
    raise ValueError(f'kind must be one of {PART_KINDS}, got {kind!r}')
  field = _FIELDS[kind]
  if requested < 0:
    raise UserInputError(f'{field} must be >= 0 (0: automatic), got {requested}')
  if requested == 0:
    return _automatic_parts(kind, per_device_batch, platform)
  if per_device_batch % requested:
    raise UserInputError(
      f'{field}={requested} does not divide the per-device batch of {per_device_batch} examples'
    )
  return requested


def splits_loss_steps(platform: str) -> bool:
  """Whether a `steps.SplitLoss` runs as two programs per train step on `platform`."""
  return is_cpu(platform)
