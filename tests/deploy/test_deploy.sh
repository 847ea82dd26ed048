#!/usr/bin/env bash
# test_deploy.sh — what can be checked of deploy/ without Docker, a cluster
# or systemd running (deploy/README.md says which parts are exercised).
#
#  - systemd units: `systemd-analyze verify` (ExecStart pointed at the built
#    binaries), when systemd-analyze exists;
#  - Kubernetes manifests and docker-compose.yml parse as YAML (python3-yaml)
#    and agree with each other and with the programs: the readiness probe is
#    /readyz and the liveness probe /healthz on the container's metrics port,
#    which is the port of metrics-addr in the ConfigMap's [worker] section;
#    the PodDisruptionBudget selects the Deployment's pods; every kustomize
#    resource exists; compose runs a KRaft Kafka (no ZooKeeper), Redis and
#    three workers; the CLI service (uid 10001) mounts host directories
#    read-only and no recipe line has it write a file (-o) instead of stdout;
#  - the ConfigMap's mxsift.conf is accepted by mxsift-worker and mxsift submit;
#  - the configuration path of the systemd units (MXSIFT_CONFIG) and of the
#    install lines (deploy/README.md, the units' comments) is the programs'
#    default, CONFIG_DEFAULT_PATH;
#  - the Grafana dashboard is valid JSON and queries only metrics that
#    worker/metrics.c exports (integration.metrics checks a live scrape);
#  - the Dockerfile's build packages are in scripts/setup's list and its
#    runtime packages are known to apt (no network: the local apt cache).
#
# usage: test_deploy.sh MXSIFT MXSIFT_WORKER SOURCE_DIR
set -euo pipefail
mxsift=$1 worker=$2 src=$3
deploy=$src/deploy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
skipped=()

# ---- systemd ---------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
	for f in mxsift-worker@.service mxsift-hygiene.service mxsift-hygiene.timer; do
		sed -e "s|/usr/bin/mxsift-worker|$worker|" -e "s|/usr/bin/mxsift |$mxsift |" \
			"$deploy/systemd/$f" >"$tmp/$f"
	done
	cp "$tmp/mxsift-worker@.service" "$tmp/mxsift-worker@main.service"
	(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
		mxsift-worker@main.service mxsift-hygiene.service mxsift-hygiene.timer) \
		>"$tmp/verify.out" 2>&1 || { cat "$tmp/verify.out" >&2; fail "systemd-analyze verify"; }
	[ ! -s "$tmp/verify.out" ] || { cat "$tmp/verify.out" >&2; fail "systemd-analyze verify warnings"; }
else
	skipped+=(systemd)
fi

# ---- one configuration file, where the programs look for it -------------------------------
# The units' MXSIFT_CONFIG and the file deploy/README.md installs are the path
# the programs read by default (common/config.h), so that the commands of the
# README run on a host set up by the recipe without --config or MXSIFT_CONFIG.
default=$(sed -n 's/^#define CONFIG_DEFAULT_PATH "\(.*\)"$/\1/p' "$src/common/config.h")
[ -n "$default" ] || fail "no CONFIG_DEFAULT_PATH in common/config.h"
units=$(grep -ho '^Environment=MXSIFT_CONFIG=[^ ]*' "$deploy"/systemd/*.service | sed 's/^Environment=//' | sort -u)
[ "$units" = "MXSIFT_CONFIG=$default" ] ||
	fail "systemd units set $(tr '\n' ' ' <<<"$units")instead of MXSIFT_CONFIG=$default only"
installed=$(sed -n 's|^[#[:space:]]*install .*deploy/mxsift\.conf\.example \([^ ]*\).*|\1|p' \
	"$deploy/README.md" "$deploy"/systemd/*.service | sort -u)
[ "$installed" = "$default" ] ||
	fail "deploy/ installs the configuration as '$(tr '\n' ' ' <<<"$installed")', the programs read $default"
grep -q "^# Install as $default " "$deploy/mxsift.conf.example" ||
	fail "mxsift.conf.example does not say to install it as $default"

# ---- YAML: Kubernetes and compose -----------------------------------------------------
if python3 -c 'import yaml' 2>/dev/null; then
	python3 - "$deploy" "$tmp/configmap.conf" <<'EOF' || fail "deploy manifests (see above)"
import glob, os, re, sys, yaml
deploy, conf_out = sys.argv[1], sys.argv[2]
k8s = os.path.join(deploy, "k8s")
docs = {}
for f in sorted(glob.glob(os.path.join(k8s, "*.yaml"))):
    for d in yaml.safe_load_all(open(f)):
        assert d and "kind" in d, f"{f}: a document without kind"
        docs.setdefault(d["kind"], []).append(d)
kust = docs["Kustomization"][0]
for r in kust["resources"]:
    assert os.path.exists(os.path.join(k8s, r)), f"kustomization lists missing {r}"
dep = docs["Deployment"][0]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
rp, lp = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
assert rp["path"] == "/readyz", "readiness probe must be /readyz"
assert lp["path"] == "/healthz", "liveness probe must be /healthz"
port = ports[rp["port"]] if isinstance(rp["port"], str) else rp["port"]
assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"] or \
    all(dep["spec"]["template"]["metadata"]["labels"].get(k) == v
        for k, v in dep["spec"]["selector"]["matchLabels"].items()), "selector/labels"
pdb = docs["PodDisruptionBudget"][0]
assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"], \
    "the PDB must select the worker pods"
assert pod["terminationGracePeriodSeconds"] > 30, "grace period must exceed --grace (30 s)"
conf = docs["ConfigMap"][0]["data"]["mxsift.conf"]
open(conf_out, "w").write(conf)
m = re.search(r"^\[worker\](.*?)(^\[|\Z)", conf, re.S | re.M)
assert m, "the ConfigMap has no [worker] section"
ma = re.search(r"^\s*metrics-addr\s*=\s*(\S+):(\d+)\s*$", m.group(1), re.M)
assert ma and ma.group(1) == "0.0.0.0", "[worker] metrics-addr must listen on 0.0.0.0 for the kubelet"
assert int(ma.group(2)) == port, f"metrics-addr port {ma.group(2)} != probe port {port}"
cj = docs["CronJob"][0]
assert len(cj["spec"]["schedule"].split()) == 5, "CronJob schedule"
assert cj["spec"]["concurrencyPolicy"] == "Forbid"

comp = yaml.safe_load(open(os.path.join(deploy, "docker-compose.yml")))
sv = comp["services"]
for s in ("kafka", "redis", "worker", "mxsift"):
    assert s in sv, f"compose: no {s} service"
env = sv["kafka"]["environment"]
assert "controller" in env["KAFKA_PROCESS_ROLES"], "compose Kafka must run in KRaft mode"
assert not any("zookeeper" in s for s in sv), "no ZooKeeper"
assert sv["worker"]["deploy"]["replicas"] == 3, "three workers"
# The CLI runs as the image's uid 10001, which cannot write into a host
# directory it does not own: its bind mounts are read-only, and no recipe has
# it write a file (-o PATH) instead of stdout.
for v in sv["mxsift"].get("volumes", []):
    if isinstance(v, str) and v.startswith((".", "/")):
        assert v.endswith(":ro"), f"compose mxsift: host mount {v} is not read-only"
for f in ("docker-compose.yml", "README.md"):
    for n, line in enumerate(open(os.path.join(deploy, f)), 1):
        if "compose" in line and " run " in line and re.search(r" (-o|--output)[ =]", line):
            raise AssertionError(f"{f}:{n}: the CLI container writes a file as uid 10001: {line.strip()}")
print("manifests ok: readiness /readyz on port", port)
EOF
	"$worker" --config "$tmp/configmap.conf" --help >/dev/null 2>"$tmp/err" ||
		fail "mxsift-worker rejects the ConfigMap's mxsift.conf: $(cat "$tmp/err")"
	"$mxsift" submit --config "$tmp/configmap.conf" --help >/dev/null 2>"$tmp/err" ||
		fail "mxsift submit rejects the ConfigMap's mxsift.conf: $(cat "$tmp/err")"
else
	skipped+=(yaml)
fi

# ---- Grafana ---------------------------------------------------------------------
command -v jq >/dev/null || fail "jq missing (scripts/setup installs it)"
jq -e '.panels | length > 10' "$deploy/grafana-mxsift.json" >/dev/null || fail "dashboard JSON"
grep -oE '"mxsift_[a-z0-9_]+"' "$src/worker/metrics.c" | tr -d '"' | sort -u >"$tmp/exported"
jq -r '.panels[].targets[].expr' "$deploy/grafana-mxsift.json" | grep -oE 'mxsift_[a-z0-9_]+' |
	sed -E 's/_bucket$//' | sort -u >"$tmp/queried"
unknown=$(comm -23 "$tmp/queried" "$tmp/exported")
[ -z "$unknown" ] || fail "the dashboard queries metrics the worker does not export: $unknown"

# ---- Dockerfile --------------------------------------------------------------------
# the RUN line after "FROM debian:12 AS build" installs build packages; the
# one after "FROM debian:12-slim" runtime packages
pkgs() {
	awk -v stage="$1" '/^FROM / { s = ($0 ~ stage); on = 0 }
		s && /apt-get install/ { on = 1 } s && on && /rm -rf/ { on = 0 }
		s && on { print }' "$deploy/Dockerfile" |
		tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
		grep -vE '^(apt-get|install|rm|y|no|recommends|DEBIAN_FRONTEND|noninteractive)$' |
		grep -v '^-' | sort -u
}
pkgs 'AS build' >"$tmp/build.pkgs"
pkgs '12-slim' >"$tmp/run.pkgs"
[ -s "$tmp/build.pkgs" ] && [ -s "$tmp/run.pkgs" ] || fail "could not read the Dockerfile's packages"
sed -n '/^PACKAGES=(/,/^)/p' "$src/scripts/setup" | tr ' \t' '\n\n' | sort -u >"$tmp/setup.pkgs"
extra=$(comm -23 "$tmp/build.pkgs" "$tmp/setup.pkgs" | grep -vE '^(ca-certificates)$' || true)
[ -z "$extra" ] || fail "Dockerfile build packages not in scripts/setup: $extra"
if command -v apt-cache >/dev/null && apt-cache show libc6 >/dev/null 2>&1; then
	# one apt-cache call (each one reads the whole cache: seconds)
	apt-cache show --no-all-versions $(cat "$tmp/run.pkgs") 2>/dev/null |
		sed -n 's/^Package: //p' | sort -u >"$tmp/known.pkgs" || true
	unknown=$(comm -23 "$tmp/run.pkgs" "$tmp/known.pkgs")
	[ -z "$unknown" ] || fail "Dockerfile runtime packages unknown to apt: $unknown"
else
	skipped+=(apt)
fi

echo "PASS: deploy/ consistent${skipped:+ (not checked here: ${skipped[*]})}"
