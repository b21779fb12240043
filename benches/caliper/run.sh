#!/usr/bin/env bash
# Runs Hyperledger Caliper 0.6 (peer-gateway connector) against a network made
# by `weft up`: 40 CreateAsset submits at 20 tx/s, then 40 ReadAsset
# evaluations, as User1 of Org1 through Org1's connection profile.
#
#   benches/caliper/run.sh [network dir (default: weft-network)] [report file]
#
# Installs Caliper from the npm registry at the versions in package-lock.json
# on first use (into benches/caliper/node_modules). Prints Caliper's result
# table; the HTML report goes to the report file (default:
# benches/results/caliper-report.html).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
network=$(cd "${1:-weft-network}" && pwd)
report=${2:-$(cd "$here/.." && pwd)/results/caliper-report.html}
mkdir -p "$(dirname "$report")"

say() { printf 'caliper: %s\n' "$*" >&2; }

if [ ! -x "$here/node_modules/.bin/caliper" ] \
   || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  say "installing Caliper into $here/node_modules"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

org=$network/organizations/peerOrganizations/org1.example.com
[ -f "$org/connection-org1.yaml" ] || { say "no weft network in $network (run weft up first)"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/bench.yaml" "$here/workload.js" "$work/"
ln -s "$here/node_modules" "$work/node_modules"
user=$org/users/User1@org1.example.com/msp
cat > "$work/network.yaml" <<YAML
name: weft
version: "2.0.0"
caliper:
  blockchain: fabric
channels:
  - channelName: mychannel
    contracts:
      - id: basic
organizations:
  - mspid: Org1MSP
    identities:
      certificates:
        - name: User1
          clientPrivateKey:
            path: $user/keystore/priv_sk
          clientSignedCert:
            path: $user/signcerts/cert.pem
    connectionProfile:
      path: $org/connection-org1.yaml
      discover: false
YAML
say "running the smoke scenario against $network"
(cd "$work" && WEFT_CALIPER_RUN=$(date +%s%N) "$here/node_modules/.bin/caliper" launch manager \
  --caliper-workspace . --caliper-networkconfig network.yaml --caliper-benchconfig bench.yaml \
  --caliper-flow-only-test --caliper-report-path report.html > caliper.log 2>&1) \
  || { sed 's/\x1b\[[0-9;]*m//g' "$work/caliper.log" >&2; exit 1; }
# The result tables, without colours.
sed 's/\x1b\[[0-9;]*m//g' "$work/caliper.log" | sed -n '/All test results/,$p' | grep -E '^[|+]' \
  > "$work/results.txt"
cat "$work/results.txt"
cp "$work/report.html" "$report"
say "report written to $report"
# Any failed transaction (the Fail column) fails the run.
failed=$(awk -F'|' 'NF > 3 && $3 ~ /[0-9]/ { sum += $4 } END { print sum + 0 }' "$work/results.txt")
if [ "$failed" -ne 0 ]; then
  say "$failed transaction(s) failed; see $report"
  exit 1
fi
