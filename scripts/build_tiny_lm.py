"""Build the tiny pretrained causal LM shipped in ``assets/tiny-lm``.

lorascope needs a small, real, *pretrained* Llama-style model that loads offline
with ``AutoModelForCausalLM`` / ``AutoTokenizer`` so that tests and demos can run
LoRA fine-tuning on CPU in seconds. This script makes one from scratch, without
any network access:

1. corpus    -- the Python standard library's own ``*.py`` source (sorted, then a
                seeded shuffle, capped at a few MB) plus simple English sentences
                generated here from word lists ("The capital of France is Paris.").
2. tokenizer -- a byte-level BPE (``tokenizers``, vocab 2048) wrapped in
                ``PreTrainedTokenizerFast``; ``<|endoftext|>`` is bos, eos and pad.
3. model     -- ``LlamaForCausalLM`` (hidden 128, 4 layers, 4 heads, 2 kv heads,
                MLP 352, context 256, tied embeddings), about 1M parameters.
4. training  -- a plain nanoGPT-style loop: random 128-token windows, batch 16,
                AdamW, linear warmup + cosine decay, 2 CPU threads.
5. saving    -- ``save_pretrained`` (fp32 safetensors) for model and tokenizer, and
                a README.md model card recording the command, losses and timing.

Usage (from the repository root)::

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/build_tiny_lm.py --out assets/tiny-lm --steps 4000 --seed 1337
"""

import argparse
import math
import os
import random
import shlex
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

# -----------------------------------------------------------------------------
# settings (the ones worth changing are command-line flags)
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="assets/tiny-lm", help="output model folder")
parser.add_argument("--steps", type=int, default=4000, help="optimizer steps")
parser.add_argument("--seed", type=int, default=1337, help="seed for corpus shuffle, init and batches")
args = parser.parse_args()

EOT = "<|endoftext|>"
vocab_size = 2048
code_cap_bytes = 6_000_000  # how much stdlib source goes into the corpus
max_file_bytes = 120_000  # skip giant generated/data-like modules
n_english = 15_000  # generated English sentences
block_size = 128  # training sequence length
batch_size = 16
learning_rate = 3e-3
min_lr = 3e-4
warmup_steps = 100
weight_decay = 0.1
grad_clip = 1.0
log_every = 50
eval_batches = 20
num_threads = 2

torch.set_num_threads(num_threads)
random.seed(args.seed)
torch.manual_seed(args.seed)
rng = random.Random(args.seed)


# -----------------------------------------------------------------------------
# corpus
def stdlib_python_files():
    """Return the standard library's own *.py files, sorted, minus tests and site-packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip_dirs = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in skip_dirs for part in rel.parts[:-1]):
            continue
        if rel.name.startswith("_sysconfigdata"):  # machine-specific build paths
            continue
        if path.stat().st_size > max_file_bytes:
            continue
        files.append(path)
    return root, files


def load_code_docs(cap_bytes):
    """Read stdlib source files (seeded shuffle of the sorted list) until cap_bytes of text."""
    root, files = stdlib_python_files()
    rng.shuffle(files)
    docs, total = [], 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text.strip():
            continue
        docs.append(text)
        total += len(text.encode("utf-8"))
        if total >= cap_bytes:
            break
    return root, docs, total


CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Portugal", "Lisbon"), ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"),
    ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"),
    ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"), ("Chile", "Santiago"),
    ("Russia", "Moscow"), ("Poland", "Warsaw"), ("Sweden", "Stockholm"), ("Norway", "Oslo"),
    ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Greece", "Athens"), ("Turkey", "Ankara"),
    ("Australia", "Canberra"), ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Belgium", "Brussels"),
    ("the Netherlands", "Amsterdam"), ("Switzerland", "Bern"), ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"), ("South Korea", "Seoul"), ("Indonesia", "Jakarta"), ("Nigeria", "Abuja"),
    ("Morocco", "Rabat"), ("Cuba", "Havana"), ("Hungary", "Budapest"), ("Czechia", "Prague"),
    ("the United Kingdom", "London"), ("the United States", "Washington"), ("Iran", "Tehran"),
]
NAMES = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jack",
         "Kate", "Leo", "Maya", "Noah", "Olivia", "Paul", "Rosa", "Sam", "Tom", "Zoe"]
ADJS = ["big", "small", "red", "blue", "green", "old", "new", "happy", "quiet", "loud",
        "fast", "slow", "warm", "cold", "bright", "dark", "soft", "heavy", "young", "clever"]
NOUNS = ["cat", "dog", "bird", "car", "house", "tree", "book", "river", "city", "child",
         "teacher", "farmer", "garden", "window", "table", "apple", "ship", "horse", "lamp", "road"]
VERBS = ["sees", "likes", "finds", "watches", "follows", "helps", "paints", "carries", "reads", "visits"]
INTRANS = ["sleeps", "runs", "sings", "waits", "smiles", "works", "falls", "shines", "grows", "rests"]
PLACES = ["in the park", "near the river", "at home", "in the garden", "on the hill",
          "by the sea", "in the kitchen", "at school", "under the tree", "in the city"]
TIMES = ["in the morning", "at night", "every day", "on Sunday", "in the summer", "in the winter"]
COLORS = ["red", "blue", "green", "yellow", "white", "black", "brown", "orange"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def english_sentence(r):
    """Return one short, plain English sentence built from the word lists above."""
    kind = r.randrange(8)
    if kind == 0:
        country, city = r.choice(CAPITALS)
        return f"The capital of {country} is {city}."
    if kind == 1:
        country, city = r.choice(CAPITALS)
        return f"{city} is the capital of {country}."
    if kind == 2:
        return f"The {r.choice(ADJS)} {r.choice(NOUNS)} {r.choice(VERBS)} the {r.choice(NOUNS)}."
    if kind == 3:
        return f"{r.choice(NAMES)} {r.choice(VERBS)} a {r.choice(ADJS)} {r.choice(NOUNS)} {r.choice(PLACES)}."
    if kind == 4:
        return f"The {r.choice(NOUNS)} {r.choice(INTRANS)} {r.choice(PLACES)} {r.choice(TIMES)}."
    if kind == 5:
        return f"{r.choice(NAMES)} has a {r.choice(COLORS)} {r.choice(NOUNS)}."
    if kind == 6:
        a, b = r.randrange(6), r.randrange(5)
        return f"{NUMBER_WORDS[a].capitalize()} plus {NUMBER_WORDS[b]} is {NUMBER_WORDS[a + b]}."
    return f"{r.choice(NAMES)} and {r.choice(NAMES)} {r.choice(INTRANS)[:-1]} {r.choice(PLACES)}."


def load_english_docs(n):
    """Generate n sentences and group them into short paragraphs (one doc each)."""
    sentences = [english_sentence(rng) for _ in range(n)]
    docs, i = [], 0
    while i < len(sentences):
        k = rng.randint(3, 8)
        docs.append(" ".join(sentences[i:i + k]) + "\n")
        i += k
    return docs


t_start = time.time()
stdlib_root, code_docs, code_bytes = load_code_docs(code_cap_bytes)
english_docs = load_english_docs(n_english)
english_bytes = sum(len(d.encode("utf-8")) for d in english_docs)
docs = code_docs + english_docs
rng.shuffle(docs)
print(f"corpus: {len(code_docs)} stdlib files ({code_bytes / 1e6:.2f} MB) from {stdlib_root}, "
      f"{len(english_docs)} English paragraphs ({english_bytes / 1e6:.2f} MB)")


# -----------------------------------------------------------------------------
# tokenizer: byte-level BPE
def train_tokenizer(texts):
    """Train a byte-level BPE on texts and wrap it as a transformers fast tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        pad_token=EOT,
        unk_token=None,
        model_max_length=256,
        clean_up_tokenization_spaces=False,
    )


tokenizer = train_tokenizer(docs)
eot_id = tokenizer.convert_tokens_to_ids(EOT)
for sample in ["def f(x):\n    return x  # ok\n", "The capital of France is Paris.", "héllo\twörld 🙂\r\n"]:
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == sample, f"tokenizer does not round-trip {sample!r}"
print(f"tokenizer: byte-level BPE, {len(tokenizer)} tokens, {EOT!r} = id {eot_id}")

# encode every doc, join with <|endoftext|>, hold out the last 2% for validation
# (the raw backend tokenizer avoids the "longer than model_max_length" warning for whole files)
ids = []
for enc in tokenizer.backend_tokenizer.encode_batch(docs, add_special_tokens=False):
    ids.extend(enc.ids)
    ids.append(eot_id)
data = torch.tensor(ids, dtype=torch.long)
n_val = max(len(data) // 50, 4 * block_size)
train_data, val_data = data[:-n_val], data[-n_val:]
print(f"tokens: {len(train_data):,} train, {len(val_data):,} val "
      f"({code_bytes + english_bytes:,} bytes -> {(code_bytes + english_bytes) / len(data):.2f} bytes/token)")


def get_batch(split, gen):
    """Sample a batch of random (x, y) windows of block_size tokens, nanoGPT style."""
    d = train_data if split == "train" else val_data
    ix = torch.randint(len(d) - block_size - 1, (batch_size,), generator=gen)
    x = torch.stack([d[i:i + block_size] for i in ix])
    y = torch.stack([d[i + 1:i + 1 + block_size] for i in ix])
    return x, y


# -----------------------------------------------------------------------------
# model
config = LlamaConfig(
    vocab_size=len(tokenizer),
    hidden_size=128,
    intermediate_size=352,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    bos_token_id=eot_id,
    eos_token_id=eot_id,
    pad_token_id=eot_id,
)
model = LlamaForCausalLM(config)
n_params = sum(p.numel() for p in model.parameters())
print(f"model: LlamaForCausalLM, {n_params:,} parameters (tied embeddings)")


# -----------------------------------------------------------------------------
# optimizer and schedule
def configure_optimizer(m):
    """AdamW with weight decay on matrices only (not norms, not biases)."""
    decay = [p for p in m.parameters() if p.dim() >= 2]
    no_decay = [p for p in m.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.95))


def get_lr(step):
    """Linear warmup then cosine decay from learning_rate to min_lr over args.steps."""
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, args.steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (learning_rate - min_lr)


@torch.no_grad()
def estimate_loss(gen):
    """Mean loss over eval_batches random batches of each split."""
    model.eval()
    out = {}
    for split in ("train", "val"):
        losses = []
        for _ in range(eval_batches):
            x, y = get_batch(split, gen)
            logits = model(input_ids=x).logits
            losses.append(torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).item())
        out[split] = sum(losses) / len(losses)
    model.train()
    return out


optimizer = configure_optimizer(model)
batch_gen = torch.Generator().manual_seed(args.seed)
eval_gen = torch.Generator().manual_seed(args.seed + 1)

# -----------------------------------------------------------------------------
# training loop
initial = estimate_loss(eval_gen)
print(f"step 0: train {initial['train']:.4f}, val {initial['val']:.4f} (ln V = {math.log(len(tokenizer)):.4f})")
model.train()
t_train = time.time()
cpu_train = time.process_time()
history = []
for step in range(args.steps):
    lr = get_lr(step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    x, y = get_batch("train", batch_gen)
    logits = model(input_ids=x).logits
    loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    history.append(loss.item())
    if step % log_every == 0 or step == args.steps - 1:
        elapsed = time.time() - t_train
        print(f"step {step:5d} | loss {loss.item():.4f} | lr {lr:.2e} | {elapsed:6.1f}s "
              f"({1000 * elapsed / (step + 1):.0f} ms/step)", flush=True)
train_seconds = time.time() - t_train
cpu_seconds = time.process_time() - cpu_train
final = estimate_loss(eval_gen)
first_loss = history[0]
last_loss = sum(history[-50:]) / len(history[-50:])
print(f"done: {args.steps} steps in {train_seconds:.1f}s wall ({cpu_seconds:.0f}s CPU); first-step loss {first_loss:.4f}, "
      f"mean of last 50 {last_loss:.4f}; eval train {final['train']:.4f}, val {final['val']:.4f}")


# -----------------------------------------------------------------------------
# save model, tokenizer and model card
def write_model_card(out_dir, folder_bytes):
    """Write README.md describing exactly how this folder was produced."""
    command = "HF_HUB_OFFLINE=1 python " + " ".join(shlex.quote(a) for a in sys.argv)
    card = f"""# tiny-lm

A tiny pretrained causal language model (Llama architecture, {n_params:,} parameters)
for lorascope's tests and demos: small enough to LoRA-fine-tune on a CPU in seconds, yet
actually pretrained, so losses and generations behave like a real (if very weak) model.
It was trained from scratch, offline, by `scripts/build_tiny_lm.py`. It is not useful for
anything beyond testing.

## How it was built

```
{command}
```

Python {sys.version.split()[0]}, torch {torch.__version__}, transformers {__import__('transformers').__version__},
tokenizers {__import__('tokenizers').__version__}; CPU, `torch.set_num_threads({num_threads})`, seed {args.seed}.

## Corpus

- {len(code_docs)} `*.py` files ({code_bytes / 1e6:.2f} MB) of the Python {sys.version.split()[0]} standard library
  (`sysconfig.get_paths()["stdlib"]`), excluding test folders, `site-packages`, `_sysconfigdata*` and files
  over {max_file_bytes // 1000} kB; the sorted file list was shuffled with the seed and read until {code_cap_bytes / 1e6:.0f} MB.
- {len(english_docs)} short paragraphs ({english_bytes / 1e6:.2f} MB) of simple generated English sentences
  ("The capital of France is Paris.", "The red cat sees the dog.", "Two plus three is five.", ...).
- Documents are joined with `<|endoftext|>`; {len(train_data):,} training tokens, {len(val_data):,} held-out tokens.

## Tokenizer

Byte-level BPE trained with `tokenizers` on the corpus above: {len(tokenizer)} tokens
(256 byte symbols + merges + `<|endoftext|>`). `<|endoftext|>` (id {eot_id}) is the bos, eos and pad token.
No special tokens are added automatically; any text round-trips exactly.

## Architecture

`LlamaForCausalLM`: hidden size {config.hidden_size}, {config.num_hidden_layers} layers,
{config.num_attention_heads} attention heads (head dim {config.hidden_size // config.num_attention_heads}),
{config.num_key_value_heads} key/value heads (GQA), MLP intermediate size {config.intermediate_size} (SwiGLU),
RoPE, RMSNorm, max positions {config.max_position_embeddings}, tied input/output embeddings,
vocab {config.vocab_size}. Linear layers per block: `q_proj`, `k_proj`, `v_proj`, `o_proj`,
`gate_proj`, `up_proj`, `down_proj`. Weights stored as fp32 safetensors; folder size {folder_bytes / 1e6:.2f} MB.

## Pretraining

{args.steps} AdamW steps (betas 0.9/0.95, weight decay {weight_decay} on matrices), batch {batch_size} x
{block_size} tokens, learning rate {learning_rate} with {warmup_steps} warmup steps and cosine decay to {min_lr},
gradient clipping {grad_clip}. Training took {train_seconds:.0f} s wall-clock ({cpu_seconds:.0f} s of CPU time
across the {num_threads} threads; the wall time depends on what else the machine was running).

| | train loss | val loss |
|---|---|---|
| before training (random init) | {initial['train']:.4f} | {initial['val']:.4f} |
| after {args.steps} steps | {final['train']:.4f} | {final['val']:.4f} |

First-step training loss {first_loss:.4f}; mean training loss over the last 50 steps {last_loss:.4f}
(ln {len(tokenizer)} = {math.log(len(tokenizer)):.4f}). Losses are mean token cross-entropy in nats,
estimated on {eval_batches} random batches per split.
"""
    (out_dir / "README.md").write_text(card, encoding="utf-8")


out_dir = Path(args.out)
out_dir.mkdir(parents=True, exist_ok=True)
model.generation_config.bos_token_id = eot_id
model.generation_config.eos_token_id = eot_id
model.generation_config.pad_token_id = eot_id
model.save_pretrained(out_dir, safe_serialization=True)
tokenizer.save_pretrained(out_dir)
folder_bytes = sum(p.stat().st_size for p in out_dir.iterdir() if p.is_file() and p.name != "README.md")
write_model_card(out_dir, folder_bytes)
print(f"saved to {out_dir} ({folder_bytes / 1e6:.2f} MB without README); total time {time.time() - t_start:.0f}s")
