#!/usr/bin/env python3
"""PyTorch peer of `itool bench loss`: the eager composition of LM head -> log-softmax ->
target log-prob -> per-sequence sums -> SimPO loss, and its backward, in bf16 with the
log-softmax in float32 (as preference trainers do). Request (argv[1], JSON):
  {"tokens": T, "vocab": V, "hidden": H, "pairs": P, "beta": 2.5, "gamma": 0.5, "iters": 5}
Prints one JSON line: {"torch", "device", "ms", "peakBytes", "loss"}.
peakBytes: torch.cuda.max_memory_allocated() beyond the inputs, gradients included.
"""
import json
import sys

import torch
import torch.nn.functional as F


def main():
    req = json.loads(sys.argv[1])
    T, V, H, P = req["tokens"], req["vocab"], req["hidden"], req["pairs"]
    beta, gamma = req["beta"], req["gamma"]
    L = T // (2 * P)
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    hidden = (torch.rand(T, H, device=dev, generator=g) * 3.4 - 1.7).to(torch.bfloat16).requires_grad_(True)
    weight = (torch.rand(V, H, device=dev, generator=g) * 0.12 - 0.06).to(torch.bfloat16).requires_grad_(True)
    targets = torch.randint(0, V, (T,), device=dev, generator=g)

    def step():
        logits = hidden @ weight.t()
        logp = torch.log_softmax(logits.float(), dim=-1)
        tok = logp.gather(1, targets[:, None]).squeeze(1)
        sums = tok.view(2 * P, L).sum(1)
        chosen, rejected = sums[0::2] / L, sums[1::2] / L
        loss = -F.logsigmoid(beta * (chosen - rejected) - gamma).mean()
        loss.backward()
        hidden.grad = None
        weight.grad = None
        return loss.detach()

    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    # the peak of one step, gradients included (measured before they are dropped)
    logits = hidden @ weight.t()
    logp = torch.log_softmax(logits.float(), dim=-1)
    tok = logp.gather(1, targets[:, None]).squeeze(1)
    sums = tok.view(2 * P, L).sum(1)
    loss = -F.logsigmoid(beta * (sums[0::2] / L - sums[1::2] / L) - gamma).mean()
    loss.backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del logits, logp, tok, sums
    hidden.grad = None
    weight.grad = None
    step()
    torch.cuda.synchronize()
    it = int(req.get("iters", 5))
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(it):
        last = step()
    e.record()
    torch.cuda.synchronize()
    print(json.dumps({
        "torch": torch.__version__, "device": torch.cuda.get_device_name(0), "ms": s.elapsed_time(e) / it,
        "peakBytes": int(peak), "loss": float(last),
    }))


if __name__ == "__main__":
    main()
