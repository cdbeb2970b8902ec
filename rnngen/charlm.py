"""rnngen.charlm: the public path of the character-level language model (rnngen/train/charlm.py);
its commands `rnngen train` / `rnngen sample` are rnngen/tools/train_cli.py."""
from .train.charlm import EOS, CharLM, read_corpus, train_charlm  # noqa: F401
