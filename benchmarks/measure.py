"""Framework-free timing, memory and summary helpers shared by both workers.

Nothing here imports JAX or PyTorch: each worker process imports exactly one of
them, so their thread pools never compete inside one process.
"""

import dataclasses
import resource
import statistics
import time
from typing import Callable

# fp32 FLOPs of one (2048 x 2048) x (2048 x 2048) matmul: the peak probe.
MATMUL_N = 2048
MATMUL_FLOPS = 2 * MATMUL_N**3


@dataclasses.dataclass(frozen=True)
class Summary:
  """Median, min and max of repeated measurements."""

  median: float
  min: float
  max: float
  n: int

  @classmethod
  def of(cls, values: list[float]) -> 'Summary':
    if not values:
      raise ValueError('no measurements to summarise')
    return cls(statistics.median(values), min(values), max(values), len(values))

  def scaled(self, factor: float) -> 'Summary':
    """The same summary of `factor / value` (e.g. step time -> throughput)."""
    lo, hi = factor / self.max, factor / self.min
    return Summary(factor / self.median, lo, hi, self.n)


def peak_rss_mib() -> float:
  """Peak resident set size of this process so far (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed_repetition(run_steps: Callable[[int], None], num_steps: int) -> float:
  """Seconds per step of `run_steps(num_steps)`, which must block until done."""
  start = time.perf_counter()
  run_steps(num_steps)
  return (time.perf_counter() - start) / num_steps


def steps_for(seconds_per_step: float, target_seconds: float, max_steps: int = 50) -> int:
  """Steps per repetition so that one repetition lasts about `target_seconds`."""
  if seconds_per_step <= 0:
    return max_steps
  return max(1, min(max_steps, round(target_seconds / seconds_per_step)))


# The benchmarked configurations, shared by both frameworks so that their shapes
# agree by construction. `quick` sizes are tiny smoke-test versions.
_FULL = {
  'matmul': dict(n=MATMUL_N),
  'cnn_train': dict(batch=64, image=48, channels=3, hidden=512, classes=10),
  'cnn_eval': dict(batch=64, image=48, channels=3, hidden=512, classes=10),
  # Vocabulary of the offline pydoc text: its 103 training characters plus the 4
  # special ids of `research.data.tokenizers`.
  'lstm': dict(batch=64, seq=128, embed=128, hidden=512, vocab=107),
  'gru': dict(batch=64, seq=128, embed=128, hidden=512, vocab=107),
  # Byte-level vocabulary (256 bytes + PAD/BOS/EOS/UNK), as the translation path.
  'transformer': dict(
    batch=64, src_len=64, tgt_len=64, d=256, heads=4, enc_layers=3, dec_layers=3, ff=1024, vocab=260
  ),
  # The DDPM experiment's default U-Net. The JAX row trains the DDPM family's whole
  # step (its default prompt encoder, ~5% of the FLOPs, and the EMA); the PyTorch
  # peer is the U-Net alone.
  'unet': dict(
    batch=64,
    image=28,
    channels=1,
    widths=(32, 64, 64),
    num_res_blocks=1,
    attention_resolutions=(7,),
    heads=4,
    groups=8,
    timesteps=1000,
  ),
}
_QUICK = {
  'matmul': dict(n=256),
  'cnn_train': dict(batch=8, image=16, channels=3, hidden=32, classes=10),
  'cnn_eval': dict(batch=8, image=16, channels=3, hidden=32, classes=10),
  'lstm': dict(batch=4, seq=16, embed=16, hidden=32, vocab=20),
  'gru': dict(batch=4, seq=16, embed=16, hidden=32, vocab=20),
  'transformer': dict(
    batch=4, src_len=8, tgt_len=8, d=32, heads=2, enc_layers=1, dec_layers=1, ff=64, vocab=20
  ),
  'unet': dict(
    batch=4,
    image=28,
    channels=1,
    widths=(8, 16, 16),
    num_res_blocks=1,
    attention_resolutions=(7,),
    heads=4,
    groups=8,
    timesteps=1000,
  ),
}
MODELS = tuple(_FULL)
# Models whose PyTorch peer also runs in channels-last memory format.
CONV_MODELS = ('cnn_train', 'cnn_eval', 'unet')
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4  # Coupled (L2 added to the gradient), PyTorch's Adam(weight_decay).


def spec(model: str, quick: bool) -> dict:
  """The configuration of benchmark `model` (full size or the --quick size)."""
  table = _QUICK if quick else _FULL
  if model not in table:
    raise ValueError(f'unknown model {model!r}: use one of {MODELS}')
  return dict(table[model])


def units(model: str, s: dict) -> tuple[int | None, int | None]:
  """(examples, tokens) processed by one step of `model`; None where meaningless."""
  if model == 'matmul':
    return None, None
  if model in ('lstm', 'gru'):
    return s['batch'], s['batch'] * s['seq']
  if model == 'transformer':
    return s['batch'], s['batch'] * (s['src_len'] + s['tgt_len'])
  return s['batch'], None


def serve(bench, *, warmup_steps: int, rep_seconds: float, max_steps: int = 50) -> None:
  """Worker loop: compile and warm up, then answer commands on stdin.

  Protocol (one JSON object per line): the worker first sends {'ready': info}; then
  {'cmd': 'rep'} -> {'step_s': seconds per step over one repetition} and
  {'cmd': 'done'} -> {'peak_rss_mib': ...}, after which it exits. Anything else the
  libraries print goes to stderr, so stdout carries the protocol only.
  """
  import json
  import os
  import sys

  proto = os.fdopen(os.dup(1), 'w')
  os.dup2(2, 1)
  sys.stdout = sys.stderr

  def send(obj):
    proto.write(json.dumps(obj) + '\n')
    proto.flush()

  info = bench.compile()
  warm = timed_repetition(bench.run, warmup_steps) if warmup_steps else 0.0
  num_steps = steps_for(warm, rep_seconds, max_steps) if warmup_steps else 1
  send({'ready': dict(info, steps_per_rep=num_steps, warmup_step_s=warm)})
  for line in sys.stdin:
    cmd = json.loads(line)['cmd']
    if cmd == 'rep':
      send({'step_s': timed_repetition(bench.run, num_steps)})
    elif cmd == 'done':
      send({'peak_rss_mib': peak_rss_mib()})
      return
