"""The token ids every text model and tokenizer share.

The models mask and pool by these ids; the tokenizers of `research.data.tokenizers`
give the first `NUM_SPECIAL` ids these meanings and number their own symbols after
them. They live here, below the data pipelines, so that models need not import data.
"""

PAD_ID = 0  # Padding: losses and the prompt encoder mask it out.
BOS_ID = 1  # Beginning of sequence: the seq2seq decoder's first input.
EOS_ID = 2  # End of sequence: ends seq2seq targets and prompts.
UNK_ID = 3  # A character or word outside the vocabulary.
NUM_SPECIAL = 4  # Ids reserved above; a tokenizer's symbol i has id NUM_SPECIAL + i.
