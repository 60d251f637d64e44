"""Cross-platform lowering: CPU-only speed tricks reach CPU programs only.

Every family's train step, the drivers' chunk of S = 2 train steps and the eval step
(plus decoding and sampling) are exported with `jax.export` for cuda and tpu, which
needs no accelerator, and for cpu. The assertions read the StableHLO text:

- the seed CNN's gradient is XLA's native convolution gradient on every platform
  (8 convolutions), and so is the U-Net's; an RGB input's forward is padded to 4
  channels and the max pool's gradient compares window positions on cpu only;
- the LSTM/GRU gradient of w_hh is one matmul after the backward scan on cpu
  (`recurrence.scan_fused_grad`) and accumulated in the scan on cuda/tpu (XLA's autodiff);
- a chunk is a `lax.scan` (one while loop around one traced step) on cuda/tpu, and
  on cpu too unless its step convolves (the CNN, the U-Net: S steps traced flat);
- a single-platform export holds no live platform dispatch (and a two-platform
  export does, so the check can fail);
- sharded programs keep the collectives of the gradient sums (8 forced CPU devices,
  in a subprocess: `python -m tests.test_lowering` is that subprocess);
- and the accelerator branch, run on CPU, computes what the CPU branch does.

Every such choice is `research.platform_policy`'s (tests/test_platform_policy.py
tests the policy itself). What a single-platform export looks like (JAX 0.10): each
`platform_policy.on_cpu` (`jax.lax.platform_dependent`) leaves a `stablehlo.case`
whose index is a constant and whose only region is the platform's branch, plus a
tiny case that maps the constant platform index to 0.
XLA folds both away (checked on the compiled CPU program).
"""
# The tests lower the drivers' private chunk functions.
# pylint: disable=protected-access

import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research import platform_policy
from research.data import augment
from research.data import tokenizers
from research.generation import diffusion
from research.models import cnn
from research.models import layers
from research.models import recurrence
from research.models import rnn
from research.models import text_encoder
from research.models import transformer
from research.models import unet
from research.tasks import classification
from research.tasks import ddpm
from research.tasks import language_model as lm
from research.tasks import seq2seq
from research.train import optimizers
from research.train import parallel
from research.train import state as state_lib
from research.train import steps
from tests import helpers

# Its session-scoped runs happen once: all its tests on one pytest-xdist worker
# (scripts/test.sh uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('test_lowering')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCELERATORS = ('cuda', 'tpu')
PLATFORMS = ('cpu',) + ACCELERATORS
B = 8  # Train batch.


# ---------------------------------------------------------------------------
# Reading StableHLO text.


def count(text: str, op: str) -> int:
  """Occurrences of the StableHLO op `op` (e.g. 'convolution') in module text."""
  return len(re.findall(rf'stablehlo\.{op}\b', text))


def matmuls(text: str) -> int:
  return count(text, 'convolution') + count(text, 'dot_general')


def function_body(text: str, name: str) -> str:
  """The text of `func.func ... @name` up to the next function (or the locations)."""
  start = text.index(f'@{name}(')
  ends = [i for i in (text.find('func.func', start), text.find('\n#loc', start)) if i >= 0]
  return text[start : min(ends) if ends else len(text)]


_BRACE = re.compile(r'[{}]')


def _regions(text: str, start: int) -> list[str]:
  """The bodies of the regions `({...}, {...})` of the op whose text is at `start`."""
  bodies, i = [], text.index('({', start) + 1
  while text.startswith('{', i):
    depth = 0
    for m in _BRACE.finditer(text, i):
      depth += 1 if m.group() == '{' else -1
      if depth == 0:
        break
    bodies.append(text[i + 1 : m.start()])
    i = m.end() + 2 if text.startswith(', {', m.end()) else m.end()
  return bodies


def live_case_ops(text: str) -> list[int]:
  """Region counts of the `stablehlo.case` ops that still choose between code.

  A region that only returns values computed outside it (the platform index
  remapping) is not code; a case with at most one region of code chooses nothing.
  """
  live = []
  for m in re.finditer(r'"stablehlo\.case"\(', text):
    bodies = _regions(text, m.end())
    code = [b for b in bodies if re.search(r'stablehlo\.(?!return\b)', b)]
    if len(code) > 1:
      live.append(len(bodies))
  return live


# ---------------------------------------------------------------------------
# Tiny families and their programs.


@dataclasses.dataclass(frozen=True)
class Family:
  loss_fn: Callable
  gather_fn: Callable
  state: Any
  data: dict[str, np.ndarray]
  eval_loss_fn: Callable | None = None  # Defaults to loss_fn.
  sample_fn: Callable | None = None  # sample_fn(params, rng, sampler) -> images.


def _state(model, *example_args):
  """The train state's shapes only: lowering needs no values (and no init compile)."""
  tx = optimizers.make_optimizer(optimizers.OptimizerConfig())
  init = lambda rng: model.init({'params': rng}, *example_args, train=False)['params']
  return jax.eval_shape(
    lambda: state_lib.init_train_state(init, model.apply, tx, jax.random.key(0))
  )


def _cnn(size: int = 48) -> Family:
  model = cnn.CNN(cnn.CNNConfig(hidden_dim=8))
  data = {'image': np.zeros((B, size, size, 3), np.uint8), 'label': np.zeros(B, np.int32)}
  return Family(
    classification.make_loss_fn(model, augment.ImagePreprocessing()),
    parallel.take_examples,
    _state(model, jnp.zeros((1, size, size, 3))),
    data,
  )


VOCAB = 12  # `_char_lm`'s.


def _char_lm(cell: str) -> Family:
  model = rnn.CharLM(
    rnn.CharLMConfig(
      vocab_size=VOCAB, embed_dim=8, hidden_dim=8, num_layers=2, dropout_rate=0.2, cell=cell
    )
  )
  tokens = np.arange(40, dtype=np.int32) % 11 + 1
  data = lm.window_data(tokens, lm.train_offsets(40, 6), seq_len=6)
  return Family(
    lm.make_loss_fn(model),
    lm.make_window_gather(6),
    _state(model, jnp.ones((1, 6), jnp.int32)),
    data,
  )


def _transformer() -> Family:
  cfg = transformer.TransformerConfig(
    input_vocab_size=12,
    output_vocab_size=12,
    emb_dim=16,
    num_heads=2,
    num_encoder_layers=1,
    num_decoder_layers=1,
    mlp_dim=16,
    max_input_length=6,
    max_target_length=5,
    dropout_rate=0.1,
  )
  model = transformer.Transformer(cfg)
  data = {'inputs': np.full((B, 6), 3, np.int32), 'targets': np.full((B, 5), 4, np.int32)}
  state = _state(model, jnp.ones((1, 6), jnp.int32), jnp.ones((1, 5), jnp.int32))
  return Family(
    seq2seq.make_loss_fn(model),
    parallel.take_examples,
    state,
    data,
    eval_loss_fn=seq2seq.make_decode_eval_fn(model, beam_size=2),
  )


def _ddpm() -> Family:
  prompts = ddpm.class_prompts('mnist', [str(i) for i in range(10)])
  vocab = tokenizers.WordTokenizer.from_prompts(prompts)
  tokens = vocab.encode_batch(prompts, 4)
  model = ddpm.Denoiser(
    # No U-Net attention: it is the transformer's `dot_product_attention`, lowered
    # above, and would double the time to trace.
    unet.UNetConfig(widths=(8,), attention_resolutions=(), num_heads=2, num_groups=4),
    text_encoder.TextEncoderConfig(
      vocab_size=vocab.size, max_length=4, emb_dim=8, num_heads=2, num_layers=1, mlp_dim=8
    ),
  )
  sched = diffusion.make_schedule('linear', 10)
  data = {'image': np.zeros((B, 8, 8, 1), np.uint8), 'label': np.zeros(B, np.int32)}
  state = _state(
    model,
    jnp.zeros((1, 8, 8, 1)),
    jnp.zeros((1,), jnp.int32),
    jnp.asarray(tokens[:1]),
    jnp.zeros((1,), bool),
  )

  def sample_fn(params, rng, sampler):
    return ddpm.sample(
      model,
      params,
      sched,
      jnp.asarray(tokens[:2]),
      rng,
      image_shape=(8, 8, 1),
      sampler=sampler,
      num_steps=3,
      guidance_scale=2.0,
    )

  loss_fn = ddpm.make_loss_fn(model, sched, ddpm.class_prompt_fn(tokens), cond_drop_rate=0.2)
  return Family(loss_fn, parallel.take_examples, state, data, sample_fn=sample_fn)


BUILDERS = {
  'cnn': _cnn,
  'lstm': lambda: _char_lm('lstm'),
  'gru': lambda: _char_lm('gru'),
  'transformer': _transformer,
  'ddpm': _ddpm,
}
FAMILIES = tuple(BUILDERS)


@functools.cache
def family(name: str) -> Family:
  return BUILDERS[name]()


def _batch(f: Family) -> dict[str, jax.Array]:
  data = jax.tree.map(jnp.asarray, f.data)
  return dict(f.gather_fn(data, jnp.arange(B, dtype=jnp.int32)), mask=jnp.ones(B))


@functools.cache
def program_and_args(name: str, program: str) -> tuple[Any, tuple[Any, ...]]:
  """A family's jitted 'step', 'chunk' (S = 2), 'eval' or 'sample_<sampler>' and its
  arguments (one jitted object per program, so its trace is reused per platform)."""
  f, rng = family(name), jax.random.key(1)
  if program == 'step':
    return (
      jax.jit(functools.partial(steps.train_step, loss_fn=f.loss_fn)),
      (f.state, _batch(f), rng),
    )
  if program == 'chunk':
    chunk = functools.partial(
      parallel._train_chunk,
      loss_fn=f.loss_fn,
      gather_fn=f.gather_fn,
      axis_name=None,
      microbatches=1,
    )
    idx, mask = jnp.zeros((2, B), jnp.int32), jnp.ones((2, B))
    return jax.jit(chunk), (f.state, f.data, idx, mask, rng)
  if program == 'eval':
    evaluate = functools.partial(steps.eval_step, loss_fn=f.eval_loss_fn or f.loss_fn)
    return jax.jit(evaluate), (f.state, _batch(f))
  sampler = program.removeprefix('sample_')
  return jax.jit(lambda p, r: f.sample_fn(p, r, sampler)), (f.state.params, rng)


@functools.cache
def lowered(name: str, program: str, platforms: tuple[str, ...]) -> str:
  """StableHLO text of a family's program exported for `platforms`."""
  fn, args = program_and_args(name, program)
  return jax.export.export(fn, platforms=list(platforms))(*args).mlir_module()


# ---------------------------------------------------------------------------
# The seed CNN's convolution gradients.


@pytest.mark.parametrize('platform', PLATFORMS)
def test_cnn_gradient_is_xla_native_on_every_platform(platform):
  text = lowered('cnn', 'step', (platform,))
  # 3 forward, 2 input gradients (conv1's input needs none), 3 kernel gradients.
  assert count(text, 'convolution') == 8
  # Only fc1 and fc2 (forward, input and kernel gradients) are matmuls: no im2col.
  assert count(text, 'dot_general') == 6


def _conv_grad(x, k):
  return jax.grad(lambda x, k: jnp.square(layers.conv3x3(x, k)).sum(), (0, 1))(x, k)


def test_rgb_input_is_padded_to_four_channels_on_cpu_only():
  x, k = jnp.zeros((B, 48, 48, 3)), jnp.zeros((3, 3, 3, 32))
  text = {
    p: jax.export.export(jax.jit(_conv_grad), platforms=[p])(x, k).mlir_module() for p in PLATFORMS
  }
  four = re.compile(r'stablehlo\.convolution.*tensor<8x48x48x4xf32>')
  assert len(four.findall(text['cpu'])) == 1  # The forward only.
  assert count(text['cpu'], 'convolution') == 3  # Forward, input and kernel gradients.
  for platform in ACCELERATORS:
    assert not four.search(text[platform])
    assert count(text[platform], 'convolution') == 3


def test_max_pool2_gradient_counts_no_ties_by_reduction_on_cpu_only():
  # Autodiff of the windowed max counts each window's ties with a second reduction;
  # on CPU `layers.max_pool2_split_ties` compares the four positions instead.
  grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(layers.max_pool2(x)))))
  x = jnp.zeros((B, 12, 12, 4))
  text = {p: jax.export.export(grad, platforms=[p])(x).mlir_module() for p in PLATFORMS}
  assert count(text['cpu'], 'reduce') == 1  # The forward max.
  for platform in ACCELERATORS:
    assert count(text[platform], 'reduce') == 2, platform


def test_cnn_evaluation_keeps_xla_convolutions_on_cpu():
  text = lowered('cnn', 'eval', ('cpu',))
  assert count(text, 'convolution') == 3
  assert count(text, 'dot_general') == 2  # fc1, fc2


def test_unet_keeps_xla_convolutions_on_cpu():
  # The same convolutions on cpu as on cuda.
  convs = {p: count(lowered('ddpm', 'step', (p,)), 'convolution') for p in ('cpu', 'cuda')}
  assert convs['cpu'] == convs['cuda'] > 0


def test_cpu_compiler_folds_the_platform_case_away():
  grad = jax.jit(_conv_grad)
  x, k = jnp.zeros((8, 32, 32, 3)), jnp.zeros((3, 3, 3, 4))
  hlo = grad.lower(x, k).compile().as_text()
  assert 'conditional(' not in hlo
  assert 'f32[8,32,32,4]' in hlo  # The padded input of the CPU branch.


# ---------------------------------------------------------------------------
# The recurrent layers' w_hh gradient.


def w_hh_gradient_dots(text: str, cell: str) -> tuple[int, int]:
  """(after, inside) for the (H, G) gradients of a `_char_lm` layer's w_ih and w_hh.

  after: the columns of the matmuls that contract over time and batch at once (one
  after the backward scan), giving (H, N) or (N, H) with N = G or, the GRU's w_hh
  being done in an (r, z) and an n block, 2H or H. `_char_lm` has H = D = 8, so the
  layers' dw_ih ((B, T, D) x (B, T, G)) count too: G columns each, except the first
  layer's on CPU, which contracts over the 12 rows of its projected embedding table
  (`rnn.EmbeddedIds`): not counted.
  inside: the (B, H) x (B, G) products over batch only (one per step in the scan).
  """
  h, g = 8, recurrence.NUM_GATES[cell] * 8
  widths = (g,) if cell == 'lstm' else (g, 2 * h, h)
  after, inside = 0, 0
  for dims, lhs, shape in re.findall(
    r'stablehlo\.dot_general .*contracting_dims = '
    r'(\[[\d, ]+\] x \[[\d, ]+\]).* : \(tensor<(\d+)x'
    r'.* -> tensor<(\d+x\d+)xf32>',
    text,
  ):
    if dims == '[0] x [0]' and int(lhs) == VOCAB:
      continue  # The first layer's dw_ih, over its projected embedding table's rows.
    rows, cols = (int(n) for n in shape.split('x'))
    n = cols if rows == h else rows if cols == h else 0
    if ',' in dims and n in widths:
      after += n
    # (With B = H the forward h @ w_hh, [1] x [0], and the cotangent dpre @ w_hh.T,
    # [1] x [1], have such shapes too.)
    inside += dims == '[0] x [0]' and n == g
  return after, inside


@pytest.mark.parametrize('cell', ('lstm', 'gru'))
def test_recurrent_w_hh_gradient_is_one_matmul_on_cpu_only(cell):
  num_layers, g = 2, recurrence.NUM_GATES[cell] * 8  # `_char_lm`'s.
  cpu = lowered(cell, 'step', ('cpu',))
  # dw_hh of each layer and the second's dw_ih after the loop; no per-step w_hh
  # gradient.
  assert w_hh_gradient_dots(cpu, cell) == (g * (2 * num_layers - 1), 0)
  for platform in ACCELERATORS:
    text = lowered(cell, 'step', (platform,))
    # dw_ih after the loop, dw_hh accumulated by one product per step in the loop.
    assert w_hh_gradient_dots(text, cell) == (g * num_layers, num_layers), platform
    # The same loops: one forward and one backward scan per layer.
    assert (
      count(function_body(text, 'main'), 'while')
      == count(function_body(cpu, 'main'), 'while')
      == 2 * num_layers
    ), platform


# ---------------------------------------------------------------------------
# A chunk of S = 2 train steps: scanned off CPU, and on CPU unless the step convolves.

CONVOLVING = ('cnn', 'ddpm')  # The seed CNN and the U-Net.


@pytest.mark.parametrize(
  'name,platform',
  [(n, p) for p in ACCELERATORS for n in FAMILIES]
  + [(n, 'cpu') for n in FAMILIES if n not in CONVOLVING],
)
def test_chunk_is_a_scan_off_cpu_and_without_convolutions(name, platform):
  step, chunk = (lowered(name, p, (platform,)) for p in ('step', 'chunk'))
  # One while loop more than the step, and the step's matmuls traced once.
  assert count(chunk, 'while') == count(step, 'while') + 1
  assert matmuls(chunk) == matmuls(step)


@pytest.mark.parametrize('name', CONVOLVING)
def test_chunk_of_a_convolving_step_is_flat_on_cpu(name):
  step, chunk = (lowered(name, p, ('cpu',)) for p in ('step', 'chunk'))
  assert matmuls(chunk) == 2 * matmuls(step)
  # (XLA:CPU's threefry is a while loop in a shared private function: count main's.)
  assert count(function_body(chunk, 'main'), 'while') == 2 * count(
    function_body(step, 'main'), 'while'
  )


# ---------------------------------------------------------------------------
# Single-platform modules hold their platform's code only.


def _programs(name: str) -> tuple[str, ...]:
  return ('step', 'chunk', 'eval') + (('sample_ddpm', 'sample_ddim') if name == 'ddpm' else ())


@pytest.mark.parametrize('platform', PLATFORMS)
@pytest.mark.parametrize('name', FAMILIES)
def test_single_platform_modules_have_no_live_dispatch(name, platform):
  for program in _programs(name):
    assert live_case_ops(lowered(name, program, (platform,))) == [], program


def test_multi_platform_module_keeps_both_paths():
  """The checks above can see a live dispatch: a cpu+cuda module keeps them (the
  recurrent layers' scan gradients, and threefry, which lowers per platform)."""
  live = live_case_ops(lowered('lstm', 'step', ('cpu', 'cuda')))
  assert len(live) >= 2 and set(live) == {2}


def test_decoding_and_sampling_loops_lower_off_cpu():
  for platform in ACCELERATORS:
    decode = lowered('transformer', 'eval', (platform,))
    assert count(decode, 'while') == 2  # Greedy and beam search.
    for sampler in ('ddpm', 'ddim'):
      text = lowered('ddpm', f'sample_{sampler}', (platform,))
      assert count(text, 'while') == 1 and count(text, 'convolution') > 0


def _noisy_regression_loss(params, batch, rng, train):
  """A loss whose gradient depends on the step's key, as dropout's does."""
  noise = jax.random.normal(rng, batch['y'].shape) if train else 0.0
  err = (batch['x'] @ params['w'] + noise - batch['y']) ** 2 * batch['mask']
  return {'loss': (err.sum(), batch['mask'].sum())}, {}


def test_scanned_chunk_equals_flat_chunk(monkeypatch):
  """The accelerator branch (a scan), run on CPU, trains exactly like the CPU one."""
  rs = np.random.default_rng(0)
  data = {
    'x': rs.normal(size=(3 * B, 3)).astype(np.float32),
    'y': rs.normal(size=3 * B).astype(np.float32),
  }
  tx = optimizers.make_optimizer(optimizers.OptimizerConfig())
  state = state_lib.init_train_state(lambda _: {'w': jnp.zeros(3)}, None, tx, jax.random.key(0))
  idx = rs.permutation(3 * B).reshape(3, B).astype(np.int32)  # A different batch each.
  mask = np.ones((3, B), np.float32)
  mask[2, B // 2 :] = 0.0

  def run():
    chunk = jax.jit(
      functools.partial(
        parallel._train_chunk,
        loss_fn=_noisy_regression_loss,
        gather_fn=parallel.take_examples,
        axis_name=None,
        microbatches=1,
      )
    )
    return chunk(state, data, idx, mask, jax.random.key(3))

  flat = run()
  monkeypatch.setattr(
    platform_policy, 'on_cpu', lambda cpu_fn, default_fn, *args: default_fn(*args)
  )
  scanned = run()
  chex.assert_trees_all_close(scanned, flat, rtol=1e-5)
  assert int(scanned[0].step) == 3
  np.testing.assert_array_equal(scanned[1]['loss'][1], [B, B, B // 2])


# ---------------------------------------------------------------------------
# Sharded programs (8 forced CPU devices, in a subprocess).


def _abstract(tree, sharding):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree)


def _sharded_report() -> dict[str, Any]:
  """Lowers a CNN chunk of 2 steps under both drivers over 8 devices (the subprocess).

  Arguments are abstract (shapes and shardings); only the jit driver's CPU program
  is compiled, to see GSPMD's collectives.
  """
  f = _cnn(size=16)
  num_grads = len(jax.tree.leaves(f.state.params))
  jit = parallel.DataParallel(f.loss_fn)
  jit._compile(f.state)
  batch = lambda dtype: jax.ShapeDtypeStruct((2, 16), dtype, sharding=jit.batch_sharded)
  args = (
    _abstract(f.state, jit.replicated),
    _abstract(f.data, jit.data_sharding),
    batch(jnp.int32),
    batch(jnp.float32),
    jax.random.key(0),
  )
  compiled = jit._train.lower(*args, microbatches=1).compile().as_text()
  report = {
    'num_grads': num_grads,
    'jit': {},
    'pmap': {},
    'jit_cpu_compiled': compiled.count('all-reduce('),
  }
  pmap = parallel.PmapDataParallel(f.loss_fn)
  pmap_fn = jax.jit(pmap._train_fn(np.zeros((2, 16))))
  per_device = lambda tree: jax.tree.map(
    lambda x: jax.ShapeDtypeStruct((8,) + np.shape(x), x.dtype), tree
  )
  pmap_args = (
    per_device(f.state),
    per_device(f.data),
    jax.ShapeDtypeStruct((8, 2, 2), jnp.int32),
    jax.ShapeDtypeStruct((8, 2, 2), jnp.float32),
    jax.random.key(0),
  )
  for platform in PLATFORMS:
    exported = jax.export.export(jit._train, platforms=[platform])
    text = exported(*args, microbatches=1).mlir_module()
    main = function_body(text, 'main')
    report['jit'][platform] = {
      'partitions': int(re.search(r'mhlo.num_partitions = (\d+)', text).group(1)),
      'batch_sharded': main.count('[{}, {"process", "local"}]>'),
      'whiles': count(main, 'while'),
      'all_reduce': count(text, 'all_reduce'),
    }
    text = jax.export.export(pmap_fn, platforms=[platform])(*pmap_args).mlir_module()
    groups = set(re.findall(r'replica_groups = dense<([^>]*)>', text))
    report['pmap'][platform] = {
      'all_reduce': count(text, 'all_reduce'),
      'whiles': count(text, 'while'),
      'groups': sorted(groups),
    }
  return report


@pytest.fixture(scope='session')
def sharded():
  env = dict(os.environ, XLA_FLAGS=helpers.xla_flags(8), JAX_PLATFORMS='cpu')
  out = subprocess.run(
    [sys.executable, '-m', 'tests.test_lowering'],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_sharded_jit_driver_lowers_a_partitioned_scan(sharded):
  for platform in ACCELERATORS:
    r = sharded['jit'][platform]
    assert r['partitions'] == 8, r
    assert r['batch_sharded'] == 2, r  # Indices and mask, split over all 8 devices.
    assert r['whiles'] == 1, r
    # GSPMD inserts the gradient all-reduce when it compiles, not in StableHLO:
    assert r['all_reduce'] == 0, r
  assert sharded['jit_cpu_compiled'] >= 1, sharded  # ... as the CPU compiler shows.
  assert sharded['jit']['cpu']['whiles'] == 0, sharded  # Flat on CPU.


def test_sharded_pmap_driver_sums_gradients_over_all_devices(sharded):
  n = sharded['num_grads']
  for platform in ACCELERATORS:
    r = sharded['pmap'][platform]
    # Every gradient leaf (and the metrics) psum-ed once, in the scanned step
    # (XLA's threefry needs no while loop on cuda and tpu).
    assert r['all_reduce'] >= n and r['whiles'] == 1, r
    assert r['groups'] == ['[[0, 1, 2, 3, 4, 5, 6, 7]]'], r
  cpu = sharded['pmap']['cpu']
  assert cpu['all_reduce'] == 2 * sharded['pmap']['cuda']['all_reduce'], cpu  # Flat.


if __name__ == '__main__':
  print(json.dumps(_sharded_report()))
