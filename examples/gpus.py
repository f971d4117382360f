#!/usr/bin/env parallux
# GPUs leased like cores: eight training commands with gpus=1 run one per GPU at a time, each told its GPU in
# CUDA_VISIBLE_DEVICES, and an evaluation asks for GPU 1 exactly. The runner's GPUs are those nvidia-smi lists
# (on a machine without GPUs, a request for one stops the config before anything runs; tests/integration/local/test_examples.py
# puts a fake nvidia-smi reporting 4 GPUs on the PATH).
from parallux import goal

gpu = goal.local(workspace=goal.args.get("workspace", "workspace/gpus"), max_jobs=8)
goal.setRunner(gpu)
print(f"{gpu.gpu_count()} GPUs, free: {gpu.available_gpus()}")

for index in range(8):
    goal.schd("echo training on GPU $CUDA_VISIBLE_DEVICES; sleep 0.2", name=f"train-{index}", gpus=1)
goal.schd("echo evaluating on GPU $CUDA_VISIBLE_DEVICES", name="eval", gpus=[1])

for result in goal.issue().sync():
    print(result.name, "GPU", ",".join(map(str, result.gpus)) or "-")  # "-" in a --dry-run: nothing leased
