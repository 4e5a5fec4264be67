#!/bin/sh
# Prints who and where it runs; copied from the build context with its
# executable bit, which the copy keeps (and which is part of the step id).
set -eu
echo "hello.sh running as uid $(id -u) in $(pwd)"
echo "greeting: $(cat /app/greeting.txt)"
