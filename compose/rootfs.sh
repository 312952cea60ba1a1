#!/bin/sh
# usage: compose/rootfs.sh DEST BINARY…
#
# Builds in DEST the minimal root filesystem a `FROM scratch` image needs to run the dynamically
# linked BINARYs (not copied themselves): the shared libraries `ldd` lists and the dynamic loader,
# at their own paths; CA certificates (for HTTPS to LLM providers); /etc/passwd and /etc/group with
# the unprivileged users `nonroot` (65532) and `nobody` (65534); a world-writable /tmp and /data.
# No shell, no package manager, no toolchain. Used by compose/Dockerfile (in the builder stage)
# and by ops/compose-e2e.sh (on the host, which can build no image from a registry base).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 DEST BINARY..." >&2; exit 2; }
dest=$1
shift
mkdir -p "$dest/etc/ssl/certs" "$dest/tmp" "$dest/data" "$dest/home/nonroot"
chmod 1777 "$dest/tmp" "$dest/data"
for bin in "$@"; do
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)"
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    [ -e "$dest$lib" ] || cp -L --parents "$lib" "$dest"
  done
done
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [ -f "$ca" ]; then
    cp -L "$ca" "$dest/etc/ssl/certs/ca-certificates.crt"
    break
  fi
done
cat >"$dest/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$dest/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
printf 'hosts: files dns\n' >"$dest/etc/nsswitch.conf"
