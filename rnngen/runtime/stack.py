"""The stacking of layers and directions, shared by rnngen.RNN (numpy and device arrays) and the
PyTorch bridge (tensors under autograd): layer k runs its directions on layer k-1's output, the
directions' outputs are concatenated (forward first), and a step between layers (dropout) runs
on every output but the last. Direction d of layer k is unit k * D + d of the final states."""


def unit(layer, direction, num_directions):
    """The index of (layer, direction) in the (num_layers * num_directions, B, H) states."""
    return layer * num_directions + direction


def forward_layers(x, num_layers, num_directions, run, concat, between):
    """The stack's output: run(layer, direction, input) -> that direction's output (T, B, H),
    concat(outputs) -> the layer's (T, B, D * H), between(layer, output) -> the next layer's input."""
    inp = x
    for layer in range(num_layers):
        outs = [run(layer, d, inp) for d in range(num_directions)]
        out = outs[0] if num_directions == 1 else concat(outs)
        inp = between(layer, out) if layer < num_layers - 1 else out
    return inp


def backward_layers(dy, num_layers, num_directions, run, take, add, between):
    """The gradient of the stack's input: layers in reverse; between(layer, grad) undoes the step
    after layer `layer`, take(grad, direction) is that direction's part of the layer's output
    gradient, run(layer, direction, grad) -> the gradient of the layer's input, summed by add."""
    grad = dy
    for layer in range(num_layers - 1, -1, -1):
        if layer < num_layers - 1:
            grad = between(layer, grad)
        parts = [run(layer, d, grad if num_directions == 1 else take(grad, d)) for d in range(num_directions)]
        grad = parts[0]
        for p in parts[1:]:
            grad = add(grad, p)
    return grad
