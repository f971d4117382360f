#!/bin/sh
# bench/gpu_check.sh: are parallux's GPU leases isolated on a real multi-GPU host? (SPEC 18)
#
#   bench/gpu_check.sh [COMMANDS [SECONDS]]    run COMMANDS (8) commands with gpus=1, each holding its GPU
#                                              SECONDS (3) s, through parallux on this machine; then check
#   bench/gpu_check.sh --check DIR             check what an earlier run recorded in DIR again
#
# Each command records when it started and ended, CUDA_VISIBLE_DEVICES, `nvidia-smi -L` (every GPU, as
# nvidia-smi lists them whatever CUDA_VISIBLE_DEVICES says), the UUID of the GPU it was given (nvidia-smi
# --query-gpu=uuid -i <its index>) and, where Python has torch, how many GPUs CUDA itself shows it. The check
# fails (exit 1) when a command was given no GPU or more than one, an index nvidia-smi does not list, when
# CUDA showed it other than one GPU, or when two commands held one GPU (by UUID) at the same time. Exit 0: all
# isolated; 2: it could not run. It says how many GPUs were busy at once at the most: with 2 GPUs or more and
# only 1, the run proved little (too few commands, or too short: raise SECONDS).
#
# The environment: PARALLUX (default `parallux`) runs parallux; GPU_CHECK_RUNNER (default empty) is more of
# the runner's options, e.g. "core_pool=range(0, 32)" to check the GPUs' cores come from their NUMA node too.
# It needs a machine with GPUs: tests/integration/local/test_gpu_check.py runs it against a fake nvidia-smi.
set -eu

check() {
    python3 - "$1" <<'PY'
import itertools, os, sys

directory = sys.argv[1]
rows, problems = [], []
for root, _, files in os.walk(os.path.join(directory, "ws")):
    if "record.txt" in files:
        with open(os.path.join(root, "record.txt")) as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        rows.append((os.path.basename(root), fields))
if not rows:
    print("gpu_check: no command recorded anything in %s" % directory)
    sys.exit(2)
listed = {}
for name, fields in rows:
    visible = fields.get("visible", "")
    gpus = [g for g in visible.split(",") if g]
    if len(gpus) != 1:
        problems.append("%s was given %r, not one GPU" % (name, visible))
        continue
    if not fields.get("uuid"):
        problems.append("%s: nvidia-smi knows no GPU %s (its list: %s)" % (name, gpus[0], fields.get("list")))
        continue
    if fields.get("cuda") not in (None, "", "1"):
        problems.append("%s: CUDA showed it %s GPUs" % (name, fields["cuda"]))
    listed[name] = (float(fields["start"]), float(fields["end"]), fields["uuid"], gpus[0])
for (a, (s1, e1, u1, g1)), (b, (s2, e2, u2, g2)) in itertools.combinations(sorted(listed.items()), 2):
    if u1 == u2 and s1 < e2 and s2 < e1:
        problems.append("%s and %s held GPU %s (%s) at the same time" % (a, b, g1, u1))
events = sorted([(s, 1) for s, _, _, _ in listed.values()] + [(e, -1) for _, e, _, _ in listed.values()])
busy = peak = 0
for _, delta in events:
    busy += delta
    peak = max(peak, busy)
print("gpu_check: %d commands on %d GPUs (%s), at most %d at once" % (
    len(rows), len({u for _, _, u, _ in listed.values()}),
    ", ".join(sorted({g for _, _, _, g in listed.values()})), peak))
for problem in problems:
    print("gpu_check: FAILED: " + problem)
if not problems:
    print("gpu_check: ok: no GPU ran two commands at once")
sys.exit(1 if problems else 0)
PY
}

if [ "${1:-}" = "--check" ]; then
    check "$2"
    exit $?
fi

count=${1:-8}
seconds=${2:-3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
cat > "$dir/config.py" <<EOF
from parallux import goal
runner = goal.local(workspace="$dir/ws", max_jobs=$count, ${GPU_CHECK_RUNNER:-})
print("gpu_check: runner offers", runner.gpu_count(), "GPUs:", runner.available_gpus(), flush=True)
command = '''
{
  echo "start=\$(date +%s.%N)"
  echo "visible=\$CUDA_VISIBLE_DEVICES"
  echo "cores=\${PARALLUX_CORES:-}"
  echo "list=\$(nvidia-smi -L | paste -sd ';' -)"
  echo "uuid=\$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i "\$CUDA_VISIBLE_DEVICES" 2>/dev/null)"
  echo "cuda=\$(python3 -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null)"
  sleep $seconds
  echo "end=\$(date +%s.%N)"
} > record.txt
'''
for index in range($count):
    goal.schd(command, name=f"gpu{index}", gpus=1, work_relpath=f"gpu{index}")
goal.issue().sync()
EOF
echo "gpu_check: $count commands of $seconds s with gpus=1; records in $dir"
status=0
(cd "$dir" && ${PARALLUX:-parallux} config.py) || status=$?
if [ "$status" -ne 0 ]; then
    echo "gpu_check: parallux exited $status"
    exit 2
fi
check "$dir"
