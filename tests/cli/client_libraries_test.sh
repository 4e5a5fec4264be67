#!/usr/bin/env bash
# The kiln client must stay lean (docs/performance.md): its start is paid by
# every farm command. It may load only the C library and libm; RocksDB, the
# builder's libraries, libarchive, libstdc++ and Kerberos stay out. kiln-local
# (the builder's half) links RocksDB, ZeroMQ and Cap'n Proto statically, and
# neither libcurl (opened when a pull or push first needs it) nor Kerberos.
# Usage: client_libraries_test.sh KILN_BINARY KILN_LOCAL_BINARY
set -euo pipefail
kiln=$1
kiln_local=$2
needed=$(readelf -d "$kiln" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
echo "kiln needs: $needed"
for lib in $needed; do
  case $lib in
    libc.so.6 | libm.so.6 | ld-linux-x86-64.so.2) ;;
    *) echo "FAIL: kiln loads $lib; link it statically into kiln or keep it in kiln-local" >&2; exit 1 ;;
  esac
done
# And the local half really is the one with the builder (so the check above
# cannot pass by kiln-local being empty): RocksDB is inside it, linked
# statically like ZeroMQ and Cap'n Proto (a cached `kiln build` is mostly
# start-up), so it loads none of them as shared libraries.
grep -qa 'rocksdb' "$kiln_local" || { echo "FAIL: kiln-local does not contain RocksDB?" >&2; exit 1; }
if grep -qa 'rocksdb' "$kiln"; then echo "FAIL: kiln contains RocksDB" >&2; exit 1; fi
local_needed=$(readelf -d "$kiln_local" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
echo "kiln-local needs: $local_needed"
for lib in $local_needed; do
  case $lib in
    librocksdb* | libzmq* | libcapnp* | libkj*)
      echo "FAIL: kiln-local loads $lib as a shared library; it is meant to be linked in" >&2; exit 1 ;;
    libcurl* | libgssapi*)
      echo "FAIL: kiln-local loads $lib at start; libcurl is opened at its first use (cli/lazy_curl.cc)," \
        "and ZeroMQ's GSS-API is stubbed (cli/no_gssapi.cc)" >&2; exit 1 ;;
  esac
done
# kiln runs kiln-local for a local command: `kiln df --help` is kiln-local's help.
help=$("$kiln" df --help) || { echo "FAIL: kiln df --help failed: $help" >&2; exit 1; }
grep -q -- "--store" <<<"$help" || { echo "FAIL: kiln df --help did not reach kiln-local" >&2; exit 1; }
echo ok
