"""Markdown table of scripts/studies/e2e_smollm2.sh results: mean (and range over seeds) per method.
  python3 scripts/studies/summarize_e2e.py runs/study-e2e/results.jsonl"""
import collections
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by = collections.OrderedDict()
for r in rows:
    by.setdefault(r["method"], []).append(r)
cols = ["bleu", "nist", "meteor", "rouge_l", "cider", "loss"]
print("| method | seeds | trainable | s/step | " + " | ".join(cols) + " |")
print("|---|---|---|---|" + "---|" * len(cols))
for method, rs in by.items():
    def cell(k, digits=4):
        vals = [r[k] for r in rs]
        mean = sum(vals) / len(vals)
        return f"{mean:.{digits}f}" + (f" ({min(vals):.{digits}f}-{max(vals):.{digits}f})" if len(vals) > 1 else "")
    print(f"| {method} | {len(rs)} | {rs[0]['trainable']:,} | {cell('s_per_step', 2)} | "
          + " | ".join(cell(k, 3) for k in cols) + " |")
