#!/usr/bin/env bash
# The Ansible roles and playbooks (ansible/) checked without a farm:
#   tests/ops/ansible_check.sh lint SOURCE_DIR     ansible-lint, production profile, no finding allowed
#   tests/ops/ansible_check.sh syntax SOURCE_DIR   ansible-playbook --syntax-check of every playbook
# Offline: ansible-lint runs with --offline (no Galaxy), from Debian's package.
set -euo pipefail
shopt -s inherit_errexit
[[ $# -eq 2 ]] || { echo "usage: tests/ops/ansible_check.sh lint|syntax SOURCE_DIR" >&2; exit 2; }
cd "$2/ansible"
home=$(mktemp -d /tmp/kiln-ansible-XXXXXX)
trap 'rm -rf "$home"' EXIT
# Ansible's and ansible-lint's caches and temporary files go here, not to ~.
export HOME=$home ANSIBLE_LOCAL_TEMP=$home/tmp ANSIBLE_NOCOLOR=1 ANSIBLE_CONFIG=$PWD/ansible.cfg
mapfile -t playbooks < <(ls ./*.yml)
[[ ${#playbooks[@]} -ge 3 ]] || { echo "FAIL: found only ${playbooks[*]}" >&2; exit 1; }
case $1 in
  lint)
    ansible-lint --version
    if ! ansible-lint --offline --profile production --strict --nocolor >"$home/lint.out" 2>&1; then
      cat "$home/lint.out" >&2
      echo "FAIL: ansible-lint --profile production found problems (above)" >&2
      exit 1
    fi
    cat "$home/lint.out"
    # Every role variable is set in defaults/main.yml and described in
    # meta/argument_specs.yml (entry point main), and nothing more in either.
    /usr/bin/python3 - <<'PY'
import glob, sys, yaml
bad = []
for role in sorted(glob.glob("roles/*/")):
    defaults = set(yaml.safe_load(open(role + "defaults/main.yml")) or {})
    spec = yaml.safe_load(open(role + "meta/argument_specs.yml"))["argument_specs"]["main"]
    described = {k for k, v in (spec.get("options") or {}).items() if v.get("description")}
    for name in sorted(defaults - described):
        bad.append(f"{role}: {name} is in defaults/main.yml but not described in meta/argument_specs.yml")
    for name in sorted(described - defaults):
        bad.append(f"{role}: {name} is described in meta/argument_specs.yml but not in defaults/main.yml")
if bad:
    print("FAIL:", *bad, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("ok: every role variable is in defaults/main.yml and meta/argument_specs.yml")
PY
    echo "ok: ansible-lint --profile production --strict: no findings in roles and ${playbooks[*]}"
    ;;
  syntax)
    for p in "${playbooks[@]}"; do
      ansible-playbook --syntax-check -i inventory/example/hosts.ini "$p" >"$home/syntax.out" 2>&1 || {
        cat "$home/syntax.out" >&2
        echo "FAIL: ansible-playbook --syntax-check $p" >&2
        exit 1
      }
      echo "ok: ansible-playbook --syntax-check $p"
    done
    ;;
  *) echo "usage: tests/ops/ansible_check.sh lint|syntax SOURCE_DIR" >&2; exit 2 ;;
esac
echo "1 passed, 0 failed"
