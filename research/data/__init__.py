"""Data sets (tfds builders and loaders) and on-device preprocessing.

- Images: `load_image_classification` returns an `ImageDataset` (uint8 images,
  int labels) from any tfds image classification data set, `mnist_offline`
  included; `ImagePreprocessing` and `preprocess` turn them into model inputs on the
  device, with optional augmentation (`augment.py`).
- Text: `load_corpus` returns a `TextCorpus` (character ids and its `Vocab`).
- Sequence pairs: `make_task` builds a generated string task (`TaskConfig`) as
  `Seq2SeqDataset`s with a `CharVocab`; `TranslationConfig` and `corpus_bleu` serve
  tfds translation (`translation.py`).
- `get_builder` (`tfds_io.py`) returns a tfds builder, the library's own offline
  data sets included, importing TensorFlow only then; `process_slice` (`shard.py`)
  is this process's share of N examples.

Importing this package imports no TensorFlow.
"""

from research.data.augment import ImagePreprocessing
from research.data.augment import preprocess
from research.data.image_classification import ImageDataset
from research.data.image_classification import load_image_classification
from research.data.seq2seq_tasks import CharVocab
from research.data.seq2seq_tasks import Seq2SeqDataset
from research.data.seq2seq_tasks import TaskConfig
from research.data.seq2seq_tasks import make_task
from research.data.shard import process_slice
from research.data.text import TextCorpus
from research.data.text import Vocab
from research.data.text import load_corpus
from research.data.tfds_io import get_builder
from research.data.translation import TranslationConfig
from research.data.translation import corpus_bleu

__all__ = [
    'CharVocab', 'ImageDataset', 'ImagePreprocessing', 'Seq2SeqDataset', 'TaskConfig',
    'TextCorpus', 'TranslationConfig', 'Vocab', 'corpus_bleu', 'get_builder',
    'load_corpus', 'load_image_classification', 'make_task', 'preprocess',
    'process_slice',
]
