# A become method for tests/ops/deploy_test.sh: every task of an inventory
# host runs inside that test "host", whose PID 1 is kiln_test_host_pid: its
# PID, mount, UTS and network namespaces (its own /etc, /usr, /var and /run
# as overlays of this machine's, its own address), entered with nsenter. With
# the local connection this makes each namespace set a separate machine to
# the playbooks: packages, users, keys and daemons land on that host only.
# The test sets ANSIBLE_BECOME_ALLOW_SAME_USER (root becoming root would
# otherwise be skipped) and checks that each host answers with its own name
# before any playbook runs.
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
    name: kiln_test_host
    short_description: Run tasks inside a kiln test host (nsenter into its namespaces)
    description:
        - Wraps each command in C(nsenter --target PID --mount --uts --net --pid); used only by kiln's deployment test.
    author: kiln
    options:
        become_user:
            description: Ignored (tasks run as the controller's user, root).
            default: root
            vars:
                - name: ansible_become_user
        kiln_test_host_pid:
            description: PID 1 of the test host, as this machine sees it.
            required: true
            vars:
                - name: kiln_test_host_pid
"""

from ansible.errors import AnsibleError
from ansible.plugins.become import BecomeBase


class BecomeModule(BecomeBase):
    name = "kiln_test_host"

    def build_become_command(self, cmd, shell):
        super(BecomeModule, self).build_become_command(cmd, shell)
        if not cmd:
            return cmd
        pid = str(self.get_option("kiln_test_host_pid"))
        if not pid.isdigit():
            raise AnsibleError("kiln_test_host: kiln_test_host_pid must be a process id, not %r" % pid)
        return "nsenter --target %s --mount --uts --net --pid %s" % (pid, self._build_success_command(cmd, shell))
