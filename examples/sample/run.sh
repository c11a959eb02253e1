#!/bin/sh
# Starts pop3d on 127.0.0.1:1110 with a copy of the sample mailboxes: no root needed, and the
# source tree is left as it is. Extra arguments go to pop3d. Stop it with Ctrl-C.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-sample.XXXXXX")
cp -R "$here/mail" "$here/passwd" "$work/"
for box in "$work"/mail/*/Maildir; do mkdir -p "$box/new" "$box/cur" "$box/tmp"; done
cd "$here/../.."
cargo build --quiet
echo "pop3d: sample mail copied to $work" >&2
echo "pop3d: try  curl -u alice:alicepw pop3://127.0.0.1:1110/1" >&2
# pop3d refuses to serve as root unless told; a throwaway sample on loopback may.
as_root=
[ "$(id -u)" = 0 ] && as_root=--allow-root
exec target/debug/pop3d --listen 127.0.0.1:1110 --passwd "$work/passwd" \
    --maildir "$work/mail/%n/Maildir" --state-dir "$work/state" $as_root "$@"
