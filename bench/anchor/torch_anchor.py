"""PyTorch anchor for `srk bench` on the same GPU, in the same run (bench/RESULTS.md).

Measures, with random inputs: f32 matmul 4096^3 (TF32 off) and bf16, copy bandwidth, and a DPO /
Sr-DPO training step of a random-init Pythia (transformers GPTNeoXForCausalLM) with the settings of
`srk bench step`: 8 pairs x 512 tokens (prompt 256), reference log-probs precomputed, RMSprop,
gradient clipping 10, f32 (and bf16 autocast); Sr-DPO's augmented prompts start with 48 random tokens,
as `srk bench step`'s (REFINE_TOKENS: the paper's refinement prompt under the Pythia tokenizer).
policy_tokens_per_s counts 2 x pairs x seq a step, as `srk bench step`'s unpackedTokensPerS.
Prints one JSON line per result. Used only on the GPU machine.
"""
import json, sys, time
import torch

def timed(fn, warmup=2, reps=5):
    for _ in range(warmup): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t0)
    ts.sort(); return ts[len(ts) // 2]

def matmul_anchor():
    torch.backends.cuda.matmul.allow_tf32 = False
    out = {}
    for dt in (torch.float32, torch.bfloat16):
        a = torch.randn(4096, 4096, device='cuda', dtype=dt); b = torch.randn(4096, 4096, device='cuda', dtype=dt)
        s = timed(lambda: a @ b, 3, 10)
        out[str(dt).split('.')[-1]] = 2 * 4096 ** 3 / s / 1e12
    x = torch.empty(512 * 2 ** 20 // 4, device='cuda'); y = torch.empty_like(x)
    s = timed(lambda: y.copy_(x), 3, 10)
    out['copy_TBps'] = 2 * x.numel() * 4 / s / 1e12
    return out

def step_anchor(size, loss, precision, pairs=8, seq=512, prompt=256, refine=48):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    d, L, H = {'pythia-160m': (768, 12, 12), 'pythia-410m': (1024, 24, 16)}[size]
    cfg = GPTNeoXConfig(vocab_size=50304, hidden_size=d, num_hidden_layers=L, num_attention_heads=H,
                        intermediate_size=4 * d, rotary_pct=0.25, use_parallel_residual=True)
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(cfg).cuda().train()
    model.config.use_cache = False
    opt = torch.optim.RMSprop(model.parameters(), lr=5e-7)
    ids = torch.randint(0, 50304, (2 * pairs, seq), device='cuda')
    aug = torch.cat([torch.randint(0, 50304, (2 * pairs, refine), device='cuda'), ids], 1)
    ref = torch.randn(2 * pairs, device='cuda') - 300
    beta, lam = 0.1, 0.5
    def seq_logps(logits, tokens, start):
        lp = torch.log_softmax(logits[:, start - 1:-1].float(), -1).gather(-1, tokens[:, start:, None])[..., 0]
        return lp.sum(-1)
    def step():
        ctx = torch.autocast('cuda', dtype=torch.bfloat16) if precision == 'bf16' else torch.autocast('cuda', enabled=False)
        with ctx:
            delta = 0.0
            if loss == 'sr-dpo':
                with torch.no_grad():
                    la = seq_logps(model(aug).logits, aug, prompt + refine)
                    delta = beta * ((la[:pairs] - ref[:pairs]) - (la[pairs:] - ref[pairs:]))
            lp = seq_logps(model(ids).logits, ids, prompt)
            h = (lp[:pairs] - ref[:pairs]) - (lp[pairs:] - ref[pairs:])
            l = -torch.nn.functional.logsigmoid(beta * h - lam * delta).mean()
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step(); opt.zero_grad(set_to_none=True)
    torch.cuda.reset_peak_memory_stats()
    s = timed(step, 2, 5)
    return {'ms': s * 1e3, 'policy_tokens_per_s': 2 * pairs * seq / s, 'peak_GiB': torch.cuda.max_memory_allocated() / 2 ** 30}

def generate_anchor(size, rows=8, prompt=256, new=256):
    """transformers' generate() as `srk bench generate` measures srk's: greedy, f32, the KV cache, random-init
    Pythia shapes, `rows` prompts of `prompt` random tokens and exactly `new` new tokens each (min_new_tokens:
    no row stops early). The prompt pass alone (one forward that fills the cache) is timed apart."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    d, L, H = {'pythia-160m': (768, 12, 12), 'pythia-410m': (1024, 24, 16)}[size]
    cfg = GPTNeoXConfig(vocab_size=50304, hidden_size=d, num_hidden_layers=L, num_attention_heads=H,
                        intermediate_size=4 * d, rotary_pct=0.25, use_parallel_residual=True)
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(cfg).cuda().eval()
    ids = torch.randint(0, 50304, (rows, prompt), device='cuda')
    # The prompt pass as generate() runs it: logits of the last position only where the model takes
    # logits_to_keep (num_logits_to_keep in older transformers), as srk's prompt pass computes them.
    import inspect
    params = inspect.signature(model.forward).parameters
    keep = {k: 1 for k in ('logits_to_keep', 'num_logits_to_keep') if k in params}
    keep = dict(list(keep.items())[:1])
    with torch.no_grad():
        prefill = timed(lambda: model(ids, use_cache=True, **keep), 2, 5)
        whole = timed(lambda: model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                                             do_sample=False, use_cache=True, pad_token_id=0), 1, 3)
    decode_step = (whole - prefill) / (new - 1)
    return {'prefill_ms': prefill * 1e3, 'prefill_tokens_per_s': rows * prompt / prefill,
            'decode_step_ms': decode_step * 1e3, 'decode_tokens_per_s': rows / decode_step, 'generate_ms': whole * 1e3}

if __name__ == '__main__':
    # A line per result as it comes (the first: the card, software and matmul rates), then all of them
    # in one object: a run cut off by its time limit keeps what it measured.
    r = {'device': torch.cuda.get_device_name(), 'torch': torch.__version__}
    r['matmul_TFLOPs'] = matmul_anchor()
    print(json.dumps(r), flush=True)
    # `--generate SIZE`: generate()'s prompt pass and decode rate alone (gpu-check.sh's gen anchor).
    if sys.argv[1:2] == ['--generate']:
        for size in sys.argv[2:] or ['pythia-410m']:
            key = f'{size} generate f32'
            try:
                r[key] = generate_anchor(size)
            except Exception as e:
                r[key] = {'error': repr(e)[:300]}
            print(json.dumps({key: r[key]}), flush=True)
        print(json.dumps(r), flush=True)
        sys.exit(0)
    for size in sys.argv[1:] or ['pythia-160m']:
        for precision in ('f32', 'bf16'):
            for loss in ('dpo', 'sr-dpo'):
                key = f'{size} {precision} {loss}'
                try:
                    r[key] = step_anchor(size, loss, precision)
                except Exception as e:  # report and go on: the anchor is a reference, not a test
                    r[key] = {'error': repr(e)[:300]}
                torch.cuda.empty_cache()
                print(json.dumps({key: r[key]}), flush=True)
    print(json.dumps(r), flush=True)
