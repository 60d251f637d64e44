"""Per-length exact match of decoded sequences, on a hand-made example."""

import numpy as np
import pytest

from research.tasks import seq2seq

# Six sources of lengths 1, 2, 2, 4, 4, 4 (0 pads), their targets (EOS = 2), and
# what greedy and beam decoding "produced" (one column more than the targets,
# which is ignored). Exact: greedy rows 0, 2, 3, 5; beam rows 1, 2, 5.
INPUTS = np.array(
  [[5, 0, 0, 0], [5, 6, 0, 0], [7, 6, 0, 0], [3, 4, 5, 6], [4, 4, 5, 6], [6, 6, 6, 6]], np.int32
)
TARGETS = np.array(
  [
    [5, 2, 0, 0, 0],
    [6, 5, 2, 0, 0],
    [6, 7, 2, 0, 0],
    [6, 5, 4, 3, 2],
    [6, 5, 4, 4, 2],
    [6, 6, 6, 6, 2],
  ],
  np.int32,
)
_extra = np.full((6, 1), 9, np.int32)
GREEDY = np.concatenate(
  [
    np.array(
      [
        [5, 2, 0, 0, 0],
        [6, 5, 5, 2, 0],
        [6, 7, 2, 0, 0],
        [6, 5, 4, 3, 2],
        [6, 5, 4, 2, 0],
        [6, 6, 6, 6, 2],
      ],
      np.int32,
    ),
    _extra,
  ],
  1,
)
BEAM = np.concatenate(
  [
    np.array(
      [
        [5, 5, 2, 0, 0],
        [6, 5, 2, 0, 0],
        [6, 7, 2, 0, 0],
        [6, 5, 4, 3, 3],
        [6, 5, 4, 5, 2],
        [6, 6, 6, 6, 2],
      ],
      np.int32,
    ),
    _extra,
  ],
  1,
)


def test_exact_by_length_counts_each_input_length():
  assert seq2seq.exact_by_length(INPUTS, TARGETS, GREEDY) == {1: (1, 1), 2: (1, 2), 4: (2, 3)}
  assert seq2seq.exact_by_length(INPUTS, TARGETS, BEAM) == {1: (0, 1), 2: (2, 2), 4: (1, 3)}


def test_length_summary_reports_greedy_and_beam_per_length_and_their_minimum():
  metrics, table = seq2seq.length_summary(INPUTS, TARGETS, {'greedy': GREEDY, 'beam': BEAM})
  by_length = metrics['test_exact_accuracy_by_length']
  assert list(by_length) == ['1', '2', '4']
  assert [v['examples'] for v in by_length.values()] == [1, 2, 3]
  greedy = [v['greedy_exact_accuracy'] for v in by_length.values()]
  beam = [v['beam_exact_accuracy'] for v in by_length.values()]
  np.testing.assert_allclose(greedy, [1.0, 0.5, 2 / 3])
  np.testing.assert_allclose(beam, [0.0, 1.0, 1 / 3])
  assert metrics['test_greedy_exact_accuracy_min_over_lengths'] == pytest.approx(0.5)
  assert metrics['test_beam_exact_accuracy_min_over_lengths'] == 0.0
  rows = [line.split() for line in table.splitlines()]
  assert rows[0] == ['length', 'examples', 'greedy', 'beam']
  assert rows[1:] == [
    ['1', '1', '100.00%', '0.00%'],
    ['2', '2', '50.00%', '100.00%'],
    ['4', '3', '66.67%', '33.33%'],
    ['min', '50.00%', '0.00%'],
  ]
