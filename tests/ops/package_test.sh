#!/usr/bin/env bash
# The Debian package (docs/operations.md, "Packages"): scripts/package makes
# kiln_VERSION_ARCH.deb; its contents and declared dependencies are checked
# with dpkg-deb; its systemd units pass `systemd-analyze verify` with no
# complaint, with the package's programs where the units name them; and
# `apt-get install ./kiln_*.deb` on a clean Debian 12 (debootstrap minbase,
# tests/ops/make-clean-root) brings every dependency and gives programs that
# run: --version, the kiln user for the scheduler, and a job through an
# installed scheduler and worker (--fake-build) in that root.
#
#   tests/ops/package_test.sh BUILD_DIR SOURCE_DIR
# Needs root, dpkg-dev, systemd (systemd-analyze), debootstrap and the Debian
# archive (for the clean root and the dependencies apt brings into it).
set -euo pipefail
shopt -s inherit_errexit

build=$(cd "$1" && pwd)
source=$(cd "$2" && pwd)
dir=$(mktemp -d /tmp/kiln-package-XXXXXX)
cleanup() {
  local rc=$?
  set +e
  grep -o " $dir[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf "$dir"
  exit "$rc"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "ok: $*"; }

# --- the package
deb=$("$source/scripts/package" --build-dir "$build" --out "$dir/dist" 2>"$dir/package.log") ||
  fail "scripts/package: $(cat "$dir/package.log")"
[[ $(basename "$deb") == kiln_0.1.0_$(dpkg --print-architecture).deb ]] || fail "unexpected package name $deb"
[[ $(dpkg-deb -f "$deb" Package) == kiln ]] || fail "the package is not named kiln"
depends=$(dpkg-deb -f "$deb" Depends)
# The libraries the programs link (from dpkg-shlibdeps) and what they run.
for d in libzmq5 librocksdb7.8 libcapnp-0.9.2 libspdlog1.10 libarchive13 libgit2 libssl3 'runc | crun' busybox-static passwd; do
  [[ $depends == *"$d"* ]] || fail "Depends does not name $d: $depends"
done
dpkg-deb -c "$deb" | awk '{print $1, $NF}' >"$dir/contents"
for f in ./usr/bin/kiln ./usr/bin/kiln-scheduler ./usr/bin/kiln-worker ./usr/libexec/kiln/kiln-local ./usr/libexec/kiln/make-base-image \
  ./usr/libexec/kiln/kiln-service; do
  grep -q "^-rwxr-xr-x $f\$" "$dir/contents" || fail "$f is not in the package as an executable"
done
for f in ./usr/lib/systemd/system/kiln-scheduler.service ./usr/lib/systemd/system/kiln-worker@.service \
  ./usr/lib/sysusers.d/kiln.conf ./usr/share/doc/kiln/operations.md ./usr/share/doc/kiln/ha.md \
  ./usr/share/doc/kiln/README.md ./usr/share/kiln/examples/hello.spec; do
  grep -q " $f\$" "$dir/contents" || fail "$f is not in the package"
done
control=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t) || fail "cannot list the control archive of $deb"
grep -qx './postinst' <<<"$control" || fail "no postinst (it makes the kiln user)"
step "$(basename "$deb"): programs, units, docs; Depends: $depends"

# --- the units, as installed: the package's /usr over this machine's
mkdir -p "$dir/x"
dpkg-deb -x "$deb" "$dir/x"
units=$dir/x/usr/lib/systemd/system
for u in kiln-scheduler.service kiln-worker@.service; do
  grep -qx 'Restart=on-failure' "$units/$u" || fail "$u: no Restart=on-failure"
  grep -q '^EnvironmentFile=-/etc/kiln/' "$units/$u" || fail "$u: no EnvironmentFile in /etc/kiln"
  grep -q '^StateDirectory=kiln/' "$units/$u" || fail "$u: no StateDirectory"
done
grep -qx 'User=kiln' "$units/kiln-scheduler.service" || fail "the scheduler does not run as kiln"
grep -qx 'ProtectSystem=strict' "$units/kiln-scheduler.service" || fail "the scheduler lacks ProtectSystem=strict"
# A worker's SIGTERM reaches kiln-worker alone, which stops its builds.
grep -qx 'KillMode=mixed' "$units/kiln-worker@.service" || fail "the worker's KillMode is not mixed"
unshare -m sh -c "mount -t overlay overlay -o lowerdir=$dir/x/usr:/usr /usr &&
  systemd-analyze verify /usr/lib/systemd/system/kiln-scheduler.service /usr/lib/systemd/system/kiln-worker@.service &&
  systemd-analyze security --offline=yes /usr/lib/systemd/system/kiln-scheduler.service" >"$dir/verify.out" 2>"$dir/verify.err" ||
  fail "systemd-analyze failed: $(cat "$dir/verify.err" "$dir/verify.out")"
# verify only warns (exit 0) about a directive it cannot parse: any word is a failure.
[[ ! -s $dir/verify.err ]] || fail "systemd-analyze verify complained: $(cat "$dir/verify.err")"
exposure=$(grep -o 'Overall exposure level for kiln-scheduler.service: [0-9.]*' "$dir/verify.out" | awk '{print $NF}')
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' ||
  fail "the scheduler's unit is less hardened than before: exposure $exposure (systemd-analyze security), expected at most 2.0"
step "units pass systemd-analyze verify; scheduler exposure $exposure (systemd-analyze security --offline)"

# --- a clean Debian 12 installs it with apt and runs it
clean=$("$source/tests/ops/make-clean-root") || fail "tests/ops/make-clean-root failed"
root=$dir/root
mkdir -p "$root" "$dir/up" "$dir/work"
mount -t overlay overlay -o "lowerdir=$clean,upperdir=$dir/up,workdir=$dir/work" "$root"
for m in dev proc sys; do mount --rbind "/$m" "$root/$m" && mount --make-rslave "$root/$m"; done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# Downloaded packages are kept between runs (apt checks them against the lists).
mkdir -p /var/cache/kiln-test/apt-archives/partial
mount --bind /var/cache/kiln-test/apt-archives "$root/var/cache/apt/archives"
chroot "$root" dpkg-query -W kiln >/dev/null 2>&1 && fail "the clean root has kiln installed"
chroot "$root" dpkg-query -W librocksdb7.8 >/dev/null 2>&1 && fail "the clean root already has librocksdb7.8: not clean"
cp "$deb" "$root/tmp/"
if ! chroot "$root" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/$(basename "$deb")" \
  >"$dir/apt.log" 2>&1; then
  fail "apt-get install ./$(basename "$deb") in a clean root: $(tail -n 20 "$dir/apt.log")"
fi
for p in kiln kiln-scheduler kiln-worker; do
  out=$(chroot "$root" "/usr/bin/$p" --version 2>&1) || fail "$p --version failed in the clean root: $out"
  [[ $out == "$p 0.1.0" ]] || fail "$p --version printed: $out"
done
chroot "$root" id -u kiln >/dev/null || fail "installing the package made no kiln user"
[[ $(chroot "$root" getent passwd kiln | cut -d: -f7) == /usr/sbin/nologin ]] || fail "the kiln user has a login shell"
chroot "$root" test -x /bin/busybox || fail "busybox-static did not come with the package"
# A scheduler and a fake-build worker of the installed package, on a private
# loopback, and a job through them.
unshare --net --fork sh -c "ip link set lo up && chroot $root sh -ec '
  mkdir /tmp/ctx && cd /tmp/ctx && export KILN_HOME=/tmp/kiln
  kiln-scheduler --listen tcp://127.0.0.1:7800 --listen-workers tcp://127.0.0.1:7801 --http off >/tmp/sched.log 2>&1 &
  s=\$!
  kiln-worker --name w1 --scheduler tcp://127.0.0.1:7801 --fake-build=0 >/tmp/worker.log 2>&1 &
  w=\$!
  printf \"((from busybox)\\n (run (shell \\\"true\\\")))\\n\" >/tmp/j.spec
  kiln submit -f /tmp/j.spec --scheduler tcp://127.0.0.1:7800 --follow
  kill \$w \$s; wait'" >"$dir/job.out" 2>&1 || fail "a job through the installed programs failed: $(cat "$dir/job.out"; tail "$root"/tmp/*.log)"
grep -q 'succeeded on w1' "$dir/job.out" || fail "the job did not succeed on w1: $(cat "$dir/job.out")"
step "apt-get install ./$(basename "$deb") on a clean Debian 12 brought $(grep -c '^Setting up' "$dir/apt.log") packages; the programs run; a job went through them"
echo "1 passed, 0 failed"
