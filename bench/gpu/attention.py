#!/usr/bin/env python3
"""PyTorch peer of `itool bench attention`: causal scaled_dot_product_attention,
forward+backward, bf16, on the GPU. Request (argv[1], JSON):
  {"cases": [{"D": 64, "heads": 32, "seq": 512, "batch": 32}, ...], "iters": 10}
Prints one JSON line: {"torch": version, "device": name, "rows": [{"ms": ...}, ...]}
Timing: CUDA events around `iters` back-to-back forward+backward calls after 2 warm-ups.
"""
import json
import sys

import torch
import torch.nn.functional as F


def main():
    req = json.loads(sys.argv[1])
    dev = torch.device("cuda")
    rows = []
    for c in req["cases"]:
        B, H, S, D = c["batch"], c["heads"], c["seq"], c["D"]
        g = torch.Generator(device=dev).manual_seed(0)
        mk = lambda: torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16, generator=g).requires_grad_(True)
        q, k, v = mk(), mk(), mk()
        dout = torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16, generator=g)

        def step():
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            out.backward(dout)
            q.grad = k.grad = v.grad = None

        for _ in range(2):
            step()
        torch.cuda.synchronize()
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        it = int(req.get("iters", 10))
        s.record()
        for _ in range(it):
            step()
        e.record()
        torch.cuda.synchronize()
        rows.append({"ms": s.elapsed_time(e) / it})
        del q, k, v, dout
        torch.cuda.empty_cache()
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "rows": rows}))


if __name__ == "__main__":
    main()
