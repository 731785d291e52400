#!/usr/bin/env bash
# The README's first command: from a clean clone to a trained network. Installs the npm packages, builds WPC,
# installs Mesa's lavapipe when Dawn finds no WebGPU adapter (as root, or through sudo), finds MNIST or downloads
# it, then trains JPC's library-paper network on it with the paper's settings and prints the JSON summary.
#
# Usage: bash scripts/quickstart.sh [wpc train flags]     e.g. --dataset fashion-mnist, --out run.json
# Needs Node >= 20.19 and npm. Idempotent: a second run reinstalls nothing that is there and trains again.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
fail() {
  printf 'quickstart: %s\n' "$*" >&2
  exit 1
}

# 1. Node >= 20.19 (package.json engines; Debian 12 ships Node 18).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  fail "Node.js >= 20.19 and npm are needed and were not found. On Debian/Ubuntu: https://github.com/nodesource/distributions (Node 20 or 22); elsewhere: https://nodejs.org or nvm."
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  fail "Node.js >= 20.19 is needed, this is $(node --version). On Debian 12 (which ships 18): https://github.com/nodesource/distributions; elsewhere: https://nodejs.org or nvm."
fi
say "node $(node --version), npm $(npm --version)"

# 2. The npm packages, exactly as locked (skipped when node_modules already matches the lock file).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing the npm packages (npm ci)"
  npm ci --no-audit --no-fund >&2 # stdout is for the JSON summary alone
fi

# 3. The build (dist/: the Node and browser entries, the CLI, the type declarations).
say "building"
npm run -s build >&2

# 4. A WebGPU adapter. Without a GPU (or its Vulkan driver) Dawn finds none: on Debian 12, Mesa's lavapipe
#    runs WebGPU on the CPU.
if ! info=$(node dist/cli.js info 2>/dev/null); then
  say "no WebGPU adapter: installing Mesa's lavapipe (scripts/install-lavapipe.sh)"
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install-lavapipe.sh
  elif command -v sudo >/dev/null 2>&1; then
    sudo bash scripts/install-lavapipe.sh
  else
    fail "no WebGPU adapter, and installing lavapipe needs root: run 'bash scripts/install-lavapipe.sh' as root, then this script again (or install your GPU's Vulkan driver)."
  fi
  info=$(node dist/cli.js info 2>/dev/null) || fail "still no WebGPU adapter after installing lavapipe; 'node dist/cli.js info' says why."
fi
say "adapter: $(printf '%s' "$info" | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).adapter.description))')"

# 5. The data: --data-dir, WPC_DATA_DIR, the per-user cache, ../shared/datasets (wpc data path --help);
#    downloaded into the per-user cache, checksums verified, when none of them has it.
dataset=mnist
data_args=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --dataset) dataset="${args[i + 1]:-}" ;;
    --dataset=*) dataset="${args[i]#--dataset=}" ;;
    --data-dir) data_args=(--data-dir "${args[i + 1]:-}") ;;
    --data-dir=*) data_args=("${args[i]}") ;;
  esac
done
if found=$(node dist/cli.js data path "$dataset" ${data_args[@]+"${data_args[@]}"} 2>/dev/null); then
  say "$dataset: $found"
elif [ ${#data_args[@]} -gt 0 ]; then
  node dist/cli.js data path "$dataset" ${data_args[@]+"${data_args[@]}"} >/dev/null # says what is wrong with the folder named
  exit 1
else
  say "$dataset not found locally: downloading it"
  node dist/cli.js data download "$dataset" >/dev/null
fi

# 6. JPC's library-paper network, with the paper's settings written out (they are also wpc train's defaults):
#    3 hidden layers of 300 tanh units, no bias, Heun + PID (rtol = atol = 1e-3) to T = 20 from dt = 0.05,
#    Adam 1e-3, batch 64, one epoch. The JSON summary is the last line on stdout.
say "training (one epoch of MNIST: about a minute on a 2-core machine with lavapipe, seconds on a GPU)"
exec node dist/cli.js train --dataset mnist --hidden 3 --width 300 --act tanh --solver heun --controller pid \
  --rtol 1e-3 --atol 1e-3 --max-t1 20 --dt 0.05 --batch 64 --lr 1e-3 --epochs 1 --test-every 100 --seed 0 "$@"
