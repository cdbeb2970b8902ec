"""Training on top of the runtime: layers (Dense, SeqModel), losses, optimizers and clipping,
memory estimates, atomic files and checkpoints, and the char-LM with its corpus. rnngen.training
and rnngen.charlm are the public paths of these names."""
