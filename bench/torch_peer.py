#!/usr/bin/env python3
"""PyTorch peer for `itool bench train --compare torch`: the same Llama-shaped decoder
(RMSNorm, RoPE in the Hugging Face half-split convention, grouped-query attention,
optional QKV bias, SwiGLU, tied or untied embeddings), the same f32 weights (read from
the Hugging Face directory itool saved), the same packed batch, and the same SFT step:
forward, mean negative log-likelihood over the target tokens, backward, global
gradient-norm clipping, AdamW.

Usage: /usr/bin/python3 bench/torch_peer.py REQUEST.json
Training REQUEST: {"modelDir": str, "tokens": [[int]], "targets": [[int]] (-1: no target),
          "steps": int, "lr": float, "maxGradNorm": float, "threads": int}
Prints one JSON line: {"torch", "threads", "loss0", "secondsPerStep": [..], "peakRssBytes"}.
loss0 is the loss of the first step, computed before any update, for the bench to check
that both engines do the same work.

Generation REQUEST: {"mode": "generate", "modelDir", "prompt": [int], "branches": int,
          "newTokens": int, "temperature": float, "prefillBatch": int, "threads": int}
The tree search's workload done the way Hugging Face generate does it: one KV cache per
branch (the prompt prefilled for every branch, prefillBatch branches at a time), then
newTokens batched decode steps sampling at the temperature. Prints {"torch", "seconds",
"prefillSeconds", "generated", "promptLogprob0", "peakRssBytes"}; promptLogprob0 is the
log-probability of prompt[1] after prompt[0], for the bench to check the same weights.

Settings that make it fastest on a 2-core CPU (../shared/TOOLCHAIN.md): Debian's
python3-torch with libopenblas0-pthread, torch.set_num_threads(1) (OpenBLAS threads
itself), OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the bench unsets them).
"""
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    """{name: float32 numpy array} from a .safetensors file (F32, BF16 or F16)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[b:e]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif dt == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"torch_peer.py: tensor {name} has dtype {dt}, expected F32/BF16/F16")
        out[name] = a.reshape(info["shape"]).copy()
    return out


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Layer(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        H, D = c["hidden_size"], c["head_dim"]
        self.nh, self.nkv, self.d = c["num_attention_heads"], c["num_key_value_heads"], D
        bias = bool(c["qkv_bias"])
        self.input_layernorm = RMSNorm(H, c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(H, c["rms_norm_eps"])
        # the Hugging Face module names, so that the checkpoint's keys load as they are
        self.self_attn = torch.nn.Module()
        self.self_attn.q_proj = torch.nn.Linear(H, self.nh * D, bias=bias)
        self.self_attn.k_proj = torch.nn.Linear(H, self.nkv * D, bias=bias)
        self.self_attn.v_proj = torch.nn.Linear(H, self.nkv * D, bias=bias)
        self.self_attn.o_proj = torch.nn.Linear(self.nh * D, H, bias=False)
        I = c["intermediate_size"]
        self.mlp = torch.nn.Module()
        self.mlp.gate_proj = torch.nn.Linear(H, I, bias=False)
        self.mlp.up_proj = torch.nn.Linear(H, I, bias=False)
        self.mlp.down_proj = torch.nn.Linear(I, H, bias=False)

    def forward(self, x, cos, sin, mask, past=None):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        at, mlp = self.self_attn, self.mlp
        q = at.q_proj(h).view(B, T, self.nh, self.d).transpose(1, 2)
        k = at.k_proj(h).view(B, T, self.nkv, self.d).transpose(1, 2)
        v = at.v_proj(h).view(B, T, self.nkv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past is not None:
            if past[0] is not None:
                k = torch.cat((past[0], k), dim=2)
                v = torch.cat((past[1], v), dim=2)
            past[0], past[1] = k, v
        rep = self.nh // self.nkv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.d) + mask
        a = torch.softmax(s, dim=-1) @ v
        x = x + at.o_proj(a.transpose(1, 2).reshape(B, T, self.nh * self.d))
        h = self.post_attention_layernorm(x)
        return x + mlp.down_proj(F.silu(mlp.gate_proj(h)) * mlp.up_proj(h))


class Decoder(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        V, H = c["vocab_size"], c["hidden_size"]
        self.embed_tokens = torch.nn.Embedding(V, H)
        self.layers = torch.nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(H, c["rms_norm_eps"])
        self.tied = bool(c.get("tie_word_embeddings", True))
        if not self.tied:
            self.lm_head = torch.nn.Linear(H, V, bias=False)
        D = c["head_dim"]
        theta = float(c.get("rope_theta", 10000.0))
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))

    def forward(self, tokens, past=None, start=0, last_only=False):
        """logits [B, T, V] (or [B, V] of the last position); `past` (a list of [k, v] per
        layer) is extended in place, `start` is the position of tokens[:, 0]."""
        B, T = tokens.shape
        pos = torch.arange(start, start + T, dtype=torch.float32)
        ang = torch.outer(pos, self.inv_freq)
        emb = torch.cat((ang, ang), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        # causal over the new tokens; every new token sees all `start` cached ones
        mask = torch.cat((torch.zeros(T, start), torch.full((T, T), float("-inf")).triu(1)), dim=1)
        x = self.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, mask, None if past is None else past[i])
        if last_only:
            x = x[:, -1]
        x = self.norm(x)
        w = self.embed_tokens.weight if self.tied else self.lm_head.weight
        return x @ w.t()


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    c.setdefault("head_dim", c["hidden_size"] // c["num_attention_heads"])
    if c.get("rope_scaling"):
        raise SystemExit("torch_peer.py: rope_scaling is not implemented in the peer")
    tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    if any(".q_norm." in k or ".k_norm." in k for k in tensors):
        raise SystemExit("torch_peer.py: q/k norms (Qwen3) are not implemented in the peer")
    c["qkv_bias"] = "model.layers.0.self_attn.q_proj.bias" in tensors  # Qwen2 style: QKV bias
    m = Decoder(c)
    state = {}
    for name, a in tensors.items():
        key = name[len("model."):] if name.startswith("model.") else name
        state[key] = torch.from_numpy(a)
    missing, unexpected = m.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"torch_peer.py: weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return m


@torch.no_grad()
def generate(req):
    m = load(req["modelDir"])
    m.eval()
    prompt = torch.tensor(req["prompt"], dtype=torch.long)
    n_branch, n_new = int(req["branches"]), int(req["newTokens"])
    temp = float(req.get("temperature", 1.0))
    pb = max(1, int(req.get("prefillBatch", 8)))
    L = len(m.layers)
    gen = torch.Generator().manual_seed(0)
    lp0 = float(torch.log_softmax(m(prompt[None, :2])[0, 0], dim=-1)[prompt[1]])
    t0 = time.perf_counter()
    # one cache per branch: the prompt prefilled for each, pb branches at a time
    caches, last = [], []
    for b0 in range(0, n_branch, pb):
        nb = min(pb, n_branch - b0)
        past = [[None, None] for _ in range(L)]
        last.append(m(prompt[None].expand(nb, -1), past, 0, last_only=True))
        caches.append(past)
    past = [[torch.cat([c[i][j] for c in caches], dim=0) for j in range(2)] for i in range(L)]
    logits = torch.cat(last, dim=0)
    t_prefill = time.perf_counter() - t0
    pos = prompt.shape[0]
    generated = 0
    for i in range(n_new):
        probs = torch.softmax(logits / temp, dim=-1) if temp > 0 else None
        nxt = torch.multinomial(probs, 1, generator=gen) if probs is not None else logits.argmax(-1, keepdim=True)
        generated += n_branch
        if i + 1 < n_new:  # the last sampled token needs no forward
            logits = m(nxt, past, pos, last_only=True)
            pos += 1
    sec = time.perf_counter() - t0
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds": sec,
        "prefillSeconds": t_prefill,
        "generated": generated,
        "promptLogprob0": lp0,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main():
    with open(sys.argv[1]) as f:
        req = json.load(f)
    torch.set_num_threads(int(req.get("threads", 1)))
    if req.get("mode") == "generate":
        print(json.dumps(generate(req)))
        return
    torch.manual_seed(0)
    m = load(req["modelDir"])
    tokens = torch.tensor(req["tokens"], dtype=torch.long)
    targets = torch.tensor(req["targets"], dtype=torch.long)
    opt = torch.optim.AdamW(m.parameters(), lr=float(req["lr"]), betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    max_norm = float(req.get("maxGradNorm", 0))
    V = m.c["vocab_size"]

    def step():
        opt.zero_grad(set_to_none=True)
        logits = m(tokens)
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
        loss.backward()
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(m.parameters(), max_norm)
        opt.step()
        return float(loss)

    times = []
    loss0 = None
    for s in range(int(req["steps"]) + 1):  # the first step is the warm-up
        t0 = time.perf_counter()
        loss = step()
        if s == 0:
            loss0 = loss
        else:
            times.append(time.perf_counter() - t0)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loss0": loss0,
        "secondsPerStep": times,
        "peakRssBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
