#!/usr/bin/env bash
# pop3d against Dovecot (and, in inetd mode, against popa3d), side by side on loopback.
#
# Usage (as root, on Debian, from anywhere in the repository):
#     examples/bench/run.sh [--quick] [--skip-inetd] [--rounds N]
#
# What it does, in one run:
#   1. builds pop3d, the load generator and the slow-client attack (release);
#   2. generates the data sets once with make-maildir.py (next to this script), and gives
#      each server its own copy of the very same files;
#   3. writes one passwd file that both servers read unchanged: bsmallNN with {PLAIN},
#      hsmallNN with {SHA512-CRYPT}, and the big, 10k, 100 MB and probe (one message)
#      mailboxes with {PLAIN}; and a copy with N users u00001... more, for the burst;
#   4. starts Dovecot (its default service settings, limits raised for load) and pop3d on
#      127.0.0.1, both running mail access as the user pop3bench;
#   5. holds 100 idle logged-in sessions on each, freshly started, for memory per session;
#      then, on fresh instances of each, opens N idle sessions in one burst (N from the
#      open-file hard limit, at most 10,000, for pop3d; 1,000 for Dovecot) as users whose
#      Maildirs do not exist yet, and runs short sessions beside them;
#   6. runs small ({PLAIN} and {SHA512-CRYPT}), keep and retr against both servers in
#      alternation (pop3d first in odd rounds, Dovecot first in even ones), median of the rounds;
#      times PASS to the end of LIST+UIDL on 10,000 messages, first and repeat login, with and
#      without ,W= in the names; samples RSS while a 100 MB message is retrieved;
#      memory is always the sum of RSS over all of a server's processes;
#   7. runs examples/starve.rs (500 slow connections from 100 addresses, a real session
#      once a second) for 30 s against fresh instances of each with a pool of 32;
#   8. runs short sessions over implicit TLS (TLS 1.3) against both, each client doing full
#      handshakes, then resuming its last session (loadgen --resume);
#   9. runs pop3d --inetd and popa3d under the same super-server (systemd-socket-activate)
#      with the same SHA512-CRYPT hash (popa3d reads it from /etc/shadow, and serves the same
#      messages from an mbox, its only format), unless --skip-inetd;
#  10. on mbox spools in /var/mail, as system accounts with the same SHA512-CRYPT hash: pop3d
#      (--shadow --mbox, standalone and under the super-server) against popa3d and GNU
#      Mailutils: PASS to the end of UIDL on 10,000 messages, and RETR of 1-10 MB messages
#      at 8 clients (unless --skip-inetd, which also skips this);
#  11. prints a table: figure, pop3d, the other server, ratio, target.
#
# Everything listens on 127.0.0.1 only. State goes under $POP3D_BENCH_DIR (default
# /var/tmp/pop3d-bench). Every server started here is stopped by its PID on exit.
# Side effects on the machine: a user pop3bench and users ismall01..32, m10k and mbig01..08
# (for popa3d and Mailutils, which know only system accounts), their /var/mail mboxes, and
# /etc/pam.d/popa3d if missing.
set -euo pipefail

ROUNDS=3
SECS=5          # seconds per small/keep run
RETR_SECS=8     # seconds per retr run
BURST_HOLD=10   # seconds the burst of idle sessions is held
DOVECOT_BURST=1000  # Dovecot's burst: ~5 MB and two processes per session
STARVE_SECS=30  # seconds of slow clients against each pool of 32
INETD=1
while [ $# -gt 0 ]; do
    case $1 in
        --quick) ROUNDS=1; SECS=2; RETR_SECS=3; DOVECOT_BURST=200; STARVE_SECS=10 ;;
        --rounds) ROUNDS=$2; shift ;;
        --skip-inetd) INETD=0 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

REPO=$(cd "$(dirname "$0")/../.." && pwd)
MAKE_MAILDIR=$REPO/examples/bench/make-maildir.py
BENCH=${POP3D_BENCH_DIR:-/var/tmp/pop3d-bench}
PASS=benchpass
USER_NAME=pop3bench
DOVECOT_PORT=21110
POP3D_PORT=21111
INETD_PORT=21112
POPA3D_PORT=21113
BURST_POP3D_PORT=21114
BURST_DOVECOT_PORT=21115
STARVE_POP3D_PORT=21116
STARVE_DOVECOT_PORT=21117
TLS_POP3D_PORT=21118        # plain; its implicit-TLS port is the next
TLS_DOVECOT_PORT=21120      # plain; its implicit-TLS port is the next
MBOX_POP3D_PORT=21122
MBOX_INETD_PORT=21123
MBOX_POPA3D_PORT=21124
MBOX_MAILUTILS_PORT=21125

say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ prerequisites
[ "$(id -u)" = 0 ] || die "run as root: it starts Dovecot and creates the pop3bench user"
[ -f "$MAKE_MAILDIR" ] || die "no data generator: $MAKE_MAILDIR is missing"
command -v cargo >/dev/null ||
    die "cargo is not on PATH: install Rust; sudo resets PATH: sudo env PATH=\"\$PATH\" $0"
# The Debian packages this needs, each for the programs it gives. No Dovecot service has to
# run: the script starts its own instance.
missing=()
need() {
    local package=$1 program
    shift
    for program; do
        command -v "$program" >/dev/null || { missing+=("$package"); return; }
    done
}
need dovecot-pop3d dovecot /usr/lib/dovecot/pop3   # the peer (dovecot-core has no pop3)
need python3 python3                                # the data generator
need openssl openssl                                # SHA512-CRYPT hashes
need procps ps                                      # RSS of each server's processes
need util-linux setpriv                             # pop3d runs as pop3bench
need passwd useradd usermod                         # the pop3bench and ismallNN users
[ $INETD = 0 ] || need systemd systemd-socket-activate   # the inetd super-server
[ $INETD = 0 ] || need mailutils-pop3d popauth      # GNU Mailutils, the other mbox peer
[[ " ${missing[*]} " != *" systemd "* ]] || missing+=("(or run with --skip-inetd)")
[ ${#missing[@]} = 0 ] || die "missing Debian packages: apt-get install ${missing[*]}"
# Every program started here (loadgen above all: one descriptor per client) may use as many
# open files as the hard limit allows.
ulimit -n "$(ulimit -Hn)"

say "building pop3d, the load generator and the slow-client attack (release)"
(cd "$REPO" && cargo build --release --quiet --bin pop3d --example loadgen --example starve)
mkdir -p "$BENCH/bin"
# A copy, so that a rebuild during the run changes nothing, and pop3bench can run it.
install -m 755 "$REPO/target/release/pop3d" "$BENCH/bin/pop3d"
install -m 755 "$REPO/target/release/examples/loadgen" "$BENCH/bin/loadgen"
install -m 755 "$REPO/target/release/examples/starve" "$BENCH/bin/starve"
LOADGEN=$BENCH/bin/loadgen
STARVE=$BENCH/bin/starve

# ------------------------------------------------------------------ cleanup
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# stop PID: SIGTERM, wait up to 5 s, then SIGKILL; forget it.
stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local kept=()
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]+"${kept[@]}"}")
}

# port_free PORT: true if nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    local port=$1 i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# rss_kib PID: the sum of VmRSS over PID and all its descendants, in KiB.
rss_kib() {
    ps -e -o pid=,ppid=,rss= | awk -v root="$1" '
        { parent[$1] = $2; rss[$1] = $3 }
        END {
            total = 0
            for (p in rss) {
                q = p
                while (q != root && q in parent && q != 0 && q != 1) q = parent[q]
                if (q == root) total += rss[p]
            }
            print total
        }'
}

# ------------------------------------------------------------------ data
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd -M -d /nonexistent -s /usr/sbin/nologin "$USER_NAME"
fi
UID_N=$(id -u "$USER_NAME")
GID_N=$(id -g "$USER_NAME")

# make_set NAME ARGS...: one data set, generated again only when the generator or its
# arguments change (.done holds both).
make_set() {
    local name=$1 stamp; shift
    stamp="$(sha256sum <"$MAKE_MAILDIR" | cut -c1-16) $*"
    if [ "$(cat "$BENCH/data/$name/.done" 2>/dev/null)" != "$stamp" ]; then
        say "generating data set $name"
        python3 "$MAKE_MAILDIR" --out "$BENCH/data/$name" --force "$@" >&2
        echo "$stamp" >"$BENCH/data/$name/.done"
    fi
}
make_set small200 --count 200 --seed 2 --profile small
make_set big --count 5 --seed 3 --profile big
make_set 10k --count 10000 --seed 4 --profile small
# The same 10,000 messages under names without ,W= (as Postfix or maildrop name them), so that
# a server has to read a message to know its size.
if ! cmp -s "$BENCH/data/10k/.done" "$BENCH/data/10k-nw/.done"; then
    say "deriving data set 10k-nw"
    rm -rf "$BENCH/data/10k-nw"
    mkdir -p "$BENCH/data/10k-nw/Maildir/"{cur,new,tmp}
    for f in "$BENCH/data/10k/Maildir/new/"*; do
        b=${f##*/}
        ln "$f" "$BENCH/data/10k-nw/Maildir/new/${b%,W=*}"
    done
    cp "$BENCH/data/10k/.done" "$BENCH/data/10k-nw/.done"
fi
make_set huge --count 1 --seed 5 --profile big --min-size 100000000 --max-size 100000000 --no-mbox
make_set one --count 1 --seed 6 --profile small --no-mbox

# One passwd file for both servers (no home field: each server has its own mail template).
sha512() { openssl passwd -6 -salt "$(printf 'pop3bench%s' "$1" | sha256sum | cut -c1-16)" "$PASS"; }
declare -A HASH
{
    for i in $(seq -f '%02g' 1 100); do echo "bsmall$i:{PLAIN}$PASS"; done
    for i in $(seq -f '%02g' 1 32); do
        HASH[hsmall$i]=$(sha512 "hsmall$i")
        echo "hsmall$i:{SHA512-CRYPT}${HASH[hsmall$i]}"
    done
    for i in $(seq -f '%02g' 1 32); do
        HASH[ismall$i]=$(sha512 "ismall$i")
        echo "ismall$i:{SHA512-CRYPT}${HASH[ismall$i]}"
    done
    for i in $(seq -f '%02g' 1 8); do echo "bbig$i:{PLAIN}$PASS"; done
    echo "b10k:{PLAIN}$PASS"
    echo "b10kn:{PLAIN}$PASS"
    echo "bhuge:{PLAIN}$PASS"
    echo "probe:{PLAIN}$PASS"
} >"$BENCH/passwd"
chmod 644 "$BENCH/passwd"

dataset_of() {
    case $1 in
        bsmall*|hsmall*|ismall*) echo small200 ;;
        bbig*) echo big ;;
        b10k) echo 10k ;;
        b10kn) echo 10k-nw ;;
        bhuge) echo huge ;;
        probe) echo one ;;
    esac
}
ALL_USERS=$(cut -d: -f1 "$BENCH/passwd")

# fresh_mail SERVER [USER...]: a fresh Maildir per user for SERVER, hard-linked to the data
# set (neither server ever rewrites a message file), owned by pop3bench.
fresh_mail() {
    local server=$1 u; shift
    local users=("$@")
    [ ${#users[@]} -gt 0 ] || mapfile -t users <<<"$ALL_USERS"
    for u in "${users[@]}"; do
        rm -rf "$BENCH/$server/mail/$u"
        mkdir -p "$BENCH/$server/mail/$u"
        cp -al "$BENCH/data/$(dataset_of "$u")/Maildir" "$BENCH/$server/mail/$u/Maildir"
        chown -R "$USER_NAME:$USER_NAME" "$BENCH/$server/mail/$u"
    done
}

# ------------------------------------------------------------------ servers
DOVECOT_PID=
POP3D_PID=
STARTED=
# start_dovecot DIR PORT PASSWD PROCESS_LIMIT [LOGIN_SETTINGS]: a Dovecot instance of its own
# under DIR on 127.0.0.1:PORT, mail in DIR/mail; LOGIN_SETTINGS go into its pop3-login service.
# Sets STARTED to its master's PID.
start_dovecot() {
    local d=$1 port=$2 passwd=$3 process_limit=$4 login=${5:-}
    port_free "$port" || die "127.0.0.1:$port is already in use"
    mkdir -p "$d/base" "$d/state" "$d/mail"
    chown "$USER_NAME:$USER_NAME" "$d/mail"
    cat >"$d/dovecot.conf" <<EOF
# Written by examples/bench/run.sh: Dovecot's default service settings (one login process
# and one pop3 process per connection), limits raised so that the load is not refused,
# unless the pop3-login service below says otherwise.
instance_name = pop3d-bench-${d##*/}
base_dir = $d/base
state_dir = $d/state
protocols = pop3
listen = 127.0.0.1
log_path = $d/dovecot.log
ssl = ${DOVECOT_SSL:-no}
${DOVECOT_SSL_FILES:-}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $UID_N
mail_location = maildir:$d/mail/%u/Maildir
default_process_limit = $process_limit
default_client_limit = $((4 * process_limit))
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $passwd
}
userdb {
  driver = static
  args = uid=$UID_N gid=$GID_N home=$d/mail/%u
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $port
  }
  inet_listener pop3s {
    port = 0
  }
$login
}
protocol pop3 {
  mail_max_userip_connections = 1000
}
EOF
    dovecot -F -c "$d/dovecot.conf" </dev/null >>"$d/console.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
    { wait_port "$port" && kill -0 "$STARTED" 2>/dev/null; } ||
        die "Dovecot did not start: see $d/console.log and $d/dovecot.log"
}

# start_pop3d DIR PORT ARGS...: pop3d on 127.0.0.1:PORT with ARGS, running as pop3bench
# (started so by setpriv), its log and --state-dir under DIR. Sets STARTED to its PID.
start_pop3d() {
    local d=$1 port=$2; shift 2
    mkdir -p "$d/state"
    chown "$USER_NAME:$USER_NAME" "$d/state"
    launch_pop3d "$d" "$port" setpriv --reuid="$UID_N" --regid="$GID_N" --clear-groups \
        "$BENCH/bin/pop3d" --listen "127.0.0.1:$port" --state-dir "$d/state" "$@"
}

# launch_pop3d DIR PORT COMMAND...: runs COMMAND (a pop3d listening on PORT), its standard
# error in DIR/pop3d.log, and waits for the port. Sets STARTED to its PID.
launch_pop3d() {
    local d=$1 port=$2; shift 2
    port_free "$port" || die "127.0.0.1:$port is already in use"
    "$@" </dev/null 2>>"$d/pop3d.log" &
    STARTED=$!
    PIDS+=("$STARTED")
    { wait_port "$port" && kill -0 "$STARTED" 2>/dev/null; } ||
        die "pop3d did not start: see $d/pop3d.log"
}

port_of() { case $1 in pop3d) echo $POP3D_PORT ;; dovecot) echo $DOVECOT_PORT ;;
    inetd) echo $INETD_PORT ;; popa3d) echo $POPA3D_PORT ;; esac; }
pid_of() { case $1 in pop3d) echo "$POP3D_PID" ;; dovecot) echo "$DOVECOT_PID" ;; esac; }

say "fresh mailboxes for both servers"
rm -rf "$BENCH/pop3d" "$BENCH/dovecot"
mkdir -p "$BENCH/pop3d" "$BENCH/dovecot"
fresh_mail pop3d
fresh_mail dovecot
start_dovecot "$BENCH/dovecot" $DOVECOT_PORT "$BENCH/passwd" 1000
DOVECOT_PID=$STARTED
# Every client comes from 127.0.0.1: no per-address limit (the pool is what is measured).
start_pop3d "$BENCH/pop3d" $POP3D_PORT --passwd "$BENCH/passwd" \
    --maildir "$BENCH/pop3d/mail/%u/Maildir" --max-sessions 128 --max-per-ip 0
POP3D_PID=$STARTED
say "Dovecot pid $DOVECOT_PID on :$DOVECOT_PORT, pop3d pid $POP3D_PID on :$POP3D_PORT"

# ------------------------------------------------------------------ measuring
OUT=$BENCH/results
rm -rf "$OUT"; mkdir -p "$OUT"

# field LINE KEY: the value of KEY=... in a RESULT line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# load SERVER NAME ARGS...: one loadgen run; appends its RESULT line to $OUT/NAME.SERVER.
load() {
    local server=$1 name=$2; shift 2
    local log=$OUT/$name.$server.log line
    if ! "$LOADGEN" "$@" "127.0.0.1:$(port_of "$server")" >"$log" 2>&1; then
        cat "$log" >&2
        die "loadgen failed against $server ($name): see $log"
    fi
    line=$(grep '^RESULT ' "$log")
    echo "$line" >>"$OUT/$name.$server"
    say "$name $server: sps=$(field "$line" sps) mbps=$(field "$line" mbps) p50_ms=$(field "$line" p50_ms)"
}

# median NAME SERVER KEY: the median over the rounds of KEY.
median() {
    local f=$OUT/$1.$2
    [ -f "$f" ] || { echo "-"; return; }
    while read -r line; do field "$line" "$3"; done <"$f" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
              else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# alternate NAME SERVER_A SERVER_B ARGS...: ROUNDS rounds, order swapped every round.
alternate() {
    local name=$1 a=$2 b=$3 r; shift 3
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then load "$a" "$name" "$@"; load "$b" "$name" "$@"
        else load "$b" "$name" "$@"; load "$a" "$name" "$@"; fi
    done
}

ROWS=()
# row LABEL POP3D OTHER HIGHER_IS_BETTER(1|0|-) TARGET: a table row; the ratio is pop3d's
# advantage (other/pop3d when lower is better), none for -.
row() { ROWS+=("$1|$2|$3|$4|$5"); }

# idle first, on servers that have served nothing yet, so that the memory the sessions take
# is not memory an earlier workload left free: RSS per session = (RSS held - RSS before) / 100.
say "idle: 100 logged-in sessions"
idle_run() {
    local server=$1 root before during log=$OUT/idle.$1.log lg i
    root=$(pid_of "$server")
    sleep 0.5
    before=$(rss_kib "$root")
    "$LOADGEN" -w idle -c 100 -t 4 -u 'bsmall%02d' -U 1-100 "127.0.0.1:$(port_of "$server")" \
        >"$log" 2>&1 &
    lg=$!
    for ((i = 0; i < 300; i++)); do
        grep -qs '^READY' "$log" && break
        sleep 0.1
    done
    sleep 1
    during=$(rss_kib "$root")
    wait "$lg" || { cat "$log" >&2; die "idle run failed against $server"; }
    echo "$before $during" >"$OUT/idle.$server"
    say "idle $server: RSS $before KiB before, $during KiB with 100 sessions"
}
idle_run pop3d
idle_run dovecot
per_session() { awk '{ printf "%.1f", ($2 - $1) / 100 }' "$OUT/idle.$1"; }
row "idle: KiB RSS per session (100)" "$(per_session pop3d)" "$(per_session dovecot)" 0 "<128 KiB"
row "server RSS KiB, freshly started" "$(awk '{print $1}' "$OUT/idle.pop3d")" \
    "$(awk '{print $1}' "$OUT/idle.dovecot")" 0 ""
row "idle: server RSS KiB, 100 sessions" "$(awk '{print $2}' "$OUT/idle.pop3d")" \
    "$(awk '{print $2}' "$OUT/idle.dovecot")" 0 ""

# Idle sessions at scale, opened in one burst (loadgen starts every client at once), each
# server a fresh instance of its own, with users u00001... whose Maildirs do not exist yet
# (both servers create a missing one). While they are held, 4 clients run short sessions
# (small) as other users: the server still serves.
# pop3d holds two descriptors per idle session (the socket and the Maildir root), loadgen one
# per client, each process under its own limit: the hard limit H allows (H - 100) / 2
# sessions, 100 left for listeners, logs and the like; 10,000 at most.
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || ((HARD >= 2 * 10000 + 100)); then
    BURST_N=10000
    why="the open-file hard limit ($HARD) allows the full 10,000"
else
    BURST_N=$(((HARD - 100) / 2))
    why="open-file hard limit $HARD: 2 per pop3d session, 100 spare: ($HARD - 100) / 2"
fi
((DOVECOT_BURST <= BURST_N)) || DOVECOT_BURST=$BURST_N
say "idle burst: N=$BURST_N sessions for pop3d ($why); $DOVECOT_BURST for Dovecot"
{
    cat "$BENCH/passwd"
    seq -f "u%05g:{PLAIN}$PASS" 1 "$BURST_N"
} >"$BENCH/passwd-burst"
chmod 644 "$BENCH/passwd-burst"

# burst SERVER PID PORT N: N idle sessions at once; RSS before and at READY (and 1 s later
# the same), then small with 4 clients while they are held.
burst() {
    local server=$1 root=$2 port=$3 n=$4 before during log=$OUT/burst.$1.log lg i
    sleep 0.5
    before=$(rss_kib "$root")
    "$LOADGEN" -w idle -c "$n" -t "$BURST_HOLD" -u 'u%05d' -U "1-$n" "127.0.0.1:$port" \
        >"$log" 2>&1 &
    lg=$!
    for ((i = 0; i < 3000; i++)); do
        grep -qs '^READY' "$log" && break
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
    done
    grep -qs '^READY' "$log" || { cat "$log" >&2; die "idle burst: no READY from $server"; }
    sleep 1
    during=$(rss_kib "$root")
    "$LOADGEN" -w small -c 4 -t 3 -u 'bsmall%02d' -U 1-4 "127.0.0.1:$port" \
        >"$OUT/burst-small.$server.log" 2>&1 ||
        say "small beside the burst failed against $server: see $OUT/burst-small.$server.log"
    # Errors are counted in the table, not fatal.
    wait "$lg" || say "idle burst against $server had errors: see $log"
    grep -qs '^RESULT ' "$log" || { cat "$log" >&2; die "idle burst: no RESULT from $server"; }
    echo "$n $before $during" >"$OUT/burst.$server"
    say "idle burst $server: $(grep '^READY' "$log"); RSS $before KiB before, $during KiB at READY"
}
say "idle burst: pop3d, as pop3bench by --user, Maildirs created at login"
rm -rf "$BENCH/pop3d-burst" "$BENCH/dovecot-burst"
mkdir -p "$BENCH/pop3d-burst/mail" "$BENCH/pop3d-burst/state"
chown "$USER_NAME:$USER_NAME" "$BENCH/pop3d-burst/mail" "$BENCH/pop3d-burst/state"
fresh_mail pop3d-burst bsmall01 bsmall02 bsmall03 bsmall04
launch_pop3d "$BENCH/pop3d-burst" $BURST_POP3D_PORT "$BENCH/bin/pop3d" --user "$USER_NAME" \
    --listen 127.0.0.1:$BURST_POP3D_PORT --state-dir "$BENCH/pop3d-burst/state" \
    --passwd "$BENCH/passwd-burst" --maildir "$BENCH/pop3d-burst/mail/%u/Maildir" \
    --max-sessions $((BURST_N + 8)) --max-per-ip 0
burst pop3d "$STARTED" $BURST_POP3D_PORT "$BURST_N"
stop "$STARTED"
[ -d "$BENCH/pop3d-burst/mail/u$(printf %05d "$BURST_N")/Maildir/new" ] ||
    die "idle burst: pop3d did not create the Maildirs of the u users"
say "idle burst: Dovecot, pop3 and pop3-login process limits raised to $((DOVECOT_BURST + 100))"
fresh_mail dovecot-burst bsmall01 bsmall02 bsmall03 bsmall04
start_dovecot "$BENCH/dovecot-burst" $BURST_DOVECOT_PORT "$BENCH/passwd-burst" \
    $((DOVECOT_BURST + 100))
burst dovecot "$STARTED" $BURST_DOVECOT_PORT "$DOVECOT_BURST"
stop "$STARTED"

# burst_figure SERVER KEY: from the RESULT line of the burst, or of small beside it (KEY
# small_sps), or the RSS figures (n, before, during, per_session).
burst_figure() {
    local line
    case $2 in
        n|before|during|per_session)
            awk -v k="$2" '{ if (k == "n") print $1; else if (k == "before") print $2;
                else if (k == "during") print $3; else printf "%.1f\n", ($3 - $2) / $1 }' \
                "$OUT/burst.$1" ;;
        small_sps)
            line=$(grep -s '^RESULT ' "$OUT/burst-small.$1.log") || { echo "-"; return; }
            field "$line" sps ;;
        *) field "$(grep '^RESULT ' "$OUT/burst.$1.log")" "$2" ;;
    esac
}
row "burst: idle sessions opened at once" "$(burst_figure pop3d n)" \
    "$(burst_figure dovecot n)" - ""
row "burst: server RSS KiB before" "$(burst_figure pop3d before)" \
    "$(burst_figure dovecot before)" 0 ""
row "burst: server RSS KiB at READY" "$(burst_figure pop3d during)" \
    "$(burst_figure dovecot during)" - "<512 MiB at 10k"
row "burst: KiB RSS per session" "$(burst_figure pop3d per_session)" \
    "$(burst_figure dovecot per_session)" 0 ""
row "burst: login p50 ms" "$(burst_figure pop3d p50_ms)" "$(burst_figure dovecot p50_ms)" - ""
row "burst: login p99 ms" "$(burst_figure pop3d p99_ms)" "$(burst_figure dovecot p99_ms)" - ""
row "burst: errors" "$(burst_figure pop3d errors)" "$(burst_figure dovecot errors)" - "0"
row "burst: small C=4 beside it, sessions/s" "$(burst_figure pop3d small_sps)" \
    "$(burst_figure dovecot small_sps)" 1 ""

say "workload small, C=32, {PLAIN}"
alternate small-plain pop3d dovecot -w small -c 32 -t "$SECS" -u 'bsmall%02d' -U 1-32
say "workload small, C=32, {SHA512-CRYPT}"
alternate small-sha512 pop3d dovecot -w small -c 32 -t "$SECS" -u 'hsmall%02d' -U 1-32
say "workload keep, C=32, {PLAIN}"
alternate keep pop3d dovecot -w keep -c 32 -t "$SECS" -u 'bsmall%02d' -U 33-64
say "workload retr, 1-10 MB messages, C=8"
alternate retr pop3d dovecot -w retr -c 8 -t "$RETR_SECS" -u 'bbig%02d' -U 1-8

for n in small-plain small-sha512 keep; do
    row "$n C=32 sessions/s" "$(median $n pop3d sps)" "$(median $n dovecot sps)" 1 \
        "$([ $n = small-plain ] && echo '>=10x')"
    row "$n C=32 p99 ms" "$(median $n pop3d p99_ms)" "$(median $n dovecot p99_ms)" 0 ""
done
row "retr C=8 MB/s" "$(median retr pop3d mbps)" "$(median retr dovecot mbps)" 1 ">=1.5x"

# 10,000 messages: PASS to the end of LIST and UIDL, first login (no index or cache) and
# repeat logins (median of 5); with ,W= in the names (b10k) and without (b10kn).
tenk() {
    local user=$1 name=$2 server r
    for server in pop3d dovecot; do
        fresh_mail "$server" "$user"
    done
    # Both servers read from the page cache: whichever went first would otherwise pay for
    # reading the disk for both.
    find "$BENCH/data/$(dataset_of "$user")/Maildir" -type f -exec cat {} + >/dev/null
    for server in pop3d dovecot; do
        load "$server" "$name-first" -w small -c 1 -n 1 -u "$user"
    done
    for r in 1 2 3 4 5; do
        for server in pop3d dovecot; do
            load "$server" "$name-repeat" -w small -c 1 -n 1 -u "$user"
        done
    done
}
say "10,000-message Maildir: first and repeat login"
tenk b10k 10k
tenk b10kn 10kn
row "10k msgs: PASS->LIST+UIDL ms, first" "$(median 10k-first pop3d list_p50_ms)" \
    "$(median 10k-first dovecot list_p50_ms)" 0 "no worse"
row "10k msgs: PASS->LIST+UIDL ms, repeat" "$(median 10k-repeat pop3d list_p50_ms)" \
    "$(median 10k-repeat dovecot list_p50_ms)" 0 "<=1/2"
row "10k, no ,W=: PASS->LIST+UIDL ms, first" "$(median 10kn-first pop3d list_p50_ms)" \
    "$(median 10kn-first dovecot list_p50_ms)" 0 ""
row "10k, no ,W=: PASS->LIST+UIDL ms, repeat" "$(median 10kn-repeat pop3d list_p50_ms)" \
    "$(median 10kn-repeat dovecot list_p50_ms)" 0 ""

# RETR of a 100 MB message: the server's RSS, sampled every 20 ms, against before.
say "RETR of a 100 MB message: RSS growth"
huge() {
    local server=$1 root before peak now lg
    root=$(pid_of "$server")
    sleep 0.5
    before=$(rss_kib "$root")
    peak=$before
    "$LOADGEN" -w retr -c 1 -n 1 -u bhuge "127.0.0.1:$(port_of "$server")" \
        >"$OUT/huge.$server.log" 2>&1 &
    lg=$!
    while kill -0 "$lg" 2>/dev/null; do
        now=$(rss_kib "$root")
        [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.02
    done
    wait "$lg" || { cat "$OUT/huge.$server.log" >&2; die "100 MB RETR failed against $server"; }
    echo "$before $peak" >"$OUT/huge.$server"
    say "100 MB RETR $server: RSS $before KiB before, peak $peak KiB"
}
huge pop3d
huge dovecot
growth() { awk '{ print $2 - $1 }' "$OUT/huge.$1"; }
row "100 MB RETR: RSS growth KiB" "$(growth pop3d)" "$(growth dovecot)" 0 "<1024 KiB"

row "server RSS KiB after all of the above" "$(rss_kib "$POP3D_PID")" "$(rss_kib "$DOVECOT_PID")" 0 ""
stop "$POP3D_PID"
stop "$DOVECOT_PID"

# Slow clients against a pool of 32: examples/starve.rs opens 500 connections from 100
# loopback addresses (5 each: under pop3d's default --max-per-ip of 16, so only the pool is
# tested) that send two bytes and wait, reconnecting when cut; once a second a real user
# (probe, one message) logs in, runs STAT, RETR 1 and QUIT. Each server is a fresh instance:
# pop3d with --max-sessions 32; Dovecot with one pop3-login process of 32 clients
# (service_count = 0, process_limit = 1, client_limit = 32: 32 pre-login clients at once).
# RSS is taken before the attack and sampled every second while it runs.
starve_run() {
    local server=$1 root=$2 port=$3 before now last peak st log=$OUT/starve.$1.log
    sleep 0.5
    before=$(rss_kib "$root")
    peak=$before
    last=$before
    "$STARVE" -c 500 -n 100 -t "$STARVE_SECS" -u probe -p "$PASS" "127.0.0.1:$port" \
        >"$log" 2>&1 &
    st=$!
    while kill -0 "$st" 2>/dev/null; do
        sleep 1
        now=$(rss_kib "$root")
        # The last sample is taken while the attack still runs (starve ends after its probes).
        kill -0 "$st" 2>/dev/null && last=$now
        ((now > peak)) && peak=$now
    done
    # A failed probe is a figure in the table, not a failed run.
    wait "$st" || say "starve against $server: some probes failed (see $log)"
    grep -qs '^RESULT ' "$log" || { cat "$log" >&2; die "starve: no RESULT from $server"; }
    echo "$before $last $peak" >"$OUT/starve.$server"
    say "starve $server: $(grep '^RESULT ' "$log"); RSS $before KiB at start, $last at end, peak $peak"
}
say "slow clients: 500 connections against a pool of 32, ${STARVE_SECS} s each"
rm -rf "$BENCH/pop3d-starve" "$BENCH/dovecot-starve"
mkdir -p "$BENCH/pop3d-starve"
fresh_mail pop3d-starve probe
fresh_mail dovecot-starve probe
start_pop3d "$BENCH/pop3d-starve" $STARVE_POP3D_PORT --passwd "$BENCH/passwd" \
    --maildir "$BENCH/pop3d-starve/mail/%u/Maildir" --max-sessions 32
starve_run pop3d "$STARTED" $STARVE_POP3D_PORT
stop "$STARTED"
start_dovecot "$BENCH/dovecot-starve" $STARVE_DOVECOT_PORT "$BENCH/passwd" 1000 \
    "  service_count = 0
  process_limit = 1
  client_limit = 32"
starve_run dovecot "$STARTED" $STARVE_DOVECOT_PORT
stop "$STARTED"
starve_figure() { field "$(grep '^RESULT ' "$OUT/starve.$1.log")" "$2"; }
starve_rss() { awk -v i="$2" '{ print $i }' "$OUT/starve.$1"; }
row "starve, pool 32: probes failed/made" \
    "$(starve_figure pop3d failed)/$(starve_figure pop3d probes)" \
    "$(starve_figure dovecot failed)/$(starve_figure dovecot probes)" - "0"
row "starve, pool 32: slowest probe ms" "$(starve_figure pop3d max_ms)" \
    "$(starve_figure dovecot max_ms)" 0 "<1000 ms"
row "starve, pool 32: attackers cut" "$(starve_figure pop3d attackers_cut)" \
    "$(starve_figure dovecot attackers_cut)" - ""
row "starve: server RSS KiB at start" "$(starve_rss pop3d 1)" "$(starve_rss dovecot 1)" 0 ""
row "starve: server RSS KiB at end" "$(starve_rss pop3d 2)" "$(starve_rss dovecot 2)" 0 "flat"

# ------------------------------------------------------------------ TLS
# Short sessions over implicit TLS: every handshake a full one, then every client resuming
# its last session (a ticket, as a client polling every few minutes would). Dovecot runs
# each login in a process of its own (its default), so its clients cannot resume.
say "TLS: short sessions on implicit TLS, full handshakes and resumed ones"
rm -rf "$BENCH/pop3d-tls" "$BENCH/dovecot-tls"
mkdir -p "$BENCH/pop3d-tls" "$BENCH/tls"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 \
    -keyout "$BENCH/tls/key.pem" -out "$BENCH/tls/cert.pem" 2>/dev/null
# Dovecot 2.3 wants DH parameters for the DHE suites it offers.
openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048 -out "$BENCH/tls/dh.pem" \
    2>/dev/null
chown "$USER_NAME:$USER_NAME" "$BENCH/tls/key.pem"
fresh_mail pop3d-tls $(seq -f 'bsmall%02g' 1 32)
fresh_mail dovecot-tls $(seq -f 'bsmall%02g' 1 32)
start_pop3d "$BENCH/pop3d-tls" $TLS_POP3D_PORT --passwd "$BENCH/passwd" \
    --maildir "$BENCH/pop3d-tls/mail/%u/Maildir" --max-sessions 128 --max-per-ip 0 \
    --listen-tls "127.0.0.1:$((TLS_POP3D_PORT + 1))" \
    --tls-cert "$BENCH/tls/cert.pem" --tls-key "$BENCH/tls/key.pem"
TLS_POP3D_PID=$STARTED
DOVECOT_SSL=yes DOVECOT_SSL_FILES="ssl_cert = <$BENCH/tls/cert.pem
ssl_key = <$BENCH/tls/key.pem
ssl_dh = <$BENCH/tls/dh.pem" start_dovecot "$BENCH/dovecot-tls" $TLS_DOVECOT_PORT \
    "$BENCH/passwd" 1000 "  inet_listener pop3s_bench {
    address = 127.0.0.1
    port = $((TLS_DOVECOT_PORT + 1))
    ssl = yes
  }"
TLS_DOVECOT_PID=$STARTED
tls_port_of() { case $1 in pop3d) echo $((TLS_POP3D_PORT + 1)) ;;
    dovecot) echo $((TLS_DOVECOT_PORT + 1)) ;; esac; }
# tls_load SERVER NAME ARGS...: as load, on SERVER's implicit-TLS port.
tls_load() {
    local server=$1 name=$2; shift 2
    local log=$OUT/$name.$server.log line
    "$LOADGEN" "$@" --tls --insecure "127.0.0.1:$(tls_port_of "$server")" >"$log" 2>&1 ||
        { cat "$log" >&2; die "loadgen failed against $server ($name): see $log"; }
    line=$(grep '^RESULT ' "$log")
    echo "$line" >>"$OUT/$name.$server"
    say "$name $server: sps=$(field "$line" sps) resumed=$(field "$line" resumed)"
}
for ((r = 1; r <= ROUNDS; r++)); do
    for server in pop3d dovecot; do
        tls_load "$server" tls-full -w small -c 32 -t "$SECS" -u 'bsmall%02d' -U 1-32
        tls_load "$server" tls-resume -w small -c 32 -t "$SECS" -u 'bsmall%02d' -U 1-32 --resume
    done
done
stop "$TLS_POP3D_PID"
stop "$TLS_DOVECOT_PID"
row "TLS small C=32, full handshakes /s" "$(median tls-full pop3d sps)" \
    "$(median tls-full dovecot sps)" 1 ""
row "TLS small C=32, resuming /s" "$(median tls-resume pop3d sps)" \
    "$(median tls-resume dovecot sps)" 1 ">=1.5x own full"
row "TLS C=32: sessions resumed (last round)" \
    "$(field "$(tail -1 "$OUT/tls-resume.pop3d")" resumed)" \
    "$(field "$(tail -1 "$OUT/tls-resume.dovecot")" resumed)" - ""

# ------------------------------------------------------------------ inetd mode
if [ $INETD = 1 ]; then
    say "inetd mode: pop3d --inetd and popa3d under systemd-socket-activate, SHA512-CRYPT"
    POPA3D=$BENCH/opt/popa3d/usr/sbin/popa3d
    if [ ! -x "$POPA3D" ]; then
        mkdir -p "$BENCH/opt/debs"
        # Fetched and unpacked, never installed (no popa3d service). A fresh machine may
        # have no package lists yet: then once more after apt-get update.
        (cd "$BENCH/opt/debs" && { apt-get download popa3d >/dev/null 2>&1 ||
            { apt-get update -qq && apt-get download popa3d >/dev/null; }; }) ||
            die "cannot fetch the popa3d package (apt-get download popa3d), or use --skip-inetd"
        dpkg -x "$BENCH"/opt/debs/popa3d_*.deb "$BENCH/opt/popa3d"
    fi
    [ -f /etc/pam.d/popa3d ] || cp "$BENCH/opt/popa3d/etc/pam.d/popa3d" /etc/pam.d/popa3d
    id popa3d >/dev/null 2>&1 || useradd -r -U -d /var/lib/popa3d -M -s /usr/sbin/nologin popa3d
    mkdir -p /var/lib/popa3d
    # System accounts for popa3d with the very hash pop3d reads from the passwd file, and
    # the same 200 messages as an mbox in /var/mail (popa3d's compiled-in mailbox path).
    for i in $(seq -f '%02g' 1 32); do
        u=ismall$i
        id "$u" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin "$u"
        usermod -p "${HASH[$u]}" "$u"
        install -o "$u" -g mail -m 660 "$BENCH/data/small200/mbox" "/var/mail/$u"
    done
    fresh_mail pop3d $(seq -f 'ismall%02g' 1 32)
    { port_free $INETD_PORT && port_free $POPA3D_PORT; } ||
        die "127.0.0.1:$INETD_PORT or :$POPA3D_PORT is already in use"
    # pop3d refuses to serve as root: --user makes it drop root itself, as popa3d does.
    mkdir -p "$BENCH/inetd-state"
    chown "$USER_NAME:$USER_NAME" "$BENCH/inetd-state"
    systemd-socket-activate --inetd -a -l 127.0.0.1:$INETD_PORT \
        "$BENCH/bin/pop3d" --inetd --user "$USER_NAME" --state-dir "$BENCH/inetd-state" \
        --passwd "$BENCH/passwd" \
        --maildir "$BENCH/pop3d/mail/%u/Maildir" </dev/null >/dev/null 2>"$BENCH/inetd.log" &
    INETD_PID=$!; PIDS+=("$INETD_PID")
    systemd-socket-activate --inetd -a -l 127.0.0.1:$POPA3D_PORT "$POPA3D" \
        </dev/null >/dev/null 2>"$BENCH/popa3d.log" &
    POPA3D_PID=$!; PIDS+=("$POPA3D_PID")
    if ! wait_port $INETD_PORT || ! wait_port $POPA3D_PORT; then
        die "the super-servers did not start: see $BENCH/inetd.log and $BENCH/popa3d.log"
    fi
    alternate inetd-small inetd popa3d -w small -c 32 -t "$SECS" -u 'ismall%02d' -U 1-32
    row "inetd small C=32 sessions/s (vs popa3d)" "$(median inetd-small inetd sps)" \
        "$(median inetd-small popa3d sps)" 1 ">=1x"
    stop "$INETD_PID"
    stop "$POPA3D_PID"
fi

# ------------------------------------------------------------------ mbox
# pop3d serves a Unix host's /var/mail spools as the peers that serve only mbox do: system
# accounts (shadow, the same SHA512-CRYPT hash for all three), each session as its account.
# popa3d and pop3d read the very same spools (neither writes them unless asked to delete);
# Mailutils rewrites the mailboxes it serves (X-UIDL, Status), so it gets copies of its own,
# made again before each of its runs.
if [ $INETD = 1 ]; then
    say "mbox: pop3d against popa3d and GNU Mailutils on /var/mail spools"
    MBOX_USERS="m10k $(seq -f 'mbig%02g' 1 8 | tr '\n' ' ')"
    mbox_set() { case $1 in m10k) echo 10k ;; mbig*) echo big ;; esac; }
    mkdir -p "$BENCH/mailutils/mail" "$BENCH/mailutils/locks" "$BENCH/mbox-state"
    chmod 1777 "$BENCH/mailutils/locks"
    chown "$USER_NAME:$USER_NAME" "$BENCH/mbox-state"
    for u in $MBOX_USERS; do
        id "$u" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin "$u"
        usermod -p "$(sha512 "$u")" "$u"
        install -o "$u" -g mail -m 660 "$BENCH/data/$(mbox_set "$u")/mbox" "/var/mail/$u"
    done
    mailutils_spools() {
        for u in $MBOX_USERS; do
            install -o "$u" -g mail -m 600 "$BENCH/data/$(mbox_set "$u")/mbox" \
                "$BENCH/mailutils/mail/$u"
        done
    }
    cat >"$BENCH/mailutils/pop3d.conf" <<CONF
# Written by examples/bench/run.sh: GNU Mailutils pop3d on mbox, system accounts.
mode daemon;
foreground yes;
max-children 200;
logging { syslog no; };
mailbox { mailbox-pattern "mbox://$BENCH/mailutils/mail/\${user}"; };
auth { authentication generic:system; authorization system; };
mandatory-locking { lock-directory "$BENCH/mailutils/locks"; };
server 127.0.0.1:$MBOX_MAILUTILS_PORT { backlog 128; };
CONF
    for p in $MBOX_POP3D_PORT $MBOX_INETD_PORT $MBOX_POPA3D_PORT $MBOX_MAILUTILS_PORT; do
        port_free "$p" || die "127.0.0.1:$p is already in use"
    done
    mkdir -p "$BENCH/pop3d-mbox"
    launch_pop3d "$BENCH/pop3d-mbox" $MBOX_POP3D_PORT "$BENCH/bin/pop3d" \
        --listen "127.0.0.1:$MBOX_POP3D_PORT" --user "$USER_NAME" --shadow \
        --mbox /var/mail/%u --state-dir "$BENCH/mbox-state" --max-per-ip 0
    MBOX_POP3D_PID=$STARTED; PIDS+=("$MBOX_POP3D_PID")
    systemd-socket-activate --inetd -a -l 127.0.0.1:$MBOX_INETD_PORT \
        "$BENCH/bin/pop3d" --inetd --user "$USER_NAME" --shadow --mbox /var/mail/%u \
        --state-dir "$BENCH/mbox-state" </dev/null >/dev/null 2>"$BENCH/mbox-inetd.log" &
    PIDS+=("$!"); MBOX_INETD_PID=$!
    systemd-socket-activate --inetd -a -l 127.0.0.1:$MBOX_POPA3D_PORT "$POPA3D" \
        </dev/null >/dev/null 2>"$BENCH/mbox-popa3d.log" &
    PIDS+=("$!"); MBOX_POPA3D_PID=$!
    mailutils_spools
    /usr/sbin/pop3d --config-file="$BENCH/mailutils/pop3d.conf" </dev/null \
        >"$BENCH/mailutils/pop3d.log" 2>&1 &
    PIDS+=("$!"); MBOX_MU_PID=$!
    for p in $MBOX_INETD_PORT $MBOX_POPA3D_PORT $MBOX_MAILUTILS_PORT; do
        wait_port "$p" || die "nothing listens on 127.0.0.1:$p: see $BENCH/*.log"
    done
    mbox_port() { case $1 in pop3d) echo $MBOX_POP3D_PORT ;; inetd) echo $MBOX_INETD_PORT ;;
        popa3d) echo $MBOX_POPA3D_PORT ;; mailutils) echo $MBOX_MAILUTILS_PORT ;; esac; }
    # mbox_load SERVER NAME ARGS...: as load, on SERVER's mbox port; Mailutils gets fresh
    # copies first.
    mbox_load() {
        local server=$1 name=$2; shift 2
        local log=$OUT/$name.$server.log line
        [ "$server" != mailutils ] || mailutils_spools
        "$LOADGEN" "$@" -p "$PASS" "127.0.0.1:$(mbox_port "$server")" >"$log" 2>&1 ||
            { cat "$log" >&2; die "loadgen failed against $server ($name): see $log"; }
        line=$(grep '^RESULT ' "$log")
        echo "$line" >>"$OUT/$name.$server"
        say "$name $server: list_p50_ms=$(field "$line" list_p50_ms) mbps=$(field "$line" mbps)"
    }
    cat "/var/mail/m10k" >/dev/null
    for server in pop3d inetd popa3d mailutils; do
        mbox_load "$server" mbox10k-first -w small -c 1 -n 1 -u m10k
        for r in 1 2 3 4 5; do
            mbox_load "$server" mbox10k-repeat -w small -c 1 -n 1 -u m10k
        done
    done
    for ((r = 1; r <= ROUNDS; r++)); do
        for server in pop3d inetd popa3d mailutils; do
            mbox_load "$server" mbox-retr -w retr -c 8 -t "$RETR_SECS" -u 'mbig%02d' -U 1-8
        done
    done
    for pid in "$MBOX_POP3D_PID" "$MBOX_INETD_PID" "$MBOX_POPA3D_PID" "$MBOX_MU_PID"; do
        stop "$pid"
    done
    for peer in popa3d mailutils; do
        row "mbox 10k: PASS->UIDL ms, first (vs $peer)" "$(median mbox10k-first pop3d list_p50_ms)" \
            "$(median mbox10k-first $peer list_p50_ms)" 0 "<=1/2"
        row "mbox 10k: PASS->UIDL ms, repeat (vs $peer)" \
            "$(median mbox10k-repeat pop3d list_p50_ms)" \
            "$(median mbox10k-repeat $peer list_p50_ms)" 0 "<=1/2"
        row "mbox RETR 1-10 MB C=8 MB/s (vs $peer)" "$(median mbox-retr pop3d mbps)" \
            "$(median mbox-retr $peer mbps)" 1 ">=2x"
    done
    row "mbox 10k: PASS->UIDL ms, --inetd (vs popa3d)" \
        "$(median mbox10k-repeat inetd list_p50_ms)" \
        "$(median mbox10k-repeat popa3d list_p50_ms)" 0 "<=1/2"
    row "mbox RETR C=8 MB/s, --inetd (vs popa3d)" "$(median mbox-retr inetd mbps)" \
        "$(median mbox-retr popa3d mbps)" 1 ">=2x"
fi

# ------------------------------------------------------------------ table
echo
echo "pop3d $(git -C "$REPO" describe --always --dirty 2>/dev/null) vs $(dovecot --version | cut -d' ' -f1-1) Dovecot;" \
    "$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); rounds=$ROUNDS"
printf '%-40s %12s %12s %8s  %s\n' "figure" "pop3d" "other" "ratio" "target"
for r in "${ROWS[@]}"; do
    IFS='|' read -r label mine theirs higher target <<<"$r"
    ratio=$(awk -v a="$mine" -v b="$theirs" -v h="$higher" 'BEGIN {
        if (h == "-" || a == "-" || b == "-" || a + 0 == 0 || b + 0 == 0) { print "-"; exit }
        printf "%.2fx", (h == 1) ? a / b : b / a }')
    printf '%-40s %12s %12s %8s  %s\n' "$label" "$mine" "$theirs" "$ratio" "$target"
done
echo "(ratio: pop3d's advantage, other/pop3d where lower is better; the inetd row compares"
echo " with popa3d, every other row with Dovecot; raw RESULT lines are in $OUT)"
