#!/usr/bin/env python3
"""PyTorch CPU times (1 thread, best of 15 x 4 calls, ms) of the convolutions of W2
and of its batch norm / ReLU passes, for comparison with onde's native kernels
(`NATIVE_BENCH_SUMMARY=1 cargo bench -p onde-codegen --bench native`).
Run with the venv of ../shared/bench/setup-torch.sh: $VENV/bin/python bench/torch_convs.py"""
import torch, time
torch.set_num_threads(1)
def bench(f, *a):
    for _ in range(3): f(*a)
    best = 1e9
    for _ in range(15):
        t = time.perf_counter()
        for _ in range(4): f(*a)
        best = min(best, (time.perf_counter() - t) / 4)
    return best * 1e3
x = torch.randn(32, 32, 4000)
with torch.no_grad():
    dw = torch.nn.Conv1d(32, 32, 9, groups=32, padding=4, bias=False)
    print("dw k9", bench(dw, x))
    pw = torch.nn.Conv1d(32, 32, 1, bias=False)
    print("pw", bench(pw, x))
    x0 = torch.randn(32, 1, 16000)
    c0 = torch.nn.Conv1d(1, 32, 11, stride=4, padding=5, bias=False)
    print("first", bench(c0, x0))
    s2 = torch.nn.Conv1d(32, 32, 3, stride=2, padding=1, bias=False)
    print("s2 k3", bench(s2, x))
    bn = torch.nn.BatchNorm1d(32).eval()
    print("bn", bench(bn, x))
    print("relu", bench(torch.relu, x))

# W2's separable block forward + backward (benches/conv_grad.rs): depthwise k9 'same'
# -> pointwise -> ReLU, loss sum(h^2), gradients of the input and both kernels.
xg = torch.randn(32, 32, 4000, requires_grad=True)
dwg = torch.nn.Conv1d(32, 32, 9, groups=32, padding=4, bias=False)
pwg = torch.nn.Conv1d(32, 32, 1, bias=False)
def step():
    xg.grad = None
    dwg.weight.grad = None
    pwg.weight.grad = None
    h = torch.relu(pwg(dwg(xg)))
    (h * h).sum().backward()
print("block fwd+bwd", bench(step))

# W2's first layer forward + backward (kernel gradient only; benches/conv_grad.rs).
x0g = torch.randn(32, 1, 16000)
c0g = torch.nn.Conv1d(1, 32, 11, stride=4, padding=5, bias=False)
def step0():
    c0g.weight.grad = None
    h = torch.relu(c0g(x0g))
    (h * h).sum().backward()
print("first layer fwd+bwd", bench(step0))

# W2's strided layer forward + backward (input and kernel gradients).
x2g = torch.randn(32, 32, 4000, requires_grad=True)
c2g = torch.nn.Conv1d(32, 32, 3, stride=2, padding=1, bias=False)
def step2():
    x2g.grad = None
    c2g.weight.grad = None
    h = torch.relu(c2g(x2g))
    (h * h).sum().backward()
print("strided layer fwd+bwd", bench(step2))
