"""The speed levers we tried, each one flipped against the step as the experiments run it.

Every lever is a switch of our CPU path: either on by default on CPU (kept; its row
turns it off) or off (dropped, or an option such as bfloat16; its row turns it on).
`benchmarks/run.py` times one extra JAX worker per applicable lever beside the default
JAX row and the PyTorch peers, in the same interleaved rounds, and its report gets a
table of each lever's step time against the default's. So the report of one full run carries the
A/B of every lever, measured under the same load as the rest.

A lever changes the step in one of three ways, all inside its own worker process:
  - config: extra overrides of the experiment's default config (e.g. conv_parts=1);
  - patch: a library function replaced while the step is traced (e.g. the scan's
    CPU gradient swapped for autodiff's), through `unittest.mock.patch`;
  - xla_flags: appended to the worker's XLA_FLAGS.
Levers measured and dropped that have no switch in the code (a group norm written per
channel, an optimisation barrier on the CNN's input, ...) are in the README's speed notes.

The levers name what they patch by dotted path and resolve it only when flipped: the
benchmark's orchestrator and its PyTorch workers import this module and must not
import JAX (a PyTorch worker's peak RSS would count it).
"""

import contextlib
import dataclasses
import pkgutil
from typing import Any, Callable, Iterator
from unittest import mock


@dataclasses.dataclass(frozen=True)
class Lever:
  """One speed lever and how its worker flips it.

  Attributes:
    name: the worker mode, and the row's name in the report.
    models: the benchmark models (`measure.MODELS`) it applies to.
    on: True when our default CPU path has it (the row turns it off).
    what: one line for the report: what the flipped row runs.
    config: overrides per experiment ('cnn', 'lm', 'seq2seq', 'ddpm'): nested dicts
      merged into the default config of every family the step builds.
    patches: (target, replacement) dotted paths ('package.module.name'): the target
      replaced by the replacement while the step is built and traced.
    xla_flags: appended to the worker's XLA_FLAGS.
  """

  name: str
  models: tuple[str, ...]
  on: bool
  what: str
  config: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
  patches: tuple[tuple[str, str], ...] = ()
  xla_flags: str = ''


_BFLOAT16 = {name: dict(model=dict(dtype='bfloat16')) for name in ('cnn', 'lm', 'seq2seq', 'ddpm')}

LEVERS: tuple[Lever, ...] = (
  Lever(
    'conv_parts=1',
    ('cnn_train', 'cnn_eval'),
    True,
    'the convolutions on the whole batch, not on 8 interleaved parts',
    # One step micro-batch: pinning conv_parts hands the automatic parts to the step.
    config={'cnn': dict(model=dict(conv_parts=1), microbatches=1)},
  ),
  Lever(
    'rgb_unpadded',
    ('cnn_train', 'cnn_eval'),
    True,
    'conv1 on the 3-channel input, not padded to 4 channels',
    patches=(('research.models.layers.conv3x3_rgb_padded', 'research.models.layers._conv'),),
  ),
  Lever(
    'pool_grad_autodiff',
    ('cnn_train',),
    True,
    'max-pool gradient by autodiff, not the custom VJP that compares the 4 positions',
    patches=(
      ('research.models.layers.max_pool2_split_ties', 'research.models.layers._max_pool2_autodiff'),
    ),
  ),
  Lever(
    'scan_grad_autodiff',
    ('lstm', 'gru'),
    True,
    "autodiff's scan gradient (dw_hh accumulated per step), not the fused one",
    patches=(
      ('research.models.recurrence.scan_fused_grad', 'research.models.recurrence.scan_autodiff'),
    ),
  ),
  Lever(
    'project_gathered_rows',
    ('lstm', 'gru'),
    True,
    'first layer projects every gathered input (B*T of them), not the table rows',
    patches=(
      ('research.models.rnn._project_table_rows', 'research.models.rnn._project_gathered_rows'),
    ),
  ),
  Lever(
    'microbatches=1',
    ('transformer', 'unet'),
    True,
    'the step on the whole batch, not on two independent halves',
    config={'seq2seq': dict(microbatches=1), 'ddpm': dict(microbatches=1)},
  ),
  Lever(
    'im2col',
    ('cnn_train', 'unet'),
    False,
    'every 3x3 convolution as im2col matmuls (forward and kernel gradient)',
    patches=(('research.models.layers.conv3x3', 'benchmarks.im2col_conv.conv3x3_im2col'),),
  ),
  Lever(
    'unroll=2',
    ('lstm', 'gru'),
    False,
    'two time steps per scan iteration',
    config={'lm': dict(model=dict(unroll=2))},
  ),
  Lever(
    'bfloat16',
    ('cnn_train', 'cnn_eval', 'lstm', 'gru', 'transformer', 'unet'),
    False,
    'bfloat16 compute, float32 parameters (XLA:CPU runs bf16 matmuls natively where '
    'they give float32, the LSTM/GRU recurrence; other dots and the convolutions it '
    'converts to float32)',
    config=_BFLOAT16,
  ),
  Lever(
    'onednn_dots',
    ('cnn_train', 'lstm'),
    False,
    "XLA:CPU's oneDNN fusions for the dots",
    xla_flags='--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot',
  ),
  Lever(
    'no_ynn_convolutions',
    ('cnn_train', 'cnn_eval', 'unet'),
    False,
    "XLA:CPU's own convolution kernels instead of its YNNPACK fusions",
    xla_flags='--xla_cpu_experimental_ynn_fusion_type=-individual_convolution',
  ),
)
BY_NAME = {lever.name: lever for lever in LEVERS}


def for_model(model: str) -> list[Lever]:
  """The levers whose rows `model`'s benchmark gets, in `LEVERS` order."""
  return [lever for lever in LEVERS if model in lever.models]


@contextlib.contextmanager
def flipped(lever: Lever, config_fn_owner: Any) -> Iterator[None]:
  """Inside: `lever` flipped for steps built and traced in this process.

  Args:
    lever: the lever.
    config_fn_owner: the module whose `_config(experiment, **overrides)` builds the
      experiments' configs (`benchmarks.jax_models`); its result gets the lever's
      overrides too.
  """
  original_config: Callable = config_fn_owner._config  # pylint: disable=protected-access

  def config_with_lever(experiment: str, **overrides):
    config = original_config(experiment, **overrides)
    config.update(lever.config.get(experiment, {}))
    return config

  with contextlib.ExitStack() as stack:
    if lever.config:
      stack.enter_context(mock.patch.object(config_fn_owner, '_config', config_with_lever))
    for target, replacement in lever.patches:
      stack.enter_context(mock.patch(target, pkgutil.resolve_name(replacement)))
    yield


def with_xla_flags(environ: dict[str, str], lever: Lever | None) -> dict[str, str]:
  """A copy of `environ` whose XLA_FLAGS end with the lever's flags (if any)."""
  env = dict(environ)
  if lever is not None and lever.xla_flags:
    env['XLA_FLAGS'] = ' '.join(f for f in (env.get('XLA_FLAGS', ''), lever.xla_flags) if f)
  return env
