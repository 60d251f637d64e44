"""The README's figures are quoted from generated files, not typed a second time.

Its results table is a selection of rows of the reproduce table in docs/results.md (the
output of scripts/reproduce.sh), the headline results of its family table are figures
of those rows, and its benchmark table quotes docs/benchmark_report.md (the output of
scripts/benchmark.sh). When a script runs again, update the generated file first; these
tests then name every README figure that no longer matches.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text(encoding='utf-8')
RESULTS = (ROOT / 'docs' / 'results.md').read_text(encoding='utf-8')
BENCHMARK = (ROOT / 'docs' / 'benchmark_report.md').read_text(encoding='utf-8')
NUMBER = re.compile(r'\d[\d,]*(?:\.\d+)?')


def _section(text: str, title: str) -> str:
  start = text.index(f'\n## {title}\n')
  end = text.find('\n## ', start + 1)
  return text[start : end if end > 0 else None]


def _table_rows(text: str) -> list[str]:
  """The body rows of the markdown tables in `text` (header and rule left out)."""
  lines = [line.strip() for line in text.splitlines() if line.strip().startswith('|')]
  return [
    line
    for i, line in enumerate(lines)
    if not re.fullmatch(r'\|[-:| ]+\|', line)
    and not (i + 1 < len(lines) and re.fullmatch(r'\|[-:| ]+\|', lines[i + 1]))
  ]


def _cells(row: str) -> list[str]:
  return [cell.strip() for cell in row.strip('|').split('|')]


def test_results_table_rows_are_rows_of_the_reproduce_table():
  rows = _table_rows(_section(README, 'Results'))
  assert len(rows) >= 6, 'the README lost its results table'
  generated = set(_table_rows(_section(RESULTS, 'The reproduce table')))
  stray = [row for row in rows if row not in generated]
  assert not stray, f'README results rows not in docs/results.md: {stray}'


def test_family_table_quotes_the_results_table():
  results = ' '.join(_table_rows(_section(README, 'Results')))
  quoted = set(NUMBER.findall(results))
  rows = _table_rows(README[: README.index('\n## ')])
  assert len(rows) == 4, 'the family table should have a row per family'
  for row in rows:
    family, *_, result, time = _cells(row)
    figures = NUMBER.findall(result + ' ' + time)
    assert figures, f'{family}: no figure in its headline result and time'
    missing = [f for f in figures if f not in quoted]
    assert not missing, f'{family}: {missing} are not in the README results table'


def test_benchmark_table_quotes_the_benchmark_report():
  rows = _table_rows(_section(README, 'Benchmarks'))
  assert len(rows) >= 6, 'the README lost its benchmark table'
  for row in rows:
    for figure in NUMBER.findall(' '.join(_cells(row)[1:])):
      assert figure in BENCHMARK, f'{figure} ({row}) is not in docs/benchmark_report.md'
