#!/usr/bin/env bash
# A farm deployed by the Ansible playbooks onto "hosts" made on this machine
# (docs/operations.md, "Tested"): the scheduler and three workers, each in
# its own PID, mount, UTS and network namespace, with its own address on a
# switch (a bridge in a namespace of its own) and its own /etc, /usr, /var and
# /run (overlays of this machine's, so the .deb, the kiln user, keys and
# daemons land on that host only). ansible-playbook runs here with the local
# connection; the become method tests/ops/ansible_plugins/become/kiln_test_host
# enters the host's namespaces for every task. Daemons run under the roles'
# process manager (systemd is not PID 1 here): the package's kiln-service
# starts the units' command lines. Workers run --fake-build (8 s a job): the
# builds are tested elsewhere, the deployment is the point here.
#
#  1. site.yml installs kiln_0.1.0 (the .deb scripts/package makes) with apt
#     on each host, makes keys (secrets stay on their host), fills the auth
#     directory and starts everything; a job submitted from this machine
#     with a client key builds on a worker; without a key it is refused.
#  2. site.yml again: changed=0 on every host.
#  3. scale.yml with a third worker listed: the two known workers are not
#     touched, the new one registers and takes a job that needs its label.
#  4. rolling-update.yml to a newer package while 30 jobs run: every job
#     succeeds, every host runs the new package, every worker was restarted.
#  5. The scheduler's host is killed (its PID namespace: every process on
#     it) with jobs queued and running, then booted again (same disks) and
#     site.yml brings the scheduler back: every job succeeds, earlier jobs
#     are still known.
#
#   tests/ops/deploy_test.sh BUILD_DIR SOURCE_DIR
# Needs root, ansible-playbook, iproute2, util-linux (unshare, nsenter), runc,
# dpkg-dev. Whatever happens, every host is killed (which ends its processes,
# mounts and network) and the switch and the temporary directory removed.
set -euo pipefail
shopt -s inherit_errexit

build=$(cd "$1" && pwd)
source=$(cd "$2" && pwd)
kiln=$build/cli/kiln
tag=$$
dir=$(mktemp -d /tmp/kiln-deploy-XXXXXX)
net=10.235.$((tag % 250))
switch=kiln-sw-$tag
declare -A host_pid=() host_addr=([sched]=$net.1 [w1]=$net.11 [w2]=$net.12 [w3]=$net.13)
started=$(date +%s)

cleanup() {
  local rc=$?
  set +e
  [[ -n ${watcher:-} ]] && kill "$watcher" 2>/dev/null
  for h in "${!host_pid[@]}"; do kill -KILL "${host_pid[$h]}" 2>/dev/null; done
  sleep 0.5
  # KILN_TEST_KEEP=DIR keeps the logs of a failed run (the playbooks', the daemons').
  if [[ $rc -ne 0 && -n ${KILN_TEST_KEEP:-} ]]; then
    mkdir -p "$KILN_TEST_KEEP"
    cp "$dir"/*.log "$KILN_TEST_KEEP"/ 2>/dev/null
    for h in "$dir"/hosts/*; do cp -r "$h/var/up/log" "$KILN_TEST_KEEP/$(basename "$h")-log" 2>/dev/null; done
  fi
  ip netns del "$switch" 2>/dev/null
  ip link del "kc$tag" 2>/dev/null
  rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  shopt -s nullglob
  for f in "$dir"/*.log "$dir"/hosts/*/var/up/log/kiln/*.log; do
    echo "--- $f" >&2
    tail -n 25 "$f" >&2
  done
  exit 1
}
step() { echo "ok: $* ($(($(date +%s) - started)) s)"; }
on() { # on HOST COMMAND...: run COMMAND on that host (all its namespaces)
  local h=$1
  shift
  nsenter -t "${host_pid[$h]}" -m -u -n -p "$@"
}

# --- the network: a switch with this machine on it at .254
ip netns add "$switch"
ip -n "$switch" link add br0 type bridge
ip -n "$switch" link set br0 up
ip link add "kc$tag" type veth peer name "kd$tag"
ip link set "kd$tag" netns "$switch"
ip -n "$switch" link set "kd$tag" master br0 up
ip addr add "$net.254/24" dev "kc$tag"
ip link set "kc$tag" up

# host_up NAME: boots (or boots again) a host. Its disks are
# DIR/hosts/NAME: the upper layers of /etc /usr /var /run and /var/lib/kiln
# (a plain directory: the worker's overlayfs store cannot live on an overlay),
# and its own copy of the dpkg database, taken at its first boot: an overlay
# whose lower layer changes (this machine installing a package meanwhile)
# answers dpkg's rename of its status file with ESTALE.
host_up() {
  local h=$1 d=$dir/hosts/$1 upid ipid= t
  for t in usr etc var run; do mkdir -p "$d/$t/up" "$d/$t/work"; done
  mkdir -p "$d/kiln"
  # PID 1 of the host: reaps orphans; SIGKILL to it ends every process there.
  unshare --fork --pid --mount --net --uts --propagation private --mount-proc \
    bash -c 'while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &
  upid=$!
  for _ in $(seq 100); do
    ipid=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null | tr -d ' ') && [[ -n $ipid ]] && break
    sleep 0.05
  done
  [[ -n $ipid ]] || fail "host $h did not start"
  host_pid[$h]=$ipid
  on "$h" sh -c "hostname $h &&
    for t in usr etc var run; do
      mount -t overlay overlay -o lowerdir=/\$t,upperdir=$d/\$t/up,workdir=$d/\$t/work /\$t
    done && mkdir -p /var/lib/kiln && mount --bind $d/kiln /var/lib/kiln &&
    if [ ! -d $d/dpkg ]; then cp -a /var/lib/dpkg $d/dpkg.new && mv $d/dpkg.new $d/dpkg; fi &&
    mount --bind $d/dpkg /var/lib/dpkg" || fail "host $h: mounts"
  ip link add "ka$tag$h" type veth peer name eth0 netns "$ipid"
  ip link set "ka$tag$h" netns "$switch"
  ip -n "$switch" link set "ka$tag$h" master br0 up
  on "$h" sh -c "ip addr add ${host_addr[$h]}/24 dev eth0 && ip link set eth0 up && ip link set lo up"
  mkdir -p "$dir/inventory/host_vars"
  printf 'kiln_test_host_pid: %s\n' "$ipid" >"$dir/inventory/host_vars/$h.yml"
}

# The checks below tell the test hosts from this machine by the package.
if dpkg-query -W kiln >/dev/null 2>&1; then fail "kiln is installed on this machine; remove it (dpkg --purge kiln) first"; fi

# --- two packages: the release and a newer one for the rolling update
"$source/scripts/package" --build-dir "$build" --out "$dir/dist" >"$dir/package.log" 2>&1 ||
  fail "scripts/package: $(cat "$dir/package.log")"
"$source/scripts/package" --build-dir "$build" --out "$dir/dist" --version 0.1.0+rolling1 >>"$dir/package.log" 2>&1 ||
  fail "scripts/package --version: $(cat "$dir/package.log")"
step "packages: $(cd "$dir/dist" && echo kiln_*.deb)"

for h in sched w1 w2 w3; do host_up "$h"; done
[[ $(on w1 hostname) == w1 ]] || fail "w1's hostname is $(on w1 hostname)"
step "four hosts on $net.0/24"

# --- the client on this machine: its own key pair; the scheduler gets the .pub
"$kiln" keygen alice --out "$dir/client" >/dev/null
"$kiln" keygen ops --out "$dir/client" >/dev/null
cat >"$dir/inventory/hosts.ini" <<EOF
[all:vars]
ansible_connection=local
ansible_python_interpreter=/usr/bin/python3
ansible_become_method=kiln_test_host

[scheduler]
sched ansible_host=${host_addr[sched]}

[pool_test]
w1
w2

[workers:children]
pool_test
EOF
mkdir -p "$dir/inventory/group_vars"
cat >"$dir/inventory/group_vars/all.yml" <<EOF
kiln_version: "0.1.0"
kiln_package_dir: $dir/dist
kiln_service_manager: process
# A .pub file's text as it is: a block, and no templating (its Z85 may hold "{{").
kiln_scheduler_clients:
  alice: !unsafe |
$(sed 's/^/    /' "$dir/client/alice.pub")
kiln_scheduler_admins:
  ops: !unsafe |
$(sed 's/^/    /' "$dir/client/ops.pub")
kiln_scheduler_public_key_fetch_dir: $dir/client
EOF
cat >"$dir/inventory/group_vars/pool_test.yml" <<EOF
kiln_worker_pool: linux-x86_64
kiln_worker_capacity: 2
# Builds are not the point here: each job takes 8 s of pretend work (long
# enough for the rolling update to drain workers that are running jobs).
kiln_worker_fake_build: 8
kiln_worker_labels:
  zone: test
EOF

# Ansible as the test runs it: this inventory, the become method that enters
# a host (host_vars/NAME.yml holds its PID 1), also for root becoming root.
ansible_env=(ANSIBLE_CONFIG="$source/ansible/ansible.cfg" ANSIBLE_BECOME_PLUGINS="$source/tests/ops/ansible_plugins/become"
  ANSIBLE_BECOME_ALLOW_SAME_USER=1 ANSIBLE_PIPELINING=1 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0
  ANSIBLE_LOCAL_TEMP="$dir/ansible/local" ANSIBLE_REMOTE_TEMP="$dir/ansible/remote")
# Before any playbook: every host must answer from inside itself (its own
# host name), or the playbooks would change this machine instead.
check_hosts() {
  local h out
  out=$(cd "$source/ansible" && env "${ansible_env[@]}" ansible -i "$dir/inventory/hosts.ini" all -b -o \
    -m ansible.builtin.command -a 'cat /proc/sys/kernel/hostname' 2>&1) || fail "ansible could not reach the hosts: $out"
  for h in "$@"; do
    grep -qE "^$h \|.*\(stdout\) $h\$" <<<"$out" || fail "ansible's tasks for $h do not run inside $h: $out"
  done
}
# play NAME PLAYBOOK [ARGS...]: ansible-playbook with this inventory; the
# output goes to DIR/NAME.log.
play() {
  local name=$1 t0=$SECONDS
  shift
  if ! (cd "$source/ansible" && env "${ansible_env[@]}" \
    timeout 900 ansible-playbook -i "$dir/inventory/hosts.ini" "$@") >"$dir/$name.log" 2>&1; then
    fail "ansible-playbook $* failed: $(sed -n '/fatal:\|FAILED\|ERROR/,+3p' "$dir/$name.log" | head -40)"
  fi
  echo "   $name: $((SECONDS - t0)) s"
}
# changed HOST LOG: the host's changed= count in the log's PLAY RECAP.
changed() { sed -n '/PLAY RECAP/,$p' "$2" | grep "^$1 " | grep -o 'changed=[0-9]*' | cut -d= -f2; }
# the scheduler on this machine's side, as the client alice
export KILN_SCHEDULER=tcp://${host_addr[sched]}:7800 KILN_KEY=$dir/client/alice.key KILN_SCHEDULER_KEY=$dir/client/scheduler.pub
admin() { KILN_KEY=$dir/client/ops.key "$kiln" admin "$@"; }
job_field() { "$kiln" status "$1" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }
# wait_jobs SECONDS ID...: until every job has ended; prints "ID STATE" lines.
wait_jobs() {
  local limit=$1
  shift
  /usr/bin/python3 - "$kiln" "$limit" "$@" <<'EOF'
import json, subprocess, sys, time
kiln, limit, ids = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
deadline = time.time() + limit
while True:
    listing = subprocess.run([kiln, "jobs", "--json", "--limit", "10000"], capture_output=True, text=True)
    states = {j["id"]: j["state"] for j in json.loads(listing.stdout)['jobs']} if listing.returncode == 0 else {}
    pending = [i for i in ids if states.get(i) not in ("succeeded", "failed", "cancelled")]
    if not pending or time.time() > deadline:
        for i in ids:
            print(i, states.get(i, "unknown"))
        sys.exit(0)
    time.sleep(1)
EOF
}
# submit_jobs N PREFIX SECONDS: N real builds of SECONDS each; prints their ids.
submit_jobs() {
  local i
  for i in $(seq "$1"); do
    printf '((from busybox)\n (run (shell "echo %s-%s; sleep %s")))\n' "$2" "$i" "$3" >"$dir/$2-$i.spec"
    "$kiln" submit -f "$dir/$2-$i.spec" | tail -n 1
  done
}

# --- 1. deploy
check_hosts sched w1 w2
play site1 site.yml
[[ -f $dir/client/scheduler.pub ]] || fail "site.yml did not copy scheduler.pub to the controller"
for h in sched w1 w2; do
  [[ $(on "$h" dpkg-query -W -f '${Version}' kiln) == 0.1.0 ]] || fail "$h does not have kiln 0.1.0 installed"
done
if dpkg-query -W kiln >/dev/null 2>&1; then fail "kiln got installed on this machine, not only on the test hosts"; fi
[[ $(on sched stat -c '%U %a' /etc/kiln/keys/scheduler.key) == "kiln 600" ]] || fail "scheduler.key is not kiln's, mode 600"
[[ $(on sched ps -o user= -C kiln-scheduler | tr -d ' ') == kiln ]] || fail "kiln-scheduler does not run as kiln"
on sched test ! -e /etc/kiln/keys/w1.key || fail "w1's secret key is on the scheduler's host"
on w1 test ! -e /etc/kiln/keys/scheduler.key || fail "the scheduler's secret key is on w1"
on w1 test ! -e /etc/kiln/keys/w2.key || fail "w2's secret key is on w1"
on sched test -f /etc/kiln/auth/workers/w2.pub || fail "w2's public key is not in the scheduler's auth directory"
# Every job's context: an empty directory (a submit without one sends the
# current directory).
mkdir -p "$dir/ctx"
cd "$dir/ctx"
printf '((from busybox)\n (run (shell "echo deployed-$(hostname)")))\n' >"$dir/hello.spec"
"$kiln" submit -f "$dir/hello.spec" "$dir/ctx" --follow >"$dir/hello.out" 2>&1 ||
  fail "a job from this machine failed: $(cat "$dir/hello.out")"
first_job=$(tail -n 1 "$dir/hello.out")
grep -q "succeeded on w[12]" "$dir/hello.out" || fail "the job did not succeed on w1 or w2: $(cat "$dir/hello.out")"
if KILN_KEY= KILN_SCHEDULER_KEY= "$kiln" jobs >"$dir/nokey.out" 2>&1; then fail "the scheduler answered a client without a key"; fi
grep -q "requires CurveZMQ authentication" "$dir/nokey.out" || fail "no clear refusal without a key: $(cat "$dir/nokey.out")"
token=$(on sched cat /etc/kiln/http-token)
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://${host_addr[sched]}:7880/metrics") == 401 ]] || fail "HTTP answered without the token"
# Read whole before grep looks: `curl | grep -q` fails under pipefail when grep
# exits at its first match while curl is still writing (SIGPIPE).
metrics=$(curl -sf -H "Authorization: Bearer $token" "http://${host_addr[sched]}:7880/metrics") ||
  fail "HTTP with the token did not answer /metrics"
grep -q '^kiln_' <<<"$metrics" || fail "HTTP with the token did not serve the metrics"
step "site.yml deployed the scheduler and two workers; job $first_job built on a worker over the network with a client key; refused without one"

# --- 2. idempotence
play site2 site.yml
for h in sched w1 w2; do
  [[ $(changed "$h" "$dir/site2.log") == 0 ]] || fail "the second site.yml changed $(changed "$h" "$dir/site2.log") things on $h: $(grep -B1 '^changed:' "$dir/site2.log" | head -20)"
done
step "a second site.yml: changed=0 on sched, w1 and w2"

# --- 3. scale out
pids_before=$(on w1 /usr/libexec/kiln/kiln-service status kiln-worker@w1.service)
sed -i 's/^w2$/w2\nw3/' "$dir/inventory/hosts.ini"
printf 'kiln_worker_labels:\n  zone: test\n  scaled: "yes"\n' >>"$dir/inventory/host_vars/w3.yml"
check_hosts w3
play scale scale.yml
# (a host that ends early is left out of the recap)
[[ $(changed w1 "$dir/scale.log") == @(|0) && $(changed w2 "$dir/scale.log") == @(|0) ]] || fail "scale.yml changed w1 or w2"
[[ $(changed w3 "$dir/scale.log") -gt 0 ]] || fail "scale.yml did nothing on w3"
[[ $(on w1 /usr/libexec/kiln/kiln-service status kiln-worker@w1.service) == "$pids_before" ]] || fail "scale.yml restarted w1"
workers=$(admin workers) || fail "kiln admin workers failed: $workers"
grep -q "^w3 " <<<"$workers" || fail "w3 is not registered: $workers"
printf '((from busybox)\n (run (shell "echo scaled")))\n' >"$dir/scaled.spec"
"$kiln" submit -f "$dir/scaled.spec" --label scaled=yes --follow >"$dir/scaled.out" 2>&1 ||
  fail "the job for w3 failed: $(cat "$dir/scaled.out")"
grep -q "succeeded on w3" "$dir/scaled.out" || fail "the labelled job did not run on w3: $(cat "$dir/scaled.out")"
step "scale.yml added w3 (w1 and w2 untouched) and w3 built a job"

# --- 4. rolling update while 30 jobs run
declare -A worker_pid=()
for w in w1 w2 w3; do worker_pid[$w]=$(on "$w" cat "/run/kiln/kiln-worker@$w.service.pid"); done
mapfile -t rolling_jobs < <(submit_jobs 30 rolling 5)
[[ ${#rolling_jobs[@]} -eq 30 ]] || fail "submitted ${#rolling_jobs[@]} of 30 jobs"
running=$("$kiln" jobs --state running --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
# Watch the workers meanwhile: a drained worker still running jobs shows
# that the update went on while jobs ran (and waited for them). The
# scheduler restarts during the update, so a failed query is expected and
# must not end the loop (errexit and pipefail are inherited here).
(while :; do
  KILN_KEY=$dir/client/ops.key "$kiln" admin workers --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
ws = json.load(sys.stdin)
print(" ".join(w["name"] for w in ws if w["state"] == "draining" and w["running_jobs"] > 0))' 2>/dev/null || true
  sleep 0.5
done) >"$dir/rolling-watch.out" &
watcher=$!
play rolling rolling-update.yml -e kiln_version=0.1.0+rolling1
kill "$watcher" 2>/dev/null || fail "the watcher of draining workers stopped early: $(cat "$dir/rolling-watch.out")"
wait "$watcher" 2>/dev/null || true
drained_busy=$(tr ' ' '\n' <"$dir/rolling-watch.out" | grep -v '^$' | sort -u | paste -sd' ')
[[ -n $drained_busy ]] || fail "no worker was seen drained while running jobs: the update did not overlap the jobs"
during=$("$kiln" jobs --state running --state assigned --state queued --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
wait_jobs 300 "${rolling_jobs[@]}" >"$dir/rolling-jobs.out"
bad=$(grep -vc ' succeeded$' "$dir/rolling-jobs.out" || true)
[[ $bad -eq 0 ]] || fail "$bad of 30 jobs did not succeed across the rolling update: $(grep -v ' succeeded$' "$dir/rolling-jobs.out")"
for h in sched w1 w2 w3; do
  [[ $(on "$h" dpkg-query -W -f '${Version}' kiln) == 0.1.0+rolling1 ]] || fail "$h does not run the new package"
done
for w in w1 w2 w3; do
  [[ $(on "$w" cat "/run/kiln/kiln-worker@$w.service.pid") != "${worker_pid[$w]}" ]] || fail "$w was not restarted"
done
drains=$(grep -c 'TASK \[kiln_worker : Drain the worker and wait for its jobs' "$dir/rolling.log" || true)
[[ $drains -eq 3 ]] || fail "rolling-update.yml drained $drains workers, not 3"
retries=$(for j in "${rolling_jobs[@]}"; do job_field "$j" attempt; done | awk '$1 > 1' | wc -l)
step "rolling-update.yml to 0.1.0+rolling1 with 30 jobs ($running running when it began, $during not ended when it finished): all 30 succeeded ($retries needed a second attempt); drained while running jobs: $drained_busy; every host runs the new package"

# --- 5. the scheduler's host dies and comes back
# (the inventory now names the release the farm runs, as an operator's would)
sed -i 's/^kiln_version: .*/kiln_version: "0.1.0+rolling1"/' "$dir/inventory/group_vars/all.yml"
mapfile -t crash_jobs < <(submit_jobs 12 crash 3)
for _ in $(seq 60); do
  [[ $("$kiln" jobs --state running --json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))') -gt 0 ]] && break
  sleep 0.5
done
kill -KILL "${host_pid[sched]}"
unset 'host_pid[sched]'
sleep 2
if "$kiln" jobs >/dev/null 2>&1; then fail "the scheduler still answers after its host was killed"; fi
host_up sched
check_hosts sched
t0=$SECONDS
play reboot site.yml --limit scheduler
wait_jobs 180 "${crash_jobs[@]}" >"$dir/crash-jobs.out"
bad=$(grep -vc ' succeeded$' "$dir/crash-jobs.out" || true)
[[ $bad -eq 0 ]] || fail "$bad of 12 jobs did not succeed across the scheduler host's death: $(grep -v ' succeeded$' "$dir/crash-jobs.out")"
[[ $(job_field "$first_job" state) == succeeded ]] || fail "the first job ($first_job) is no longer known as succeeded"
step "the scheduler's host was killed with 12 jobs queued or running and booted again; site.yml --limit scheduler restarted it; all 12 succeeded ($((SECONDS - t0)) s after the boot), $first_job still known"

echo "1 passed, 0 failed ($(($(date +%s) - started)) s)"
