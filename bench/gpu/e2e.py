#!/usr/bin/env python3
"""PyTorch + transformers peer of bench/gpu/e2e.mjs on the same GPU: a randomly initialised
Qwen2.5-0.5B-shaped Qwen2ForCausalLM (SDPA attention), f32 master weights with bf16 autocast
and fused AdamW (as itool: f32 master, bf16 compute); SFT and SimPO steps on 4 x 2048 tokens;
generate() of 64 branches x 50 new tokens from a 512-token prompt repeated 64 times.
Request (argv[1], JSON): {"seq": 2048, "batch": 4, "steps": 10, "quick": false}. One JSON line out."""
import json
import sys
import time

import torch
import torch.nn.functional as F


def main():
    req = json.loads(sys.argv[1])
    from transformers import Qwen2Config, Qwen2ForCausalLM
    import transformers
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                      max_position_embeddings=32768, tie_word_embeddings=True, attn_implementation="sdpa")
    dev = torch.device("cuda")
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    S, B, steps = req["seq"], req["batch"], req["steps"]
    ids = torch.randint(10, cfg.vocab_size, (B, S), device=dev)
    res = {"torch": torch.__version__, "transformers": transformers.__version__, "device": torch.cuda.get_device_name(0)}

    def timed(fn):
        fn(); fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / steps

    def sft():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(ids).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    sec = timed(sft)
    res["sft"] = {"secPerStep": sec, "tokensPerSec": B * S / sec}

    half = S // 2
    pairs = ids.reshape(2 * B, half)

    def simpo():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(pairs).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, pairs[:, 1:, None]).squeeze(-1)
        avg = logp.sum(-1) / (half - 1)
        loss = -F.logsigmoid(2.5 * (avg[0::2] - avg[1::2]) - 0.5).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    sec = timed(simpo)
    res["simpo"] = {"secPerStep": sec, "tokensPerSec": B * S / sec}

    del opt
    model = model.to(torch.bfloat16).eval()
    prompt = ids[0, :512].unsqueeze(0).repeat(64, 1)
    gen = lambda: model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=50, min_new_tokens=50,
                                 do_sample=True, temperature=1.0, top_k=0, top_p=1.0, pad_token_id=0)
    with torch.no_grad():
        gen()
        torch.cuda.synchronize()
        reps = 1 if req.get("quick") else 3
        t0 = time.perf_counter()
        for _ in range(reps):
            gen()
        torch.cuda.synchronize()
        sec = (time.perf_counter() - t0) / reps
    res["generate"] = {"sec": sec, "tokensPerSec": 64 * 50 / sec}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
