"""F1 on PyTorch: torchaudio's log-mel spectrogram (MelSpectrogram defaults: n_fft 400,
hop 200, 128 bands; then log(mel + 1e-6)) of 32 one-second 16 kHz clips, 1 thread;
`infer` the forward, `train` forward plus the gradient with respect to the waveforms of
(logmel * r).sum(). Prints one JSON line per phase like `onde bench F1`.

    .torch-venv/bin/python bench/torchaudio_f1.py [--threads 1]
"""

import argparse
import json
import time

import torch
import torchaudio

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--target-s", type=float, default=1.0)
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(1)
mel = torchaudio.transforms.MelSpectrogram(16000)
x = torch.randn(32, 16000) * 0.1
r = torch.randn(32, 128, 81)


def infer():
    with torch.no_grad():
        return torch.log(mel(x) + 1e-6)


def train():
    xg = x.clone().requires_grad_(True)
    (torch.log(mel(xg) + 1e-6) * r).sum().backward()
    return xg.grad


def timed(f):
    for _ in range(3):
        f()
    ts = []
    start = time.perf_counter()
    while len(ts) < 20 or time.perf_counter() - start < args.target_s:
        t0 = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2], ts[len(ts) // 10], ts[(9 * len(ts)) // 10]


for phase, f in (("infer", infer), ("train", train)):
    med, p10, p90 = timed(f)
    print(json.dumps(dict(workload="F1", phase=phase, threads=args.threads, median_ms=med,
                          p10_ms=p10, p90_ms=p90, torch=torch.__version__,
                          torchaudio=torchaudio.__version__)))
