"""Translation pairs from tensorflow-datasets, byte-level tokens, and BLEU.

The default is TED talks Portuguese -> English (`ted_hrlr_translate/pt_to_en`).
Text becomes UTF-8 bytes (`research.data.tokenizers.ByteTokenizer`, so no
tokenizer has to be trained or downloaded); sequences are truncated to the
maximal lengths.
"""

import dataclasses

from research.data import seq2seq_tasks
from research.data import tfds_io
from research.data import tokenizers
from research.errors import UserInputError


@dataclasses.dataclass(frozen=True)
class TranslationConfig:
  """Attributes:
  dataset: tfds name with a source and a target language feature.
  source_language: feature key of the source text (e.g. 'pt').
  target_language: feature key of the target text (e.g. 'en').
  max_input_length: source bytes kept.
  max_target_length: target bytes kept, EOS included.
  data_dir: tfds data directory (None: tfds's default).
  """

  dataset: str = 'ted_hrlr_translate/pt_to_en'
  source_language: str = 'pt'
  target_language: str = 'en'
  max_input_length: int = 128
  max_target_length: int = 128
  data_dir: str | None = None


def load_split(
  cfg: TranslationConfig, split: str
) -> tuple[seq2seq_tasks.Seq2SeqDataset, list[str]]:
  """Reads a whole split into padded byte arrays.

  Returns:
    the data set and the untruncated reference translations (for BLEU).

  Raises:
    UserInputError: for an unknown data set, split or language key.
  """
  tfds = tfds_io.import_tfds()
  builder = tfds_io.get_builder(cfg.dataset, cfg.data_dir)
  builder.download_and_prepare()
  try:
    ds = builder.as_dataset(split=split)
  except (ValueError, KeyError) as e:
    raise UserInputError(f'cannot read split {split!r} of {cfg.dataset}: {e}') from None
  pairs = []
  for ex in tfds.as_numpy(ds):
    try:
      src, tgt = ex[cfg.source_language], ex[cfg.target_language]
    except KeyError as e:
      raise UserInputError(
        f'{cfg.dataset} has no language {e.args[0]!r}: it has {sorted(ex)}'
      ) from None
    pairs.append((src.decode('utf-8'), tgt.decode('utf-8')))
  vocab = tokenizers.ByteTokenizer()
  inputs, targets = seq2seq_tasks.encode_pairs(
    pairs, vocab, cfg.max_input_length, cfg.max_target_length
  )
  return (
    seq2seq_tasks.Seq2SeqDataset(cfg.dataset, inputs, targets, vocab),
    [tgt for _, tgt in pairs],
  )


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
  """Corpus BLEU (sacrebleu's standard 13a tokenisation), 0..100."""
  import sacrebleu  # pylint: disable=g-import-not-at-top

  return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)
