"""Runs one family through the trainer in every layout and fault, on 2 CPU devices.

  XLA_FLAGS=--xla_force_host_platform_device_count=2 \
      python tests/workers/trainer_matrix_worker.py FAMILY TMPDIR DATA_DIR OUT.json

Writes a JSON summary (max parameter differences, messages, flags) that
tests/train/test_trainer_matrix.py asserts on. Every run goes through
`research.train.trainer.train_and_evaluate`; a probe wraps the family to read its
final parameters, poison one training example, or send SIGTERM mid-run.
"""

import dataclasses
import json
import os
import signal
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.cnn.configs import default as cnn_default
from experiments.ddpm.configs import tiny as ddpm_tiny
from experiments.lm.configs import tiny as lm_tiny
from experiments.seq2seq.configs import default as seq2seq_default
from research import families
from research.errors import NonFiniteLossError
from research.errors import Preempted
from research.train import batch_plans
from research.train import trainer

# Runs of one family share most programs: compile each once. (The imports above compile
# nothing, so the cache is set before the first program.)
jax.config.update('jax_compilation_cache_dir', os.path.join(sys.argv[2], 'jit_cache'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)

TEXT = ''.join(f'The cat sat on the mat number {i}.\nThe dog did not.\n' for i in range(40))


def tiny_config(name: str, tmp: str, data_dir: str):
  """A seconds-long, deterministic config (no dropout, no augmentation) per family."""
  if name == 'cnn':
    c = cnn_default.get_config()
    c.update(
      data_dir=data_dir,
      train_split='train[:64]',
      test_split='test[:16]',
      image_size=8,
      num_epochs=2,
      batch_size=16,
      eval_batch_size=16,
    )
    c.model.update(hidden_dim=16, dropout_rate=0.0, conv_parts=1)
    c.augment.update(max_rotation_deg=0.0, brightness=0.0, contrast=0.0)
  elif name in ('lstm', 'gru_streams'):
    c = lm_tiny.get_config()
    path = os.path.join(tmp, 'text.txt')
    with open(path, 'w', encoding='utf-8') as f:
      f.write(TEXT)
    c.update(text_file=path, num_steps=8, eval_every_steps=0, batch_size=8)
    c.model.cell = name.split('_')[0]
    c.sample.length = 0
    if name == 'gru_streams':
      # 8 streams of 226 characters, 4 windows of 48 each: 8 steps are 2 epochs, the
      # state carried between steps and reset at steps 4 and 8; step 3 is mid-epoch.
      c.update(carry_state=True, seq_len=48)
  elif name == 'transformer':
    c = seq2seq_default.get_config()
    c.update(
      num_epochs=2, batch_size=16, eval_batch_size=16, steps_per_dispatch=1, eval_every_epochs=0
    )
    c.generated.update(num_train=64, num_test=16, max_length=6, num_letters=6)
    c.model.update(emb_dim=16, num_heads=2, num_encoder_layers=1, num_decoder_layers=1, mlp_dim=32)
    c.optimizer.warmup_steps = 1
  else:
    c = ddpm_tiny.get_config()
    c.update(data_dir=data_dir, train_split='train[:32]', batch_size=16, eval_every_epochs=0)
    # One U-Net level, no U-Net attention (as in tests/test_lowering.py): each of the
    # ten runs compiles ~30% sooner. That attention is the transformer's
    # `dot_product_attention`, which the transformer row runs in every layout.
    c.model.update(widths=(8,), attention_resolutions=())
  # fsdp_min_size: the tiny models' arrays are small; shard them all the same.
  c.update(progress=False, microbatches=1, log_every_steps=0, fsdp_min_size=64)
  # SGD: Adam divides near-zero gradients by their own size, which turns the
  # summation-order round-off of another layout into lr-sized differences.
  c.optimizer.update(name='sgd', learning_rate=0.05, schedule='constant')
  return c


@dataclasses.dataclass
class Probe:
  """Wraps a family: keeps its final parameters, optionally poisons example 0 of the
  training data (its loss becomes NaN) or sends SIGTERM at step `sigterm_at`."""

  inner: Any
  poison: bool = False
  sigterm_at: int = 0

  def __post_init__(self):
    self.name, self.config = self.inner.name, self.inner.config
    self.eval_split = self.inner.eval_split

  def load_data(self):
    data = self.inner.load_data()
    if self.poison:  # The first example of step 2's batch.
      self.poisoned = int(source(data, self.config).chunk(1, 1)[0][0, 0])
      flag = np.zeros(data.num_train, np.float32)
      flag[self.poisoned] = 1.0
      data.train = dict(data.train, poison=flag)
    self.data = data
    return data

  def build(self, data):
    model = self.inner.build(data)
    if not self.poison:
      return model
    gather, loss_fn = model.gather_fn, model.loss_fn

    def gather_fn(arrays, idx_B):
      return dict(gather(arrays, idx_B), poison=jnp.take(arrays['poison'], idx_B))

    def poisoned(params, batch, rng, train):
      bad = (batch.pop('poison') * batch['mask']).sum() > 0
      metrics, out = loss_fn(params, batch, rng, train)
      s, n = metrics['loss']
      # Times NaN, not replaced by NaN: the gradient must be NaN too, as it is when
      # a real example blows up (else the optimizer's skip would never be tested).
      return dict(metrics, loss=(s * jnp.where(bad, jnp.nan, 1.0), n)), out

    return dataclasses.replace(model, gather_fn=gather_fn, loss_fn=poisoned)

  def evaluate(self, run, state, step):
    if step == self.sigterm_at:
      os.kill(os.getpid(), signal.SIGTERM)
    return {}

  def report(self, run, state):
    params = run.driver.host_state(state).params
    # What the layout options reached: the driver, its micro-batches, the sharding.
    self.layout = {
      'driver': type(run.driver).__name__,
      'microbatches': run.driver.microbatches,
      'sharded': any(not x.sharding.is_fully_replicated for x in jax.tree.leaves(state.params)),
      'pipeline': run.input_pipeline,
    }
    # A carried recurrent state (host layout, (B, H) rows) is compared with them.
    carry = getattr(run.driver.host_state(state), 'carry', None)
    self.carry_leaves = len(jax.tree.leaves(carry))
    self.params = [np.asarray(x, np.float64) for x in jax.tree.leaves((params, carry))]
    self.dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(params)})
    return {}


def run(name, config, workdir, **probe_kw) -> tuple[Probe, dict]:
  inner = families.FAMILIES[
    'lm' if name in ('lstm', 'gru_streams') else 'seq2seq' if name == 'transformer' else name
  ](config)
  probe = Probe(inner, **probe_kw)
  final = trainer.train_and_evaluate(probe, workdir, log=lambda _: None)
  return probe, final


def max_diff(a: Probe, b: Probe) -> float:
  return max(float(np.max(np.abs(x - y))) for x, y in zip(a.params, b.params, strict=True))


def source(data, config) -> batch_plans.IndexSource:
  return batch_plans.IndexSource(data.num_train, config.batch_size, data.sampling, config.seed)


def first_poisoned_step(probe: Probe, config) -> int:
  for step in range(10_000):
    idx, mask = source(probe.data, config).chunk(step, 1)
    if ((idx == probe.poisoned) & (mask > 0)).any():
      return step + 1
  raise AssertionError('the poisoned example is never trained on')


def variant(name, tmp, data_dir, tag, **changes):
  c = tiny_config(name, tmp, data_dir)
  for k, v in changes.items():
    if k == 'dtype':
      c.model.dtype = v
    elif k == 'skip':
      c.optimizer.skip_nonfinite = v
    else:
      c[k] = v
  return c, os.path.join(tmp, tag)


def main(name: str, tmp: str, data_dir: str, out: str) -> None:
  v = lambda tag, **kw: variant(name, tmp, data_dir, tag, **kw)
  base, base_final = run(name, *v('base'))
  result = {
    'steps': base_final['steps'],
    'base_finite': all(np.isfinite(p).all() for p in base.params),
    'carry_leaves': base.carry_leaves,
    'sampling': base.data.sampling if hasattr(base, 'data') else None,
  }
  layouts = (
    ('pmap', dict(driver='pmap')),
    ('fsdp', dict(fsdp=True)),
    ('micro2', dict(microbatches=2)),
    ('bf16', dict(dtype='bfloat16')),
    ('stream', dict(input_pipeline='stream')),
  )
  # The DDPM's pmap and micro-batch runs cannot equal the baseline (they draw other
  # noise), so they could only show that they run: the U-Net's compiles (a minute of
  # the suite) are spent on the layouts that must agree.
  if name == 'ddpm':
    layouts = tuple(x for x in layouts if x[0] not in ('pmap', 'micro2'))
  for tag, kw in layouts:
    probe, _ = run(name, *v(tag, **kw))
    result[tag] = max_diff(base, probe)
    result[f'{tag}_dtypes'] = probe.dtypes
    result[f'{tag}_layout'] = probe.layout
  cfg, workdir = v('resume', checkpoint_every_steps=2, eval_every_steps=2)
  try:
    run(name, cfg, workdir, sigterm_at=2)
    result['preempted_at'] = None
  except Preempted as e:
    result['preempted_at'] = e.step
  resumed = Probe(families.FAMILIES[base.name](cfg))
  trainer.train_and_evaluate(resumed, workdir, resume=True, log=lambda _: None)
  result['resume_bitwise_equal'] = all(
    np.array_equal(x, y) for x, y in zip(base.params, resumed.params, strict=True)
  )
  cfg, workdir = v('nan')
  probe = Probe(families.FAMILIES[base.name](cfg), poison=True)
  try:
    trainer.train_and_evaluate(probe, workdir, log=lambda _: None)
    result['nonfinite_message'] = None
  except NonFiniteLossError as e:
    result['nonfinite_message'] = str(e)
  result['first_poisoned_step'] = first_poisoned_step(probe, cfg)
  cfg, workdir = v('skip', skip=True)
  probe = Probe(families.FAMILIES[base.name](cfg), poison=True)
  final = trainer.train_and_evaluate(probe, workdir, log=lambda _: None)
  result['skip_finite'] = all(np.isfinite(p).all() for p in probe.params)
  result['skip_steps'] = final['steps']
  result['skipped'] = final['skipped_steps']
  with open(out, 'w', encoding='utf-8') as f:
    json.dump(result, f)


if __name__ == '__main__':
  main(*sys.argv[1:5])
