"""Build Hugging Face ``CLIPTokenizer`` files from OpenAI CLIP's BPE merges file.

The merges file ``bpe_simple_vocab_16e6.txt.gz`` ships inside the ``open_clip_torch`` wheel (MIT licence). This
script turns it into the ``vocab.json`` + ``merges.txt`` pair that ``transformers.CLIPTokenizer`` reads, with the same
49,408-entry vocabulary as OpenAI's CLIP (and hence Stable Diffusion 1.x):
256 byte symbols, the same 256 with the end-of-word marker, 48,894 merges, then ``<|startoftext|>`` and
``<|endoftext|>``.

Usage::

    python tools/build_clip_tokenizer.py path/to/bpe_simple_vocab_16e6.txt.gz src/diffinv/assets/clip_tokenizer
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

N_MERGES = 49152 - 256 - 2  # CLIP keeps the first 48,894 merges of the file


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable-unicode map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bpe_file", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()

    lines = gzip.open(args.bpe_file, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "vocab.json").write_text(
        json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
    )
    (args.out_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    config = {
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
        "tokenizer_class": "CLIPTokenizer",
    }
    (args.out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (args.out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {args.out_dir}")


if __name__ == "__main__":
    main()
