"""rnngen.training: the public path of the training utilities (rnngen/train/): a dense output
layer, masked per-step softmax cross-entropy, gradient clipping, SGD and Adam, a many-to-many
sequence model (RNN + dense), a memory estimate for training, and checkpoints."""
from .train.checkpoints import (CHECKPOINT_FORMAT, META_KEYS, cell_folder, checkpoint_metadata,  # noqa: F401
                                load_checkpoint, model_metadata, read_checkpoint, save_checkpoint)
from .train.files import check_writable, write_atomically  # noqa: F401
from .train.layers import Dense, SeqModel  # noqa: F401
from .train.losses import log_softmax, softmax, softmax_cross_entropy  # noqa: F401
from .train.memory import (available_memory_bytes, format_bytes, parameter_shapes,  # noqa: F401
                           training_memory_bytes)
from .train.optimizers import (SGD, Adam, check_finite_grads, clip_by_global_norm, clip_by_value,  # noqa: F401
                               global_norm)
