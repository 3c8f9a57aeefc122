"""Summarises `ncu --csv --metrics gpu__time_duration.sum` output: total time, launches and mean per
kernel name, largest first. Usage: python3 bench/ncu_kernel_times.py NCU.csv [TOP]"""
import collections
import csv
import sys

# The profiled program's own stdout (JSON lines, ==PROF== lines) shares the file: the table starts
# at ncu's header row.
rows = list(csv.reader(open(sys.argv[1])))
start = next((i for i, r in enumerate(rows) if "Kernel Name" in r and "Metric Value" in r), None)
if start is None:
    sys.exit(f"{sys.argv[1]}: no ncu rows (see ncu's stderr)")
head, rows = rows[start], [r for r in rows[start + 1:] if len(r) == len(rows[start])]
ki, vi, ui = head.index("Kernel Name"), head.index("Metric Value"), head.index("Metric Unit")
total = collections.defaultdict(float)
count = collections.Counter()
for r in rows:
    try:
        v = float(r[vi].replace(",", ""))
    except ValueError:
        continue
    scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1, "usecond": 1, "ms": 1e3, "msecond": 1e3}.get(r[ui].strip())
    if scale is None:
        sys.exit(f"unknown time unit {r[ui]!r}")
    total[r[ki][:70]] += v * scale
    count[r[ki][:70]] += 1
print("kernels profiled:", sum(count.values()), " total us:", round(sum(total.values()), 1))
for k, v in sorted(total.items(), key=lambda x: -x[1])[: int(sys.argv[2]) if len(sys.argv) > 2 else 25]:
    print(f"{v:10.1f} us  {count[k]:5d} x  {v / count[k]:8.2f} us  {k}")
