"""FLOPs per step from XLA's cost analysis, MFU and the wall-time breakdown of a run."""

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.lm.configs import tiny as lm_tiny
from research import families
from research.data import text as text_lib
from research.data import tokenizers
from research.train import efficiency
from research.train import input_pipeline
from research.train import state as state_lib
from research.train import step_loop
from research.train import trainer
from tests.train import tiny_mlp

QUIET = lambda _: None


def _mlp_flops(batch, num_devices=1):
  """`train_step_flops` of the tiny MLP for a global batch of `batch`."""
  init = state_lib.train_state_init(
    lambda rng: tiny_mlp.MLP().init(rng, jnp.zeros((1, tiny_mlp.IN)))['params'],
    tiny_mlp.MLP().apply,
    optax.sgd(0.1),
  )
  rng = jax.random.key(0)
  data = {
    'x': np.zeros((2 * batch, tiny_mlp.IN), np.float32),
    'y': np.zeros((2 * batch, tiny_mlp.OUT), np.float32),
  }
  return efficiency.train_step_flops(
    tiny_mlp.loss_fn,
    lambda d, idx: {k: jnp.take(v, idx, axis=0) for k, v in d.items()},
    jax.eval_shape(init, rng),
    data,
    batch,
    rng,
    num_devices=num_devices,
  )


@pytest.mark.parametrize('num_devices', [1, 2])
def test_flops_per_step_match_the_layer_arithmetic(num_devices):
  flops = _mlp_flops(128, num_devices)
  # Elementwise work (relu, loss, SGD) adds a few percent to the matmuls.
  expected = tiny_mlp.matmul_flops(128) / num_devices
  assert expected <= flops <= 1.05 * expected


def test_a_backend_that_analyses_only_compiled_programs_still_gives_the_count(monkeypatch):
  # CUDA's plugin (jax 0.11) gives no FLOPs for a lowered program: the step is compiled.
  lowered_count = _mlp_flops(32)
  monkeypatch.setattr(jax.stages.Lowered, 'cost_analysis', lambda self: {})
  assert _mlp_flops(32) == pytest.approx(lowered_count, rel=0.1)


def test_a_run_reports_step_time_tflops_mfu_and_where_its_time_went(tmp_path):
  peak = 0.5
  config = tiny_mlp.config(log_every_steps=2, peak_tflops_per_device=peak)
  final = trainer.train_and_evaluate(tiny_mlp.Family(config), str(tmp_path), log=QUIET)
  rows = tiny_mlp.train_rows(tmp_path)
  assert [r['step'] for r in rows] == [2, 4, 6, 8]
  for r in rows:
    assert r['step_seconds'] > 0 and r['tflops_per_device'] > 0
    assert r['mfu'] == pytest.approx(r['tflops_per_device'] / peak)
  # The same (rounded) numbers in the file as returned.
  assert json.loads((tmp_path / 'final_metrics.json').read_text())['mfu'] == final['mfu']
  assert final['flops_per_step_per_device'] >= tiny_mlp.matmul_flops(4)
  assert final['peak_tflops_per_device'] == peak
  assert final['mfu'] == pytest.approx(final['tflops_per_device'] / peak)
  assert final['step_seconds'] == pytest.approx(final['wall_seconds']['train_steps'] / 8)
  wall = final['wall_seconds']
  assert set(wall) == set(efficiency.PARTS) | {'other', 'total'}
  assert min(wall.values()) >= 0  # Parts never overlap: 'other' is what is left.
  assert sum(v for k, v in wall.items() if k != 'total') == pytest.approx(wall['total'])
  assert wall['compiling'] > 0 and wall['compiling'] == final['compile_seconds']
  assert wall['train_steps'] > 0 and wall['checkpointing'] > 0
  assert wall['other'] < 0.5 * wall['total']


def test_without_a_known_peak_mfu_is_left_out():
  assert efficiency.rates(1e9, None, 4, 2.0) == {'step_seconds': 0.5, 'tflops_per_device': 2e-3}
  assert efficiency.rates(1e9, 1.0, 4, 2.0)['mfu'] == pytest.approx(2e-3)
  assert efficiency.rates(None, 1.0, 4, 2.0) == {'step_seconds': 0.5}
  assert efficiency.table_peak_tflops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989.0
  assert efficiency.table_peak_tflops('TPU v5 lite', 'bfloat16') == 197.0
  assert efficiency.table_peak_tflops('a new chip', 'bfloat16') is None


def test_compiling_is_moved_out_of_the_part_that_triggered_it():
  clock = efficiency.WallClock()
  f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T)
  with clock.listen(), clock.part('evaluation'):
    f(jnp.ones((64, 64))).block_until_ready()
    time.sleep(0.05)
  wall = clock.breakdown()
  assert wall['compiling'] > 0
  assert wall['evaluation'] >= 0.05
  assert min(wall.values()) >= 0  # Compiling was not counted twice.
  assert wall['evaluation'] + wall['compiling'] + wall['other'] == pytest.approx(wall['total'])


def test_the_cpu_peak_is_measured_once():
  peak = efficiency.measured_cpu_peak_tflops()
  assert peak > 0 and efficiency.measured_cpu_peak_tflops() == peak


def test_streamed_input_waits_are_counted_as_data():
  def slow_put(batch):
    time.sleep(0.05)
    return batch

  class Driver:
    def train_batches(self, state, batch, rng):
      return state + 1, batch

  stream = input_pipeline.Stream(iter([((0, 1), {'x': np.zeros((1, 4))})]), slow_put)
  clock = efficiency.WallClock()
  with clock.part('train_steps'):
    state, _ = step_loop._dispatch(
      Driver(), 0, stream, None, 0, 1, None, step_loop.Instruments(clock)
    )
  assert state == 1 and clock.seconds('data') >= 0.05 > clock.seconds('train_steps')


def test_a_recurrent_step_is_counted_over_every_time_step():
  # XLA counts a scan's body once: the LM family gives an unrolled twin to count.
  config = lm_tiny.get_config()
  config.lock()  # A mistyped override fails.
  config.update(
    seq_len=8, model=dict(embed_dim=8, hidden_dim=32, num_layers=1, dropout_rate=0.0, cell='lstm')
  )
  text = lambda n: np.arange(n, dtype=np.int32) % 8 + 1
  corpus = text_lib.TextCorpus(
    text(200), text(30), tokenizers.CharTokenizer('abcdefgh'), name='count', version='0'
  )
  family = families.CharLanguageModel(config, corpus=corpus)
  data = family.load_data()
  model = family.build(data)
  init = state_lib.train_state_init(model.init_params, model.module.apply, optax.sgd(0.1))
  rng = jax.random.key(0)
  count = lambda loss_fn: efficiency.train_step_flops(
    loss_fn, model.gather_fn, jax.eval_shape(init, rng), data.train, 16, rng, num_devices=1
  )
  # The LSTM's matmuls (input, recurrent, output; forward and two in backward) over
  # B=16 windows of T=8: the scanned step counts the recurrent one at one time step.
  b_t = 16 * 8
  matmuls = 3 * 2 * b_t * (8 * 128 + 32 * 128 + 32 * 12)
  assert 0.85 * matmuls <= count(model.flops_loss_fn) <= 1.3 * matmuls
  assert count(model.loss_fn) < 0.6 * matmuls
