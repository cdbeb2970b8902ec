"""The stacking of layers and directions, shared by rnngen.RNN (numpy and device arrays) and the
PyTorch bridge (tensors under autograd): layer k runs its directions on layer k-1's output, the
directions' outputs are concatenated (forward first), and a step between layers (dropout) runs
on every output but the last. Direction d of layer k is unit k * D + d of the final states."""


def unit(layer, direction, num_directions):
    """The index of (layer, direction) in the (num_layers * num_directions, B, H) states."""
    return layer * num_directions + direction


def in_order(tasks):
    """Run callables one after another: the default way to run a layer's directions."""
    return [t() for t in tasks]


def forward_layers(x, num_layers, num_directions, run, concat, between, each=in_order):
    """The stack's output: run(layer, direction, input) -> that direction's output (T, B, H),
    concat(outputs) -> the layer's (T, B, D * H), between(layer, output) -> the next layer's input;
    each(callables) runs a layer's directions (in order, or at the same time) and returns theirs."""
    inp = x
    for layer in range(num_layers):
        if num_directions == 1:
            out = run(layer, 0, inp)
        else:
            out = concat(each([lambda layer=layer, d=d, inp=inp: run(layer, d, inp) for d in range(num_directions)]))
        inp = between(layer, out) if layer < num_layers - 1 else out
    return inp


def backward_layers(dy, num_layers, num_directions, run, take, add, between, each=in_order):
    """The gradient of the stack's input: layers in reverse; between(layer, grad) undoes the step
    after layer `layer`, take(grad, direction) is that direction's part of the layer's output
    gradient, run(layer, direction, grad) -> the gradient of the layer's input, summed by add;
    each() as in forward_layers."""
    grad = dy
    for layer in range(num_layers - 1, -1, -1):
        if layer < num_layers - 1:
            grad = between(layer, grad)
        if num_directions == 1:
            grad = run(layer, 0, grad)
            continue
        inputs = [take(grad, d) for d in range(num_directions)]
        parts = each([lambda layer=layer, d=d, inputs=inputs: run(layer, d, inputs[d]) for d in range(num_directions)])
        grad = parts[0]
        for p in parts[1:]:
            grad = add(grad, p)
    return grad
