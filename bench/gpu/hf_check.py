#!/usr/bin/env python3
"""Loads the model and LoRA adapter written by bench/gpu/hf_check.mjs with transformers and
PEFT (float32, on the GPU when present) and compares their logits with itool's.
Prints one JSON line; exit status 1 when a difference exceeds the bf16 tolerance
(max |diff| <= 0.03 * max |logit| + 0.03, itool computing in bf16 on the GPU)."""
import json
import sys

import torch


def main():
    d = sys.argv[1]
    ref = json.load(open(f"{d}/itool_logits.json"))
    from transformers import AutoModelForCausalLM
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(f"{d}/model", torch_dtype=torch.float32).to(dev).eval()
    V = ref["vocab"]

    def logits(m):
        out = []
        with torch.no_grad():
            for q in ref["seqs"]:
                ids = torch.tensor([q], device=dev)
                out.append(m(ids).logits[0].float().cpu().reshape(-1))
        return out

    def compare(mine, theirs):
        worst, scale = 0.0, 0.0
        for a, b in zip(mine, theirs):
            a = torch.tensor(a)
            worst = max(worst, (a - b).abs().max().item())
            scale = max(scale, b.abs().max().item())
        return worst, scale

    res = {"transformers": __import__("transformers").__version__, "device": dev}
    w, s = compare(ref["base"], logits(model))
    res["model"] = {"maxAbsDiff": w, "maxAbsLogit": s, "ok": w <= 0.03 * s + 0.03}
    try:
        from peft import PeftModel
        pm = PeftModel.from_pretrained(model, f"{d}/adapter").eval()
        w2, s2 = compare(ref["lora"], logits(pm))
        w0, _ = compare(ref["lora"], [torch.tensor(x) for x in ref["base"]])
        res["adapter"] = {"peft": __import__("peft").__version__, "maxAbsDiff": w2, "maxAbsLogit": s2,
                          "adapterEffect": w0, "ok": w2 <= 0.03 * s2 + 0.03 and w0 > 1e-3}
    except Exception as e:  # noqa: BLE001
        res["adapter"] = {"ok": False, "error": repr(e)[:300]}
    print(json.dumps(res))
    sys.exit(0 if res["model"]["ok"] and res["adapter"].get("ok") else 1)


if __name__ == "__main__":
    main()
