#!/usr/bin/env bash
# WPC's benchmarks, and JPC beside them, on a lent GPU machine (the `device` tool), from the kit that
# `node scripts/device-kit.mjs build` made here (DEVELOPERS.md, "On a lent GPU"). Run from the repository root:
#
#   run(command: "bash bench/device/run.sh tiles matmul inference profile", carry: [".device-kit", ".bench-build", ".gl"])
#
# Arguments: the benchmarks to run (default: tiles matmul inference solvers profile scaling fused peers jpc; `jpc` is
# JPC's own timing, bench/peers/pc_step_jpc.py). Everything lands in $OUT/results.tgz (raw JSON per benchmark,
# its stderr, the adapter and the GPU; rewritten after each benchmark), for `node scripts/device-kit.mjs report <dir> <tag>` here. Each benchmark
# gets WPC_DEVICE_TIMEOUT seconds (default 240; `jpc` WPC_DEVICE_JPC_TIMEOUT, default 480, over the depths in
# WPC_JPC_DEPTHS, default 3,5,10); one that fails or times out leaves its log and the rest go on.
set -uo pipefail
cd "$(dirname "$0")/../.."
KIT=.device-kit
OUT=${OUT:-$PWD/.device-out}
R=$(mktemp -d)
note() { echo "[device] $*" | tee -a "$R/run.log"; }

# The Vulkan loader (the device README's .gl recipe) and NVIDIA's ICD, for Dawn.
if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$ICD" ] && export VK_DRIVER_FILES=$ICD
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg}
mkdir -p "$XDG_RUNTIME_DIR"

# Node and dawn.node from the kit (the GPU image has neither); the kit's node_modules serves `import 'webgpu'`.
if ! command -v node >/dev/null 2>&1; then
  xz -dc "$KIT/node.xz" >/tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
fi
DAWN=$KIT/node_modules/webgpu/dist/linux-x64/dawn.node
[ -f "$DAWN" ] || xz -dk "$DAWN.xz"
[ -e node_modules ] || ln -s "$KIT/node_modules" node_modules
mkdir -p "$OUT"
note "node $(node --version), $(nproc) CPUs"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv >"$R/gpu.csv" 2>&1 || note "no nvidia-smi"
node --input-type=module -e "
import { create } from 'webgpu';
const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
const i = a?.info ?? {};
console.log(JSON.stringify({ vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, features: a ? [...a.features] : [] }));
" >"$R/adapter.json" 2>"$R/adapter.log" || note "adapter probe failed (see adapter.log)"
note "adapter: $(cat "$R/adapter.json")"
node -e "const os=require('os');console.log(JSON.stringify({machine:os.cpus().length+' × '+(os.cpus()[0]||{}).model+', '+(os.totalmem()/2**30).toFixed(0)+' GiB, '+os.platform()+' '+os.release()+', Node '+process.version,date:new Date().toISOString().slice(0,10)}))" >"$R/machine.json"

BENCHES=${*:-tiles matmul inference solvers profile scaling fused peers jpc}
for name in $BENCHES; do
  start=$(date +%s)
  if [ "$name" = jpc ]; then
    # JAX compiles 15 programs (3 depths × 5 settings) first: more time than a WPC benchmark.
    PYTHONPATH=$KIT/jpc${PYTHONPATH:+:$PYTHONPATH} timeout "${WPC_DEVICE_JPC_TIMEOUT:-480}" \
      python3 bench/peers/pc_step_jpc.py "${WPC_JPC_DEPTHS:-3,5,10}" >"$R/jpc.json" 2>"$R/jpc.log"
  else
    timeout "${WPC_DEVICE_TIMEOUT:-240}" node ".bench-build/$name.mjs" >"$R/$name.json" 2>"$R/$name.log"
  fi
  note "$name: exit $? in $(($(date +%s) - start)) s"
  # After every benchmark: a call cut off by the device tool's limit still brings back what ran.
  tar czf "$OUT/results.tgz.part" -C "$R" . && mv "$OUT/results.tgz.part" "$OUT/results.tgz"
done
