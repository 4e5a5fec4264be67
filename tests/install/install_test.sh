#!/usr/bin/env bash
# An installed kiln works away from its source tree: `cmake --install` into a
# temporary prefix, then, from a directory outside the checkout and with no
# KILN_SOURCE_DIR, `PREFIX/bin/kiln up` brings up a farm (scheduler, two
# workers, the base image made by PREFIX/libexec/kiln/make-base-image) and a
# job from PREFIX/share/kiln/examples builds on it, twice (the second time
# from cache).
#
#   tests/install/install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
prefix=$(mktemp -d /tmp/kiln-prefix-XXXXXX)
work=$(mktemp -d /tmp/kiln-installed-XXXXXX)
port=$((20000 + RANDOM % 20000))
cleanup() {
  local rc=$?
  set +e
  (cd "$work" && "$prefix/bin/kiln" down --dir "$work/farm" >/dev/null 2>&1) || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$prefix" "$work"
  exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -20 "$work"/farm/*.log >&2 2>/dev/null || true; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null || fail "cmake --install failed"
for f in bin/kiln bin/kiln-scheduler bin/kiln-worker libexec/kiln/kiln-local libexec/kiln/make-base-image \
         share/kiln/examples/hello.spec share/doc/kiln/README.md share/doc/kiln/security.md; do
  [[ -e $prefix/$f ]] || fail "$f is not installed"
done

cd "$work"
unset KILN_SOURCE_DIR KILN_HOME KILN_KEY KILN_SCHEDULER_KEY KILN_SCHEDULER
export PATH="$prefix/bin:/usr/sbin:/usr/bin:/sbin:/bin"
kiln up --detach --dir "$work/farm" --port "$port" --http off >"$work/up.out" 2>"$work/up.err" ||
  fail "kiln up: $(cat "$work/up.err")"
grep -q "farm up" "$work/up.out" || fail "no banner: $(cat "$work/up.out")"
[[ -d $work/.kiln/images/busybox ]] || fail "the base image was not made under ./.kiln"
export KILN_SCHEDULER=tcp://127.0.0.1:$port KILN_KEY=$work/farm/keys/admin.key KILN_SCHEDULER_KEY=$work/farm/keys/scheduler.pub
examples=$prefix/share/kiln/examples
kiln submit -f "$examples/hello.spec" "$examples/context" --follow >"$work/first.out" 2>&1 ||
  fail "the first build failed: $(cat "$work/first.out")"
kiln submit -f "$examples/hello.spec" "$examples/context" --follow >"$work/second.out" 2>&1 ||
  fail "the second build failed: $(cat "$work/second.out")"
grep -q "from cache" "$work/second.out" || fail "the second build was not served from cache: $(cat "$work/second.out")"
grep -q "saved as" "$work/second.out" && fail "the second build ran steps again: $(cat "$work/second.out")"
kiln down --dir "$work/farm" >/dev/null || fail "kiln down failed"
echo "ok: installed prefix $prefix ran a farm and a job from $work"
echo "1 passed, 0 failed"
