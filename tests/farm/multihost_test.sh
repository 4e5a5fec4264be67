#!/usr/bin/env bash
# A farm across three "hosts" on this machine (docs/security.md, "Tested"):
# the scheduler in one network namespace with its own addresses, a worker in
# another, the client on the host, over veth links. With CurveZMQ a job with
# a secret builds for real (runc) on the remote worker, and a capture of
# every packet the scheduler's host saw holds neither the secret nor the
# spec's text. The same capture of an --insecure farm does show the spec's
# text, so the capture would have seen them. Also: the scheduler refuses to
# listen on these addresses without keys.
#
#   tests/farm/multihost_test.sh KILN KILN_SCHEDULER KILN_WORKER SOURCE_DIR
# Needs root, ip (iproute2), nsenter, tcpdump, runc. Cleans up whatever
# happens; traffic stays in the namespaces it makes.
set -euo pipefail

kiln=$1 scheduler_bin=$2 worker_bin=$3 source=$4
tag=$$
ns_s=kiln-s-$tag ns_w=kiln-w-$tag
dir=$(mktemp -d /tmp/kiln-multihost-XXXXXX)
# Keys come only from the flags below, never from a farm `kiln up` left in
# the working directory's .kiln.
export KILN_HOME=$dir/home
unset KILN_KEY KILN_SCHEDULER_KEY KILN_SCHEDULER
pids=()

cleanup() {
  local rc=$?
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  pkill -KILL -f "$dir" 2>/dev/null || true
  ip netns del "$ns_s" 2>/dev/null || true
  ip netns del "$ns_w" 2>/dev/null || true
  ip link del "kh$tag" 2>/dev/null || true
  # A killed worker may leave mounts (its secrets tmpfs) under its state.
  grep -o " $dir[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  shopt -s nullglob
  for f in "$dir"/*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done
  exit 1
}

# --- three hosts: scheduler S (10.231.1.1 to workers, 10.231.2.1 to clients), worker W, the host
ip netns add "$ns_s"
ip netns add "$ns_w"
ip link add "ks$tag" type veth peer name "kw$tag"
ip link set "ks$tag" netns "$ns_s"
ip link set "kw$tag" netns "$ns_w"
ip link add "kh$tag" type veth peer name "kc$tag"
ip link set "kc$tag" netns "$ns_s"
ip -n "$ns_s" addr add 10.231.1.1/24 dev "ks$tag"
ip -n "$ns_w" addr add 10.231.1.2/24 dev "kw$tag"
ip -n "$ns_s" addr add 10.231.2.1/24 dev "kc$tag"
ip addr add 10.231.2.2/24 dev "kh$tag"
for l in lo "ks$tag" "kc$tag"; do ip -n "$ns_s" link set "$l" up; done
for l in lo "kw$tag"; do ip -n "$ns_w" link set "$l" up; done
ip link set "kh$tag" up
in_s() { nsenter --net="/var/run/netns/$ns_s" "$@"; }

clients=tcp://10.231.2.1:7800 workers=tcp://10.231.1.1:7801
image=$("$source/scripts/make-base-image" "$dir/busybox" 2>/dev/null)

# --- keys: the scheduler's, a client's, a worker's
"$kiln" keygen scheduler --out "$dir/keys" >/dev/null
"$kiln" keygen alice --out "$dir/keys" >/dev/null
"$kiln" keygen ops --out "$dir/keys" >/dev/null
"$kiln" keygen remote-1 --out "$dir/keys" >/dev/null
mkdir -p "$dir/auth/clients" "$dir/auth/workers" "$dir/auth/admins"
cp "$dir/keys/alice.pub" "$dir/auth/clients/"
cp "$dir/keys/ops.pub" "$dir/auth/admins/"
cp "$dir/keys/remote-1.pub" "$dir/auth/workers/"

# --- without keys the scheduler will not listen on a network address
if in_s "$scheduler_bin" --state-dir "$dir/refused" --listen "$clients" --listen-workers "$workers" \
    --http off >"$dir/refused.log" 2>&1; then
  fail "the scheduler listened on $clients without authentication"
fi
grep -q "refusing to listen on $clients" "$dir/refused.log" || fail "no clear refusal: $(cat "$dir/refused.log")"
echo "ok: no keys, no network listening"

secret=kiln-secret-$RANDOM$RANDOM$RANDOM
marker=kiln-spec-marker-$RANDOM$RANDOM
printf '%s' "$secret" >"$dir/token"
cat >"$dir/job.spec" <<EOF
((from busybox)
 (comment "$marker")
 (run (secrets (token (target /run/secrets/token)))
      (shell "test \"\$(wc -c < /run/secrets/token)\" -eq ${#secret} && echo secret-ok")))
EOF
cat >"$dir/plain.spec" <<EOF
((from busybox)
 (comment "$marker")
 (run (shell "echo plain-ok")))
EOF

# run_farm NAME SECURE: scheduler in S, a runc worker in W, tcpdump on every
# link of S; submits from the host and leaves the capture in NAME.pcap.
run_farm() {
  local name=$1 secure=$2 sargs=() wargs=() cargs=() aargs=()
  if [[ $secure == yes ]]; then
    sargs=(--key "$dir/keys/scheduler.key" --auth-dir "$dir/auth")
    wargs=(--key "$dir/keys/remote-1.key" --scheduler-key "$dir/keys/scheduler.pub")
    cargs=(--key "$dir/keys/alice.key" --scheduler-key "$dir/keys/scheduler.pub")
    aargs=(--key "$dir/keys/ops.key" --scheduler-key "$dir/keys/scheduler.pub")
  else
    sargs=(--insecure)
  fi
  # nsenter execs its command: $! is the daemon's own pid. --immediate-mode:
  # without it packets wait in the kernel's ring for up to a second and those
  # still there at SIGINT are never written.
  nsenter --net="/var/run/netns/$ns_s" tcpdump --immediate-mode -i any -U -s 0 -w "$dir/$name.pcap" tcp >"$dir/$name-tcpdump.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q "listening on" "$dir/$name-tcpdump.log" && break; sleep 0.1; done
  nsenter --net="/var/run/netns/$ns_s" "$scheduler_bin" --state-dir "$dir/$name-scheduler" --listen "$clients" --listen-workers "$workers" \
    --http off "${sargs[@]}" >"$dir/$name-scheduler.log" 2>&1 &
  pids+=($!)
  nsenter --net="/var/run/netns/$ns_w" "$worker_bin" --name remote-1 --scheduler "$workers" --state-dir "$dir/$name-worker" \
    --image-alias "busybox=$image" "${wargs[@]}" >"$dir/$name-worker.log" 2>&1 &
  pids+=($!)
  local spec=$dir/plain.spec secret_args=()
  if [[ $secure == yes ]]; then spec=$dir/job.spec secret_args=(--secret "token:$dir/token"); fi
  local ok=
  for _ in $(seq 100); do
    local listed
    listed=$("$kiln" admin workers --scheduler "$clients" "${aargs[@]}" 2>"$dir/$name-workers.log") || true
    if grep -q remote-1 <<<"$listed"; then ok=1; break; fi
    sleep 0.2
  done
  [[ -n $ok ]] || fail "$name: the remote worker did not register"
  mkdir -p "$dir/ctx"
  "$kiln" submit -f "$spec" "$dir/ctx" --scheduler "$clients" "${cargs[@]}" "${secret_args[@]}" --follow \
    >"$dir/$name-submit.log" 2>&1 || fail "$name: the job failed: $(cat "$dir/$name-submit.log")"
  sleep 0.5
  local n=${#pids[@]}
  kill -TERM "${pids[$((n - 1))]}" "${pids[$((n - 2))]}" 2>/dev/null || true
  wait "${pids[$((n - 1))]}" "${pids[$((n - 2))]}" 2>/dev/null || true
  kill -INT "${pids[$((n - 3))]}" 2>/dev/null || true
  wait "${pids[$((n - 3))]}" 2>/dev/null || true
  pids=("${pids[@]:0:$((n - 3))}")
}

# --- with CurveZMQ: a real build with a secret on the remote worker
run_farm secure yes
grep -q secret-ok "$dir/secure-submit.log" || fail "the step did not see its secret: $(cat "$dir/secure-submit.log")"
bytes=$(stat -c %s "$dir/secure.pcap")
[[ $bytes -gt 10000 ]] || fail "the capture holds only $bytes bytes: it did not see the farm's traffic"
if grep -a -q "$secret" "$dir/secure.pcap"; then fail "the secret crossed the network in clear"; fi
if grep -a -q "$marker" "$dir/secure.pcap"; then fail "the spec crossed the network in clear"; fi
echo "ok: secure farm across namespaces; $bytes bytes captured, no secret and no spec text in them"

# --- the same capture of an --insecure farm sees the spec
run_farm insecure no
grep -q plain-ok "$dir/insecure-submit.log" || fail "the insecure job failed"
grep -a -q "$marker" "$dir/insecure.pcap" || fail "the control capture did not see the spec text in clear"
grep -q "no authentication" "$dir/insecure-scheduler.log" || fail "--insecure did not warn"
echo "ok: control: an --insecure farm's capture shows the spec text in clear"
echo "1 passed, 0 failed"
