#!/usr/bin/env bash
# Builds the seed corpora in fuzz/corpus/<target>/ (git-ignored) from the repository's fixtures,
# the public corpus (../shared/corpus beside the checkout, or $ABORTAUDIT_CORPUS) when present,
# and the tiny hand-written seeds in fuzz/seeds/. Seeds are at most 64 KiB (run.sh's -max_len):
# JSON Lines fixtures are split into lines and small groups of lines.
set -euo pipefail
cd "$(dirname "$0")"
root=..
shared=${ABORTAUDIT_CORPUS:-}
for candidate in "$root/../shared/corpus" /tmp/shared/corpus; do
  if [ -z "$shared" ] && [ -d "$candidate" ]; then shared=$candidate; fi
done
if [ -z "$shared" ] || [ ! -d "$shared" ]; then
  echo "seeds: no public corpus (../shared/corpus); seeding from the fixtures alone" >&2
  shared=
fi

python3 - "$root" "$shared" <<'PY'
import gzip, hashlib, json, os, pathlib, shutil, struct, subprocess, sys

root = pathlib.Path(sys.argv[1])
shared = pathlib.Path(sys.argv[2]) if sys.argv[2] else None
out = pathlib.Path("corpus")
MAX = 64 * 1024
counts = {}

def seed(target, data):
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) > MAX:
        return
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)
    counts[target] = counts.get(target, 0) + 1

def files(base, pattern):
    return sorted(base.glob(pattern)) if base and base.exists() else []

fixture_dirs = sorted(p for p in root.glob("fixtures/scenarios*") if p.is_dir())
jsonl = [f for d in fixture_dirs for f in files(d, "traces/*.jsonl")]
aborts = [f for d in fixture_dirs for f in files(d, "aborts.jsonl")]
corpus_otlp = files(shared, "traces/otlp-json*/*")

# OTLP/JSON Lines: each line, runs of lines, small whole files; documents pretty-printed.
groups = []
for f in jsonl:
    lines = f.read_bytes().splitlines(keepends=True)
    for i, line in enumerate(lines):
        groups.append(line)
        if i % 3 == 0:
            groups.append(b"".join(lines[i:i + 3]))
    groups.append(f.read_bytes())
for g in groups:
    for t in ("otlp_json", "otlp_json_two_pass", "two_pass_diff"):
        seed(t, g)
for g in groups[::7]:
    seed("otlp_json", json.dumps(json.loads(g.splitlines()[0]), indent=2))
    seed("otlp_json", gzip.compress(g, mtime=0))
    for t in ("otlp_json_two_pass", "two_pass_diff"):
        seed(t, b"\x01" + g)
        seed(t, b"\x02" + g)
for f in corpus_otlp:
    for t in ("otlp_json", "otlp_json_two_pass", "two_pass_diff"):
        seed(t, f.read_bytes())
# Traces with the abort log of the same harness run.
for a in aborts:
    log = a.read_bytes()
    for f in files(a.parent, "traces/*.jsonl"):
        lines = f.read_bytes().splitlines(keepends=True)
        for i in range(0, len(lines), 2):
            for t in ("otlp_json_two_pass", "two_pass_diff"):
                seed(t, b"".join(lines[i:i + 2]) + b"--aborts--\n" + log)
    seed("abort_log", log)
    for line in log.splitlines(keepends=True):
        seed("abort_log", line)

# OTLP/protobuf: the fixtures' framed streams, a few frames at a time, and each message alone.
def frames(data):
    at, out_ = 0, []
    while at + 4 <= len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        out_.append(data[at + 4:at + 4 + n])
        at += 4 + n
    return out_
def framed(msgs):
    return b"".join(struct.pack(">I", len(m)) + m for m in msgs)
zstd = shutil.which("zstd")
for d in fixture_dirs:
    for f in files(d, "traces-protobuf/*.binpb"):
        msgs = frames(f.read_bytes())
        for i, m in enumerate(msgs):
            seed("otlp_proto", m)
            seed("otlp_proto_framed", framed(msgs[i:i + 3]))
            if zstd and i < 3:
                z = subprocess.run([zstd, "-q", "-c"], input=m, capture_output=True, check=True).stdout
                seed("otlp_proto_framed", framed([z]))
        seed("otlp_proto_framed", framed(msgs))
for f in files(shared, "traces/otlp-protobuf/*"):
    seed("otlp_proto", f.read_bytes())
    seed("otlp_proto_framed", framed([f.read_bytes()]))
    seed("otlp_proto", gzip.compress(f.read_bytes(), mtime=0))
for f in corpus_otlp[:2]:
    seed("otlp_proto_framed", framed([f.read_bytes()]))

for f in files(shared, "traces/jaeger-json/*"):
    seed("jaeger", f.read_bytes())
    seed("jaeger", json.dumps(json.loads(f.read_bytes())) + "\n")
for f in files(shared, "traces/zipkin-v2/*"):
    seed("zipkin", f.read_bytes())
    value = json.loads(f.read_bytes())
    if isinstance(value, list):
        seed("zipkin", "\n".join(json.dumps([s]) for s in value[:8]) + "\n")

events = [f for d in fixture_dirs for f in files(d, "events/*.jsonl")]
for f in events:
    lines = f.read_bytes().splitlines(keepends=True)
    for i in range(0, len(lines), 4):
        seed("vendor_events", b"".join(lines[i:i + 4]))
    seed("vendor_events", f.read_bytes())
for f in files(shared, "events/*/*"):
    target = "temporal_history" if f.parent.name == "temporal" else "vendor_events"
    seed(target, f.read_bytes())
    if target == "temporal_history":
        history = json.loads(f.read_bytes())
        seed(target, "\n".join(json.dumps(e) for e in history.get("events", [])[:30]) + "\n")
        seed(target, json.dumps({"events": history.get("events", [])[:20]}))

# The hand-written seeds, and the reproducers of what the long runs found (fuzz/README.md).
for d in sorted(pathlib.Path("seeds").iterdir()):
    for f in sorted(d.iterdir()):
        seed(d.name, f.read_bytes())
        if d.name == "two_pass_diff":
            seed("otlp_json_two_pass", f.read_bytes())
# The CLI's own outputs, when a build of it is at hand (CI's tests leave one).
for exe in (root / "target/debug/abortaudit", root / "target/release/abortaudit"):
    if exe.exists():
        rules = subprocess.run([exe, "rules"], capture_output=True, check=True).stdout
        seed("rules_toml", rules)
        scan = subprocess.run(
            [exe, "scan", root / "fixtures/scenarios/traces", "--events",
             root / "fixtures/scenarios/events/stripe.jsonl", "--format", "json", "--exit-zero"],
            capture_output=True, check=True).stdout
        seed("baseline", scan)
        break
seed("renderers", b"\x00")
print("seeds: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
PY
