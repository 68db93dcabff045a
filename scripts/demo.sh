#!/bin/sh
# One command for a fresh Debian 12 machine: install what is missing, build,
# and show sysgate at work on a real program.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then scripts/install-deps.sh; else sudo scripts/install-deps.sh; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
echo "built: $(build/sysgate --version)"

audit=$(mktemp /tmp/sysgate-demo.XXXXXX)
trap 'rm -f "$audit"' EXIT
echo
echo "\$ sysgate run -r /usr -r /etc --hostname demo-box --max-procs 8 --trap openat \\"
echo "      --audit $audit -- sh -c 'uname -n; cat /etc/hostname; cat /root/.profile'"
status=0
env -i PATH=/usr/bin:/bin build/sysgate run -r /usr -r /lib -r /lib64 -r /bin -r /etc --hostname demo-box --max-procs 8 \
	--trap openat --audit "$audit" -- \
	sh -c 'uname -n; cat /etc/hostname; cat /root/.profile' || status=$?
echo "exit status: $status (cat was refused /root by Landlock)"
echo
echo "audit log: $(wc -l <"$audit") JSON records; the files the sandbox opened:"
grep -o '"paths":{"arg1":"[^"]*"}' "$audit" | sed 's/.*:"\(.*\)"}/  \1/' | sort | uniq -c
echo "uname answered by the builtin: $(grep -o '"syscall":"uname"[^}]*"decided_by":"[a-z-]*"' "$audit" |
	sed 's/.*"decided_by":"//; s/"//' | sort -u)"

echo
echo "\$ sysgate run --worker 'build/examples/sysgate-audit-worker' \\"
echo "      --worker 'build/examples/sysgate-path-deny-worker /etc/shadow*' -- sh -c 'cat /etc/hostname; cat /etc/shadow'"
echo "  (two sandboxed handler workers: one prints every path the command opens, on sysgate's"
echo "   stderr; the other fails opens of /etc/shadow* with EPERM)"
env -i PATH=/usr/bin:/bin build/sysgate run --worker build/examples/sysgate-audit-worker \
	--worker 'build/examples/sysgate-path-deny-worker /etc/shadow*' -- \
	sh -c 'cat /etc/hostname; cat /etc/shadow' 2>&1 | grep -v 'locale\|gconv' || true
