#!/usr/bin/env bash
# weft's benchmark scenarios. Each builds weft (release), brings up a fresh network
# in benches/work/<scenario>/, runs `weft bench`, writes
# benches/results/<scenario>.{json,html} and stops the network.
#
#   benches/run.sh rust-basic   # submit, built-in Rust basic, 2-of-2 endorsement
#   benches/run.sh node-ccaas   # submit, fabric-contract-api chaincode as a service
#   benches/run.sh evaluate     # evaluate only, built-in Rust basic
#   benches/run.sh all
#
# DURATION (default 20s) and CONCURRENCY (default 1024) tune the runs; extra
# arguments go to `weft bench`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scenario=${1:?usage: benches/run.sh rust-basic|node-ccaas|evaluate|all [weft bench arguments...]}
shift
duration=${DURATION:-20s}
concurrency=${CONCURRENCY:-1024}

say() { printf 'bench: %s\n' "$*" >&2; }

# Whatever is started is stopped on exit, success or not.
cleanup=()
trap 'for c in "${cleanup[@]}"; do eval "$c" || true; done' EXIT

say "building weft (release)"
cargo build --release -j2 -p weft --manifest-path "$root/Cargo.toml" >&2
weft=$root/target/release/weft
mkdir -p "$root/benches/results" "$root/benches/work"

# run <scenario> <spec> <bench mode> [args...]
run() {
  local name=$1 spec=$2 mode=$3
  shift 3
  local dir=$root/benches/work/$name
  # A fresh network each run: a ledger grown by earlier runs commits slower.
  "$weft" down --dir "$dir" > /dev/null 2>&1 || true
  rm -rf "$dir"
  say "$name: weft up ($spec)"
  cleanup+=("'$weft' down --dir '$dir' >&2")
  "$weft" up "$root/benches/specs/$spec" --dir "$dir" >&2
  say "$name: weft bench $mode for $duration"
  "$weft" bench "$mode" --dir "$dir" --duration "$duration" --concurrency "$concurrency" \
    --connections 4 --json --report html --report-file "$root/benches/results/$name.html" "$@" \
    > "$root/benches/results/$name.json"
  "$weft" down --dir "$dir" >&2
  say "$name: $(head -c 300 "$root/benches/results/$name.json")..."
}

node_ccaas() {
  "$root/compat/install.sh" >&2
  local cli=$root/compat/node_modules/.bin/fabric-chaincode-node
  (cd "$root/compat/node/chaincode" && exec "$cli" server --chaincode-address 127.0.0.1:19999 \
    --chaincode-id basic) > "$root/benches/work/node-ccaas-chaincode.log" 2>&1 &
  cleanup+=("kill $! 2>/dev/null")
  run node-ccaas node-ccaas.yaml submit "$@"
}

case $scenario in
  rust-basic) run rust-basic rust-basic.yaml submit "$@" ;;
  evaluate) concurrency=${CONCURRENCY:-128}; run evaluate rust-basic.yaml evaluate "$@" ;;
  node-ccaas) node_ccaas "$@" ;;
  all)
    run rust-basic rust-basic.yaml submit "$@"
    concurrency=${CONCURRENCY:-128} run evaluate rust-basic.yaml evaluate "$@"
    node_ccaas "$@"
    ;;
  *) say "unknown scenario $scenario (rust-basic, node-ccaas, evaluate, all)"; exit 2 ;;
esac
