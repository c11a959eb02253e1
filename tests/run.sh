#!/usr/bin/env bash
# The README's test command: installs what the tests need on Debian, then runs `cargo test`.
#
# Usage (from anywhere in the repository):
#     tests/run.sh [ARGUMENTS FOR cargo test]      e.g. tests/run.sh --test clients
#
# The tests drive the real server with real programs, and a missing one fails its test. So
# when a Debian package below is missing, this installs it with apt-get (as root, or through
# sudo), and installs Python's scramp with pip (Debian does not package it). When everything
# is there it installs nothing and needs no root. As root, the tests that drop privileges
# (--user, --chroot) and fill a tmpfs run too; as another user they print that they skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'tests/run.sh: %s\n' "$*" >&2; }

# Debian packages, and why the tests need each.
packages=(
    gcc libc6-dev   # the linker for every test binary; openssl-sys's build script runs cc
    pkg-config      # openssl-sys finds OpenSSL with it
    libssl-dev      # native-tls: STLS, --listen-tls and the TLS tests build against OpenSSL
    libcrypt-dev    # crypt(3), for {SHA512-CRYPT} and the other crypt schemes
    openssl         # test certificates, `openssl passwd -6` hashes, `openssl s_client` (tls.rs)
    curl            # a real client: POP3, SASL and STLS (clients.rs, sasl.rs)
    fetchmail       # a real client: UIDL, --keep, TLS (clients.rs, tls.rs)
    dovecot-pop3d   # a real Dovecot whose mailbox moves to pop3d with its UIDLs (uidl_migration.rs)
    perl            # Net::POP3, from perl-modules, which perl depends on (clients.rs)
    python3         # poplib, ssl (clients.rs, embed.rs, inetd.rs, tls.rs, sasl.rs)
    haproxy         # a real PROXY-protocol balancer in front of two servers (haproxy.rs)
    util-linux      # flock(1): a mailbox lock held by another process (src/store tests)
    mount           # mount(8), umount(8): faults.rs fills a small tmpfs (as root)
    dovecot-pop3d   # a real Dovecot serving the same mbox, compared octet for octet (mbox.rs)
    mandoc          # the manual pages must render without warnings (manual.rs)
    systemd         # systemd-socket-activate, systemd-analyze verify (systemd.rs)
    fail2ban        # fail2ban-regex runs the manual's filter on real log lines (logging.rs)
    postfix         # a real MTA, one instance per test on its own port (support/postfix.rs)
    passwd          # useradd, chpasswd, userdel, usermod: test system accounts (system_user.rs)
    libpam-modules  # pam_unix.so for the PAM service file system_accounts.rs installs
    libpam0g        # libpam.so.0, which --pam loads at run time (system_accounts.rs)
    checkpw         # a real checkpassword program for --checkpassword (system_accounts.rs)
    xinetd          # a real super-server: --inetd sessions run as their accounts (privsep.rs)
)
# pip, only when it is needed to install scramp (a SCRAM-SHA-256 client, sasl.rs).
if ! python3 -c 'import scramp' 2>/dev/null && ! python3 -m pip --version >/dev/null 2>&1; then
    packages+=(python3-pip)
fi

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    say "not Debian (no dpkg-query or apt-get): install by hand what these Debian packages"
    say "give, and Python's scramp: ${packages[*]}"
else
    missing=()
    for p in "${packages[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
        if [ "$(id -u)" = 0 ]; then
            as_root=(env DEBIAN_FRONTEND=noninteractive)
        elif command -v sudo >/dev/null; then
            as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
        else
            say "the tests need these Debian packages: ${missing[*]}"
            say "this is not root and there is no sudo; as root, run:"
            say "    apt-get update && ${install[*]}"
            say "then run tests/run.sh again"
            exit 1
        fi
        say "installing ${missing[*]}"
        # Postfix's "No configuration": no /etc/postfix/main.cf and no system Postfix
        # running; the tests start their own instances, each with its configuration and port.
        if [[ " ${missing[*]} " == *" postfix "* ]]; then
            echo 'postfix postfix/main_mailer_type select No configuration' |
                "${as_root[@]}" debconf-set-selections
        fi
        "${as_root[@]}" apt-get update -q
        "${as_root[@]}" "${install[@]}"
    fi
fi

# scramp, into the python3 that the tests run (so never through sudo: pip picks the user's
# site-packages when the system's is not writable). PEP 668 systems (Debian 12 and later)
# refuse a plain `pip install` outside a virtual environment unless told to.
if ! python3 -c 'import scramp' 2>/dev/null; then
    say "installing Python's scramp with pip"
    python3 -m pip install --quiet scramp 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages scramp
fi

command -v cargo >/dev/null ||
    { say "cargo is missing: install Rust (rustup.rs, or apt-get install cargo)"; exit 1; }
exec cargo test "$@"
