"""Data sets (tfds builders and loaders) and on-device preprocessing.

- Images: `load_image_classification` returns an `ImageDataset` (uint8 images,
  int labels) from any tfds image classification data set, `mnist_offline`
  and `fashion_mnist_offline` (`fashion_mnist.py`: idx files, published
  baselines) included; `ImagePreprocessing` and `preprocess` turn them into
  model inputs on the device, with optional augmentation (`augment.py`).
- Tokens (`tokenizers.py`): one convention, PAD/BOS/EOS/UNK = 0/1/2/3 (the ids of
  `research.models.special_tokens`), then the symbols; `CharTokenizer` (characters),
  `ByteTokenizer` (UTF-8 bytes) and `WordTokenizer` (prompt words, `split_words`)
  implement the `Tokenizer` protocol.
- Prompts: `PromptGrammar` (`prompt_grammar.py`) enumerates templates x class names
  x attribute words as one token table and draws from it inside a jitted step;
  `measure_attributes` (`glyph_attributes.py`) measures stroke thickness, size and
  slant of glyph images, the attributes prompts can name.
- Text: `load_corpus` returns a `TextCorpus` (character ids and its `CharTokenizer`);
  `load_ptb` (`ptb.py`) the word-level Penn Treebank as a `WordCorpus` (ids and its
  `VocabularyTokenizer`).
- Sequence pairs: `make_task` builds a generated string task (`TaskConfig`) as
  `Seq2SeqDataset`s with a strict `CharTokenizer`; `TranslationConfig` and
  `corpus_bleu` serve tfds translation (`translation.py`, a `ByteTokenizer`).
- `get_builder` (`tfds_io.py`) returns a tfds builder, the library's own offline
  data sets included, importing TensorFlow only then; `process_slice` (`shard.py`)
  is this process's share of N examples.

Importing this package imports no TensorFlow.
"""

from research.data.augment import ImagePreprocessing
from research.data.augment import preprocess
from research.data.glyph_attributes import measure as measure_attributes
from research.data.image_classification import ImageDataset
from research.data.image_classification import load_image_classification
from research.data.prompt_grammar import PromptGrammar
from research.data.ptb import WordCorpus
from research.data.ptb import load_ptb
from research.data.seq2seq_tasks import Seq2SeqDataset
from research.data.seq2seq_tasks import TaskConfig
from research.data.seq2seq_tasks import make_task
from research.data.shard import process_slice
from research.data.text import TextCorpus
from research.data.text import load_corpus
from research.data.tfds_io import get_builder
from research.data.tokenizers import ByteTokenizer
from research.data.tokenizers import CharTokenizer
from research.data.tokenizers import Tokenizer
from research.data.tokenizers import VocabularyTokenizer
from research.data.tokenizers import WordTokenizer
from research.data.tokenizers import split_words
from research.data.translation import TranslationConfig
from research.data.translation import corpus_bleu

__all__ = [
  'ByteTokenizer',
  'CharTokenizer',
  'ImageDataset',
  'ImagePreprocessing',
  'PromptGrammar',
  'Seq2SeqDataset',
  'TaskConfig',
  'TextCorpus',
  'Tokenizer',
  'TranslationConfig',
  'VocabularyTokenizer',
  'WordCorpus',
  'WordTokenizer',
  'corpus_bleu',
  'get_builder',
  'split_words',
  'load_corpus',
  'load_image_classification',
  'load_ptb',
  'make_task',
  'measure_attributes',
  'preprocess',
  'process_slice',
]
