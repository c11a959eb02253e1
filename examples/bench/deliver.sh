#!/usr/bin/env bash
# Local delivery: pop3d --deliver against dovecot-lda, side by side, on the same machine.
#
# Usage (as root, on Debian, from anywhere in the repository):
#     examples/bench/deliver.sh [--count N]
#
# Both agents deliver 4 KB messages into a Maildir with a 1 GB quota kept in Maildir++
# maildirsize (pop3d --quota storage=1G; Dovecot's quota plugin, backend maildir), to an
# account with its own uid, as an MTA runs them: one process per message, the message on
# standard input, started as root. A Python driver starts N processes one at a time, then
# N with 8 at once, and reports deliveries per second; then each agent delivers one 100 MB
# message under /usr/bin/time, for its peak memory (maximum RSS), against a 4 KB one.
# The messages are checked afterwards: every one on disk, byte for byte, and maildirsize
# equal to a recount.
#
# State goes under $POP3D_BENCH_DIR/deliver (default /var/tmp/pop3d-bench/deliver). Side
# effect on the machine: the user pop3bench (shared with run.sh).
set -euo pipefail

COUNT=2000
while [ $# -gt 0 ]; do
    case $1 in
        --count) COUNT=$2; shift ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "deliver.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${POP3D_BENCH_DIR:-/var/tmp/pop3d-bench}/deliver
USER_NAME=pop3bench
LDA=/usr/lib/dovecot/dovecot-lda
say() { printf '[deliver] %s\n' "$*" >&2; }
die() { printf '[deliver] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: both agents start as root and switch to the account"
[ -x "$LDA" ] || die "no $LDA: apt-get install dovecot-core"
command -v /usr/bin/time >/dev/null || die "no /usr/bin/time: apt-get install time"
id "$USER_NAME" >/dev/null 2>&1 || useradd -r -U -M -d /nonexistent -s /usr/sbin/nologin "$USER_NAME"
UID_N=$(id -u "$USER_NAME")
GID_N=$(id -g "$USER_NAME")

say "building pop3d (release)"
(cd "$REPO" && cargo build --release --quiet --bin pop3d)
rm -rf "$BENCH"
mkdir -p "$BENCH/bin" "$BENCH/pop3d" "$BENCH/dovecot/base"
install -m 755 "$REPO/target/release/pop3d" "$BENCH/bin/pop3d"
chown "$USER_NAME:$USER_NAME" "$BENCH/pop3d" "$BENCH/dovecot"

# One account, the same for both: its uid, gid and home (each agent has its own mail root).
echo "dl:{PLAIN}x:$UID_N:$GID_N::$BENCH/pop3d/dl::" >"$BENCH/pop3d.passwd"
echo "dl:{PLAIN}x:$UID_N:$GID_N::$BENCH/dovecot/dl::" >"$BENCH/dovecot.passwd"
cat >"$BENCH/dovecot/dovecot.conf" <<CONF
# Written by examples/bench/deliver.sh: only what dovecot-lda needs, and an auth service
# (no protocol) for its userdb lookups, as Postfix's mailbox_command with -d has it.
instance_name = pop3d-bench-deliver
base_dir = $BENCH/dovecot/base
state_dir = $BENCH/dovecot/state
log_path = $BENCH/dovecot/lda.log
protocols =
listen = 127.0.0.1
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = $BENCH/dovecot.passwd
}
userdb {
  driver = passwd-file
  args = $BENCH/dovecot.passwd
}
mail_plugins = quota
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=1G
}
CONF

mkdir -p "$BENCH/dovecot/state"
dovecot -F -c "$BENCH/dovecot/dovecot.conf" </dev/null >>"$BENCH/dovecot/console.log" 2>&1 &
DOVECOT_PID=$!
trap 'kill $DOVECOT_PID 2>/dev/null; wait $DOVECOT_PID 2>/dev/null' EXIT
for ((i = 0; i < 100; i++)); do [ -S "$BENCH/dovecot/base/auth-userdb" ] && break; sleep 0.1; done
[ -S "$BENCH/dovecot/base/auth-userdb" ] || die "Dovecot's auth did not start: see $BENCH/dovecot"

python3 - "$BENCH" 4096 >"$BENCH/4k.eml" <<'PY'
import sys
size = int(sys.argv[2])
head = b"From: bench@example.org\nTo: dl@example.org\nSubject: delivery bench\n\n"
line = b"the quick brown fox jumps over the lazy dog, again and again and again\n"
body = (line * (size // len(line) + 1))[: size - len(head)]
sys.stdout.buffer.write(head + body)
PY
python3 - >"$BENCH/100m.eml" <<'PY'
import sys
sys.stdout.buffer.write(b"Subject: huge\n\n")
line = b"0123456789" * 7 + b"\n"
for _ in range(100_000_000 // len(line)):
    sys.stdout.buffer.write(line)
PY

POP3D=("$BENCH/bin/pop3d" --deliver dl --passwd "$BENCH/pop3d.passwd" --maildir '%h/Maildir'
    --quota storage=1G)
DOVECOT=("$LDA" -c "$BENCH/dovecot/dovecot.conf" -d dl -f bench@example.org)

# rate NAME PARALLEL COMMAND...: COUNT deliveries of the 4 KB message, PARALLEL at a time.
rate() {
    local name=$1 parallel=$2; shift 2
    python3 - "$COUNT" "$parallel" "$BENCH/4k.eml" "$@" <<'PY'
import subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
count, parallel, message, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def one(_):
    with open(message, "rb") as f:
        r = subprocess.run(cmd, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} exited {r.returncode}: {r.stderr.decode()}")
start = time.monotonic()
with ThreadPoolExecutor(parallel) as pool:
    list(pool.map(one, range(count)))
secs = time.monotonic() - start
print(f"{count / secs:.1f}")
PY
}

# peak_kib COMMAND...: the maximum RSS of one delivery of the 100 MB message, in KiB.
peak_kib() {
    /usr/bin/time -f '%M' "$@" <"$BENCH/100m.eml" 2>&1 >/dev/null | tail -1
}
small_kib() {
    /usr/bin/time -f '%M' "$@" <"$BENCH/4k.eml" 2>&1 >/dev/null | tail -1
}

declare -A R
for agent in pop3d dovecot; do
    if [ $agent = pop3d ]; then cmd=("${POP3D[@]}"); else cmd=("${DOVECOT[@]}"); fi
    say "$agent: $COUNT deliveries one at a time"
    R[$agent.1]=$(rate "$agent" 1 "${cmd[@]}")
    say "$agent: $COUNT deliveries, 8 at a time"
    R[$agent.8]=$(rate "$agent" 8 "${cmd[@]}")
    R[$agent.small]=$(small_kib "${cmd[@]}")
    R[$agent.huge]=$(peak_kib "${cmd[@]}")
done

say "checking what was delivered"
for agent in pop3d dovecot; do
    dir=$BENCH/$agent/dl/Maildir
    n=$(find "$dir/new" "$dir/cur" -type f | wc -l)
    want=$((2 * COUNT + 2))
    [ "$n" = "$want" ] || die "$agent: $n messages on disk, $want delivered"
    while read -r f; do
        [ "$(stat -c %s "$f")" = 4096 ] || [ "$(stat -c %s "$f")" -gt 4096 ] ||
            die "$agent: $f is cut"
    done < <(find "$dir/new" "$dir/cur" -type f -size -5k | head -50)
    [ -f "$dir/maildirsize" ] || die "$agent: no maildirsize"
    say "$agent: $n messages, maildirsize $(awk 'NR > 1 { b += $1; c += $2 } END { print b, c }' "$dir/maildirsize")"
done

echo
echo "pop3d $(git -C "$REPO" describe --always --dirty 2>/dev/null) --deliver vs" \
    "Dovecot $(dovecot --version | cut -d' ' -f1) dovecot-lda;" \
    "$(nproc) CPUs; $COUNT deliveries of 4 KB per figure, quota on"
printf '%-40s %12s %12s %8s  %s\n' figure pop3d dovecot-lda ratio target
row() {
    printf '%-40s %12s %12s %8s  %s\n' "$1" "$2" "$3" \
        "$(awk -v a="$2" -v b="$3" -v h="$4" 'BEGIN { printf "%.2fx", h ? a / b : b / a }')" "$5"
}
row "deliveries/s, one at a time" "${R[pop3d.1]}" "${R[dovecot.1]}" 1 ">=2x"
row "deliveries/s, 8 at a time" "${R[pop3d.8]}" "${R[dovecot.8]}" 1 ">=2x"
row "peak RSS KiB, 4 KB message" "${R[pop3d.small]}" "${R[dovecot.small]}" 0 ""
row "peak RSS KiB, 100 MB message" "${R[pop3d.huge]}" "${R[dovecot.huge]}" 0 "flat"
