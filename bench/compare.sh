#!/usr/bin/env bash
# onde vs PyTorch on the reference workloads, side by side in one run.
#
#   bench/compare.sh W6 W7 [--threads N] [--rounds R] [--isa L]   (default: W6 W7, 1 thread, 2 rounds, best ISA)
#
# What it runs, in order:
#   1. onde: `cargo run --release -q -p onde-cli -- bench W6 W7 --threads N` (builds if
#      needed, then a few seconds; first, so a broken build or a workload onde lacks
#      fails before the slow part); `--isa baseline|avx2|avx512` caps onde's kernels
#      (e.g. the AVX2 path on an AVX-512 machine); the table names the level onde used;
#      the same `--isa` caps PyTorch too, through its own switches
#      (ATEN_CPU_CAPABILITY for ATen's kernels, MKL_ENABLE_INSTRUCTIONS for MKL's GEMMs,
#      ONEDNN_MAX_CPU_ISA for oneDNN's, TORCHINDUCTOR_CPP_MARCH for the C++ that
#      torch.compile generates, else -march=native), so both sides run as on a CPU of that level
#      (an AVX-512 machine standing in for an AVX2-only one); the table names the level
#      PyTorch reported (`torch.backends.cpu.get_cpu_capability()`). Below avx512, onde
#      is built apart (target/isa-L) with MMTEST_FEATURE limiting matrixmultiply to the
#      level (its one switch, read at compile time; see codegen/src/isa.rs) and without
#      the default feature `gemm-avx512`, so `gemm` has its AVX2 kernels only and runs
#      the f32 products as on an AVX2-only CPU (codegen/src/native/matmul/wide.rs): a
#      first capped run builds for a few minutes;
#   2. PyTorch: `$VENV/bin/python ../shared/bench/bench.py --only W6,W7 --threads N
#      --modes eager,compile --out <tmp>`; one subprocess per (workload, mode), each
#      timed for >= 1 s after warm-up. torch.compile compiles cold every time: ~10 s of
#      inductor start-up plus ~10 s per compiled function, so W6 + W7 take 1-2 min;
#   3. steps 1 and 2 are repeated R times (default 2), alternating, and each side keeps,
#      per workload/phase/mode, its run with the lowest median: this shared machine has
#      slow and fast phases lasting minutes, and a single onde-then-PyTorch pass can put
#      the two sides in different phases (seen: W1 inference 0.88x in one pass, 1.5x in
#      the next). Both sides get the same best-of-R treatment;
#   4. both sides print their raw results on stderr;
#   5. on stdout, a table joining both (ratios of medians, and of p10s, which the
#      machine's one-sided slowdowns disturb less): per workload and phase, median ms (and onde's
#      p10-p90) of onde, torch eager and torch compile, the ratios torch/onde (> 1: onde is faster), onde's compile time
#      next to torch.compile's first call; for W7 the GFLOP/s of each and onde as a
#      percentage of torch eager. The load average is printed before and after: numbers
#      taken while the machine is busy (e.g. cargo builds) are noisy. Then the peak
#      resident memory of each side per workload (onde runs one process per workload;
#      PyTorch one per workload and mode, ~700 MB of it the import of torch itself).
#
# PyTorch venv: $TORCH_VENV if set, else .torch-venv in the repo root, else
# /work/torch-venv; if none exists, `../shared/bench/setup-torch.sh .torch-venv`
# installs one in the repo root (about 1.5 min and 5.4 GB).
#
# The shared directory is the repo's sibling: <script dir>/../../shared. Exits non-zero
# if any step fails or a workload is missing from either side.
set -euo pipefail

usage() {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=$(cd "$here/../../shared" 2>/dev/null && pwd) || {
  echo "compare.sh: shared directory not found at $here/../../shared" >&2
  exit 1
}

threads=1
rounds=2
isa_args=()
workloads=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) [ $# -ge 2 ] || usage 2; threads=$2; shift 2 ;;
    --threads=*) threads=${1#--threads=}; shift ;;
    --rounds) [ $# -ge 2 ] || usage 2; rounds=$2; shift 2 ;;
    --rounds=*) rounds=${1#--rounds=}; shift ;;
    --isa) [ $# -ge 2 ] || usage 2; isa_args=(--isa "$2"); shift 2 ;;
    --isa=*) isa_args=(--isa "${1#--isa=}"); shift ;;
    -h|--help) usage 0 ;;
    -*) echo "compare.sh: unknown option $1" >&2; usage 2 ;;
    *) workloads+=("$1"); shift ;;
  esac
done
[ ${#workloads[@]} -gt 0 ] || workloads=(W6 W7)
case "$threads" in
  ''|*[!0-9]*|0) echo "compare.sh: --threads wants a positive integer, got '$threads'" >&2; exit 2 ;;
esac
case "$rounds" in
  ''|*[!0-9]*) echo "compare.sh: --rounds wants a positive integer, got '$rounds'" >&2; exit 2 ;;
esac
[ "$rounds" -gt 0 ] || { echo "compare.sh: --rounds wants a positive integer, got '$rounds'" >&2; exit 2; }
[ "$threads" -gt 0 ] || { echo "compare.sh: --threads wants a positive integer, got '$threads'" >&2; exit 2; }
only=$(IFS=,; echo "${workloads[*]}")

# --- PyTorch venv
if [ -n "${TORCH_VENV:-}" ]; then
  venv=$TORCH_VENV
  [ -x "$venv/bin/python" ] || { echo "compare.sh: TORCH_VENV=$venv has no bin/python" >&2; exit 1; }
elif [ -x "$root/.torch-venv/bin/python" ]; then
  venv=$root/.torch-venv
elif [ -x /work/torch-venv/bin/python ]; then
  venv=/work/torch-venv
else
  echo "compare.sh: no PyTorch venv found; installing one in $root/.torch-venv" >&2
  (cd "$root" && "$shared/bench/setup-torch.sh" .torch-venv)
  venv=$root/.torch-venv
fi
py=$venv/bin/python

# --- The ISA cap (see step 1): PyTorch's own switches, set for its processes only, and
# onde's library GEMM limited at build time (a build of its own).
torch_env=()
onde_env=()
onde_features=()
isa_level=${isa_args[1]:-}
case "${isa_level,,}" in
  '' | avx512) ;;
  avx2)
    torch_env=(ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 TORCHINDUCTOR_CPP_MARCH=x86-64-v3)
    onde_env=(MMTEST_FEATURE=fma,avx2,avx,sse2 CARGO_TARGET_DIR="$root/target/isa-avx2")
    onde_features=(--no-default-features) ;;
  baseline)
    torch_env=(ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 ONEDNN_MAX_CPU_ISA=SSE41 TORCHINDUCTOR_CPP_MARCH=x86-64-v2)
    onde_env=(MMTEST_FEATURE=sse2 CARGO_TARGET_DIR="$root/target/isa-baseline")
    onde_features=(--no-default-features) ;;
  *) echo "compare.sh: --isa wants baseline, avx2 or avx512, got '$isa_level'" >&2; exit 2 ;;
esac
torch_isa=$(env "${torch_env[@]}" "$py" -c 'import torch; print(torch.backends.cpu.get_cpu_capability())' 2>/dev/null || echo "?")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/onde-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

load_before=$(uptime)

for round in $(seq 1 "$rounds"); do
  # --- 1. onde (builds if needed)
  # One process per workload, so that each JSON line's peak RSS is that workload's.
  echo "== round $round/$rounds, onde: cargo run --release -q -p onde-cli ${onde_features[*]} -- bench WL --threads $threads ${isa_args[*]}, WL in ${workloads[*]}" >&2
  : >"$tmp/onde.$round.jsonl"
  for wl in "${workloads[@]}"; do
    (cd "$root" && env "${onde_env[@]}" cargo run --release -q -p onde-cli "${onde_features[@]}" -- bench "$wl" --threads "$threads" "${isa_args[@]}") \
      >>"$tmp/onde.$round.jsonl"
  done
  cat "$tmp/onde.$round.jsonl" >&2

  # --- 2. PyTorch
  echo "== round $round/$rounds, PyTorch ($py, capability $torch_isa${torch_env[*]:+: ${torch_env[*]}}): $only, eager+compile, $threads thread(s); 1-2 min (cold torch.compile)" >&2
  if ! (cd "$root" && env "${torch_env[@]}" "$py" "$shared/bench/bench.py" --only "$only" --threads "$threads" \
          --modes eager,compile --out "$tmp/torch.$round.json") >"$tmp/torch.log" 2>&1; then
    cat "$tmp/torch.log" >&2
    echo "compare.sh: bench.py failed" >&2
    exit 1
  fi
  grep '^\[' "$tmp/torch.log" >&2 || true
done

load_after=$(uptime)

# --- 3. join and print (each side: its best round per workload/phase/mode)
"$py" - "$tmp" "$rounds" "$threads" "$only" "$load_before" "$load_after" "$torch_isa" <<'PY'
import json
import sys

tmp, rounds, threads, only, load_before, load_after, torch_isa = sys.argv[1:8]
rounds, threads = int(rounds), int(threads)
wanted = only.split(",")


def keep_best(table, key, r):
    # The run with the lowest median; its p10 is replaced by the lowest p10 of any
    # round (the p10 columns compare each side's best p10).
    best = table.get(key)
    p10 = min(r["p10_ms"], best["p10_ms"]) if best else r["p10_ms"]
    if best is None or r["median_ms"] < best["median_ms"]:
        table[key] = dict(r)
    table[key]["p10_ms"] = p10


meta = {}
torch = {}
errors = []
onde = {}
for k in range(1, rounds + 1):
    torch_doc = json.load(open(f"{tmp}/torch.{k}.json"))
    meta = torch_doc.get("meta", meta)
    for r in torch_doc["results"]:
        if r.get("phase") == "error":
            # Only an error if no round produced the result (reported as missing).
            continue
        if r["threads"] == threads:
            keep_best(torch, (r["workload"], r["phase"], r["mode"]), r)
    for line in open(f"{tmp}/onde.{k}.jsonl"):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            keep_best(onde, (r["workload"], r["phase"]), r)


def ms(v):
    return "-" if v is None else (f"{v:.1f}" if v >= 100 else f"{v:.3f}")


def spread(r):
    return "-" if r is None else f"{ms(r['p10_ms'])}-{ms(r['p90_ms'])}"


def ratio(t, o):
    return "-" if t is None or o is None else f"{t / o:.2f}x"


phases = [("train", "fwd+bwd"), ("infer", "fwd")]
isas = sorted({r.get("isa", "?") for r in onde.values()})
libs = sorted({r.get("library_gemm_isa", "?") for r in onde.values()})
print(f"\nonde (ISA level {', '.join(isas)}, library GEMM up to {', '.join(libs)}) vs torch {meta.get('torch', '?')} (CPU capability {torch_isa}) on {meta.get('cpu', '?')}, {threads} thread(s); "
      f"median ms, each side's best of {rounds} alternating round(s); "
      "ratio = torch/onde (> 1: onde faster)")
head = (f"{'workload':<9}{'phase':<8}{'onde':>9}{'onde p10-p90':>15}{'eager':>9}{'compile':>9}"
        f"{'eager/onde':>12}{'comp/onde':>11}{'p10 e/o':>9}{'p10 c/o':>9}"
        f"{'onde compile':>14}{'torch.compile 1st call':>24}")
print(head)
print("-" * len(head))
rows = 0
for wl in wanted:
    for phase, label in phases:
        o = onde.get((wl, phase))
        e = torch.get((wl, phase, "eager"))
        c = torch.get((wl, phase, "compile"))
        if o is None and e is None and c is None:
            continue
        if o is None:
            errors.append(f"onde {wl} {phase}: missing")
        if e is None or c is None:
            errors.append(f"torch {wl} {phase}: missing a mode")
        rows += 1
        om = o and o["median_ms"]
        em = e and e["median_ms"]
        cm = c and c["median_ms"]
        oc = "-" if o is None else f"{o['compile_ms']:.3g} ms"
        cf = "-" if c is None else f"{c['first_call_s']:.1f} s"
        op, ep, cp = (o and o["p10_ms"]), (e and e["p10_ms"]), (c and c["p10_ms"])
        print(f"{wl:<9}{label:<8}{ms(om):>9}{spread(o):>15}{ms(em):>9}{ms(cm):>9}"
              f"{ratio(em, om):>12}{ratio(cm, om):>11}{ratio(ep, op):>9}{ratio(cp, op):>9}"
              f"{oc:>14}{cf:>24}")
if rows == 0:
    errors.append("no results")

if "W7" in wanted:
    o = onde.get(("W7", "infer"))
    e = torch.get(("W7", "infer", "eager"))
    c = torch.get(("W7", "infer", "compile"))
    def gf(r):
        return None if r is None else r.get("gflops")
    og, eg, cg = gf(o), gf(e), gf(c)
    f = lambda v: "-" if v is None else f"{v:.1f}"
    print(f"\nW7 GEMM 1024^3 GFLOP/s: onde {f(og)}, torch eager {f(eg)}, torch compile {f(cg)}"
          + (f"; onde = {100 * og / eg:.0f}% of torch eager" if og and eg else ""))

# Peak memory: each side's process maximum resident set (onde: one process per
# workload; PyTorch: one per workload and mode, whose import alone takes 'import').
print("\npeak RSS MB (process maxrss, max over phases and rounds):")
print(f"{'workload':<9}{'onde':>8}{'eager':>8}{'compile':>9}{'torch import':>14}")
for wl in wanted:
    def peak(rs):
        v = [r.get("peak_rss_mb") for r in rs if r is not None and r.get("peak_rss_mb")]
        return f"{max(v):.0f}" if v else "-"
    os_ = [onde.get((wl, p)) for p, _ in phases]
    es = [torch.get((wl, p, "eager")) for p, _ in phases]
    cs = [torch.get((wl, p, "compile")) for p, _ in phases]
    imp = [r.get("rss_after_import_mb") for r in es + cs if r is not None and r.get("rss_after_import_mb")]
    print(f"{wl:<9}{peak(os_):>8}{peak(es):>8}{peak(cs):>9}{(f'{min(imp):.0f}' if imp else '-'):>14}")

print(f"\nload before: {load_before.strip()}")
print(f"load after:  {load_after.strip()}")
if errors:
    print("\ncompare.sh: " + "; ".join(errors), file=sys.stderr)
    sys.exit(1)
PY
