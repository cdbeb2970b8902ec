"""The `rnngen` command and what it runs: cli (the parser), build (files, --check), show and list,
bench, train and sample. Tools may import everything: the compiler, the runtime, the trainers."""
