r"""A/B on CPU: a train step with each lowering of its 3x3 convolutions.

`layers.conv3x3` is XLA's own convolution; `benchmarks.im2col_conv` has the dropped
im2col lowering (im2col forward and kernel gradient, a custom VJP), on every platform
(`conv3x3_im2col`) or gated to CPU as the library gates its CPU paths
(`conv3x3_im2col_on_cpu`, `research.platform_policy.on_cpu`). This times, on the
benchmark's CNN train step (batch 64, 48x48x3, as the experiment runs it,
`benchmarks.jax_models`) or its DDPM U-Net step (`--model=unet`), each
lowering forced on every convolution, and checks that the gated function compiles to
the same XLA program on CPU as the custom VJP applied unconditionally (instruction
opcodes and shapes). Variants are timed in interleaved repetitions (A B C, C B A,
...) so that noise on a shared machine hits them alike; the table gives median, min
and max.

Run:
  python -m benchmarks.conv_lowering_ab               # ~2-3 min on 2 cores
  python -m benchmarks.conv_lowering_ab --reps=15
  python -m benchmarks.conv_lowering_ab --model=unet --reps=7   # ~4 min

What it measured, and why XLA's convolutions are the library's, is in
docs/performance.md ("Measured and dropped").
"""

import argparse
import collections
import re
from typing import Callable
from unittest import mock

import jax
import jax.numpy as jnp

from benchmarks import im2col_conv
from benchmarks import jax_models
from benchmarks import measure
from research.models import layers


def _custom_vjp(forward: Callable, input_grad: Callable) -> Callable:
  """A conv3x3 with the given forward and input gradient, im2col kernel gradient."""
  conv = jax.custom_vjp(forward)
  conv.defvjp(
    lambda x, k: (forward(x, k), (x, k)),
    lambda res, g: (input_grad(g, res[1]), im2col_conv.kernel_grad(res[0], g)),
  )
  return conv


def _flipped(kernel_3x3xCxO):
  return jnp.flip(kernel_3x3xCxO, (0, 1)).swapaxes(2, 3)


VARIANTS = {
  'XLA native (the default, every platform)': layers.conv3x3,
  'im2col fwd + kernel grad (gated to CPU)': im2col_conv.conv3x3_im2col_on_cpu,
  'same, custom VJP on every platform': im2col_conv.conv3x3_im2col,
  'XLA fwd, im2col kernel grad': _custom_vjp(
    im2col_conv.conv, lambda g, k: im2col_conv.conv(g, _flipped(k))
  ),
  'im2col input grad too (dropped)': _custom_vjp(
    im2col_conv.conv_im2col, lambda g, k: im2col_conv.conv_im2col(g, _flipped(k))
  ),
}
# The pair whose compiled CPU programs must be the same.
_GATED, _UNGATED = list(VARIANTS)[1:3]


def _compiled(conv_fn: Callable, quick: bool, model: str = 'cnn_train') -> jax_models.JaxBench:
  # What every Conv3x3 traces.
  with mock.patch.object(layers, 'conv3x3', lambda x, k, *_: conv_fn(x, k)):
    bench = jax_models.build(model, quick)
    bench.compile()  # Traces (and compiles) here, inside the context.
  return bench


def instruction_histogram(hlo_text: str) -> collections.Counter:
  """(result shape, opcode) counts of an optimised HLO module, names dropped."""
  return collections.Counter(re.findall(r'= (\S+\[[^\]]*\](?:\{[^}]*\})?) ([a-z-]+)\(', hlo_text))


def measure_variants(
  benches: dict[str, jax_models.JaxBench], reps: int, rep_seconds: float
) -> dict[str, measure.Summary]:
  """Seconds per train step of each variant, over `reps` interleaved repetitions."""
  names = list(benches)
  for bench in benches.values():
    bench.run(3)  # Warm-up.
  probe = measure.timed_repetition(benches[names[0]].run, 3)
  num_steps = measure.steps_for(probe, rep_seconds)
  times: dict[str, list[float]] = {n: [] for n in names}
  for r in range(reps):
    for n in names if r % 2 == 0 else names[::-1]:
      times[n].append(measure.timed_repetition(benches[n].run, num_steps))
  return {n: measure.Summary.of(t) for n, t in times.items()}


def format_table(results: dict[str, measure.Summary], batch: int) -> str:
  """Markdown table: ms/step median (min-max), examples/s, ratio to the first row."""
  base = next(iter(results.values())).median
  rows = [
    '| variant | ms/step median | min | max | examples/s | vs first |',
    '|---|---:|---:|---:|---:|---:|',
  ]
  for name, s in results.items():
    rows.append(
      f'| {name} | {s.median * 1e3:.1f} | {s.min * 1e3:.1f} | '
      f'{s.max * 1e3:.1f} | {batch / s.median:.0f} | {s.median / base:.3f} |'
    )
  return '\n'.join(rows)


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--reps', type=int, default=9, help='interleaved repetitions')
  p.add_argument(
    '--rep_seconds', type=float, default=2.0, help='target length of one repetition of one variant'
  )
  p.add_argument(
    '--model',
    default='cnn_train',
    choices=('cnn_train', 'unet'),
    help="the benchmark's train step to time (the DDPM's U-Net step too)",
  )
  p.add_argument('--quick', action='store_true', help='tiny sizes (smoke test)')
  args = p.parse_args(argv)
  if args.reps < 1 or args.rep_seconds <= 0:
    p.error('--reps must be >= 1 and --rep_seconds > 0')
  spec = measure.spec(args.model, args.quick)
  benches = {n: _compiled(f, args.quick, args.model) for n, f in VARIANTS.items()}
  # pylint: disable-next=protected-access
  before, after = (
    instruction_histogram(benches[n]._compiled.as_text()) for n in (_GATED, _UNGATED)
  )
  results = measure_variants(benches, args.reps, args.rep_seconds)
  print(
    f'{args.model} step, batch {spec["batch"]}, {spec["image"]}x{spec["image"]}x'
    f'{spec["channels"]}, {jax.devices()[0].device_kind}, '
    f'{jax.device_count()} device(s), {args.reps} interleaved repetitions'
  )
  print(
    f'compiled gated and ungated custom VJP: {sum(before.values())} and '
    f'{sum(after.values())} instructions, same opcodes and shapes: '
    f'{before == after}'
  )
  print(format_table(results, spec['batch']))


if __name__ == '__main__':
  main()
