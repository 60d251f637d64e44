r"""A/B on CPU: the LSTM/GRU train step with autodiff's scan gradient vs the fused one.

`recurrence.scan_recurrence` picks `recurrence.scan_fused_grad` (a custom VJP: the backward scan
carries only the carry cotangents; dw_hh is one matmul after it) on CPU and
`recurrence.scan_autodiff` (JAX's autodiff of the scan, dw_hh accumulated in the loop)
elsewhere. This times the jitted train step of `rnn.CharLM` (one layer; value_and_grad
of the mean cross-entropy and an adam update) with each path, in one process, the
variants interleaved (A B, B A, ...) so that noise on a shared machine hits them alike.
Then it times the faster path at unroll 1, 2, 4 and 8. Tokens/s are medians over rounds.

Measured 2026-11-26 on the 2 shared cores of the dev machine (load ~4, so absolute
numbers are about half an idle machine's; 5 and 7 rounds): the fused gradient is 1.11-1.15x
autodiff for the LSTM (6,000 -> 6,800 tokens/s) and 1.10-1.13x for the GRU (7,800 ->
8,500); unroll 2, 4 and 8 are slower than 1 (0.78-0.98x autodiff at unroll 1).
On the layer alone (T 128, B 64, H 512) the fused forward-and-backward is ~25% faster
for the LSTM (790 vs 1,050 ms); saving the gate activations costs ~50 ms of forward
(255 vs 202 ms), less than recomputing h @ w_hh (~200 ms) would.

Run:
  python -m benchmarks.rnn_backward_ab                   # ~6-10 min on 2 shared cores
  python -m benchmarks.rnn_backward_ab --rounds=3 --steps=2 --quick
"""

import argparse
import statistics
import time
from typing import Callable
from unittest import mock

import jax
import jax.numpy as jnp
import optax

from research.models import recurrence
from research.models import rnn

PATHS = {'autodiff': recurrence.scan_autodiff, 'fused': recurrence.scan_fused_grad}
FULL = dict(batch=64, seq=128, embed=128, hidden=512, vocab=107)
UNROLLS = (1, 2, 4, 8)
QUICK = dict(batch=4, seq=16, embed=16, hidden=32, vocab=20)


def make_step(cell: str, path: str, unroll: int, s: dict) -> Callable[[int], None]:
  """A compiled train step of `rnn.CharLM` on random tokens; returns run(num_steps)."""
  model = rnn.CharLM(
    rnn.CharLMConfig(s['vocab'], s['embed'], s['hidden'], cell=cell, unroll=unroll)
  )
  tokens_BxT1 = jax.random.randint(jax.random.key(0), (s['batch'], s['seq'] + 1), 0, s['vocab'])
  inputs_BxT, targets_BxT = tokens_BxT1[:, :-1], tokens_BxT1[:, 1:]
  mask_BxT = jnp.ones(inputs_BxT.shape, jnp.float32)
  params = model.init(jax.random.key(1), inputs_BxT, train=False)['params']
  tx = optax.adam(1e-3)

  def loss_fn(params):
    logits_BxTxV, _ = model.apply({'params': params}, inputs_BxT, train=True, mask_BxT=mask_BxT)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, targets_BxT).mean()

  def train_step(state):
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  with mock.patch.object(recurrence, 'scan_recurrence', PATHS[path]):  # What Recurrent traces.
    step = jax.jit(train_step, donate_argnums=0).lower((params, tx.init(params))).compile()
  state = [(params, tx.init(params))]

  def run(num_steps: int) -> None:
    for _ in range(num_steps):
      state[0], loss = step(state[0])
    loss.block_until_ready()

  return run


def interleaved(runs: dict[str, Callable[[int], None]], rounds: int, steps: int) -> dict:
  """Median seconds per step of each variant over `rounds` interleaved rounds."""
  for run in runs.values():
    run(1)  # Warm-up.
  times: dict[str, list[float]] = {name: [] for name in runs}
  names = list(runs)
  for r in range(rounds):
    for name in names if r % 2 == 0 else names[::-1]:
      start = time.perf_counter()
      runs[name](steps)
      times[name].append((time.perf_counter() - start) / steps)
  return {name: statistics.median(t) for name, t in times.items()}


def _row(cell: str, path: str, unroll: int, secs: float, base: float, tokens: int) -> str:
  return (
    f'| {cell} | {path} | {unroll} | {secs * 1e3:.1f} | {tokens / secs:,.0f} | {base / secs:.2f} |'
  )


def main(argv: list[str] | None = None) -> None:
  """Prints the A/B table and the unroll sweep of the faster path."""
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--rounds', type=int, default=5, help='interleaved rounds')
  p.add_argument('--steps', type=int, default=3, help='train steps per round per variant')
  p.add_argument('--cells', default='lstm,gru')
  p.add_argument('--quick', action='store_true', help='tiny sizes (smoke test)')
  args = p.parse_args(argv)
  if args.rounds < 1 or args.steps < 1:
    p.error('--rounds and --steps must be >= 1')
  s = QUICK if args.quick else FULL
  tokens = s['batch'] * s['seq']
  print(
    f'CharLM train step (adam), {s}, {jax.devices()[0].device_kind}, '
    f'{args.rounds} rounds x {args.steps} steps, tokens/s (median)'
  )
  print('| cell | path | unroll | ms/step | tokens/s | vs autodiff |')
  print('|---|---|---:|---:|---:|---:|')
  for cell in args.cells.split(','):
    runs = {path: make_step(cell, path, 1, s) for path in PATHS}
    secs = interleaved(runs, args.rounds, args.steps)
    for path, t in secs.items():
      print(_row(cell, path, 1, t, secs['autodiff'], tokens))
    best = min(secs, key=secs.get)
    sweep = {1: runs[best]} | {u: make_step(cell, best, u, s) for u in UNROLLS[1:]}
    for unroll, t in interleaved(sweep, args.rounds, args.steps).items():
      print(_row(cell, best, unroll, t, secs['autodiff'], tokens))


if __name__ == '__main__':
  main()
