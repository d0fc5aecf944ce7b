#!/usr/bin/env bash
# Everything the test suite needs outside Python, made ready or named loudly.
#
# Called by `make test` (and so by `.ci/run`): PostgreSQL answering on 127.0.0.1:5432
# (unless ACCORD_TEST_POSTGRES_URL points elsewhere) and accepting replication connections
# from loopback (the read-replica tests start a streaming replica of it with
# `pg_basebackup -R`, tests/replica.py), Dovecot for the IMAP tests and
# Debian's Chromium for the browser tests. As root a missing piece is installed from
# Debian's packages and started; otherwise the script stops with the command to run.
# A missing service fails the run here, before pytest: the tests never skip for one.
set -euo pipefail

say() { echo "==> test services: $*"; }
die() {
    echo "==> test services: $*" >&2
    exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_updated=0
apt_install() {
    if ! is_root; then
        die "missing $*; install it with: sudo apt-get install --no-install-recommends $*"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    say "installing $* from Debian's packages"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# -- PostgreSQL ------------------------------------------------------------------------
need_postgres() {
    if [ -n "${ACCORD_TEST_POSTGRES_URL:-}" ]; then
        say "PostgreSQL: using ACCORD_TEST_POSTGRES_URL (not checked here)"
        return
    fi
    if [ "${ACCORD_TEST_NO_POSTGRES:-}" = "1" ]; then
        say "PostgreSQL: disabled by ACCORD_TEST_NO_POSTGRES=1 (its tests are skipped)"
        return
    fi
    if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
        say "PostgreSQL answers on 127.0.0.1:5432"
        return
    fi
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        apt_install postgresql
    fi
    is_root || die "PostgreSQL is not answering on 127.0.0.1:5432; start it with:
    sudo pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql | sort -V | tail -n 1) main start"
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    local conf="/etc/postgresql/${version}/main"
    # A cluster this script installed: listen on loopback and trust local connections,
    # as on the machines the suite is made for (never for a production server).
    if ! grep -q "accord test services" "${conf}/pg_hba.conf" 2>/dev/null; then
        if [ -f "${conf}/pg_hba.conf" ] && [ "${apt_updated}" -eq 1 ]; then
            {
                echo "# accord test services: trust on loopback"
                echo "host all all 127.0.0.1/32 trust"
                echo "host all all ::1/128 trust"
            } | cat - "${conf}/pg_hba.conf" >"${conf}/pg_hba.conf.new"
            mv "${conf}/pg_hba.conf.new" "${conf}/pg_hba.conf"
        fi
    fi
    say "starting PostgreSQL ${version} cluster 'main'"
    pg_ctlcluster --skip-systemctl-redirect "${version}" main start || true
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
    pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up within 30 s"
    if [ "${apt_updated}" -eq 1 ]; then
        # A fresh cluster has no database 'test' (the suite creates its own databases
        # from the 'postgres' user; this only mirrors the machines' set-up).
        su postgres -c "psql -q -h 127.0.0.1 -c 'CREATE DATABASE test'" 2>/dev/null || true
    fi
    say "PostgreSQL answers on 127.0.0.1:5432"
}

# -- Replication (the read-replica tests) ----------------------------------------------
# tests/replica.py starts, per test process, a hot standby of the primary on a free
# loopback port (pg_basebackup -R through a replication slot, then pg_ctl as the server's
# user). Here: the primary streams WAL to loopback (wal_level, max_wal_senders, a pg_hba
# "replication" line), a slot left by a killed run cannot keep more than 10 GB of WAL
# (max_slot_wal_keep_size; the next run drops it), and the server programs of its major
# version are installed.
# (the suite's user 'postgres', trusted on loopback like the tests' own connections)
psql_admin() { psql -X -q -At -h 127.0.0.1 -p 5432 -U postgres -d postgres "$@"; }

need_replication() {
    if [ -n "${ACCORD_TEST_REPLICA_URL:-}" ]; then
        say "replication: using ACCORD_TEST_REPLICA_URL (not checked here)"
        return
    fi
    if [ -n "${ACCORD_TEST_POSTGRES_URL:-}" ] || [ "${ACCORD_TEST_NO_POSTGRES:-}" = "1" ]; then
        say "replication: the primary is not the local one (tests/replica.py checks it)"
        return
    fi
    local major bindir
    major="$(psql_admin -c 'SHOW server_version_num')"
    major="$((major / 10000))"
    bindir="/usr/lib/postgresql/${major}/bin"
    [ -x "${bindir}/pg_basebackup" ] && [ -x "${bindir}/pg_ctl" ] ||
        apt_install "postgresql-${major}"
    local wal_level senders hba restart=0
    wal_level="$(psql_admin -c 'SHOW wal_level')"
    senders="$(psql_admin -c 'SHOW max_wal_senders')"
    hba="$(psql_admin -c 'SHOW hba_file')"
    if [ "${wal_level}" = "minimal" ] || [ "${senders}" -lt 4 ]; then
        is_root || die "PostgreSQL on 127.0.0.1:5432 cannot stream to a replica (wal_level=${wal_level}, max_wal_senders=${senders}); run as root, or: ALTER SYSTEM SET wal_level = replica; ALTER SYSTEM SET max_wal_senders = 10; and restart it"
        say "replication: wal_level = replica, max_wal_senders = 10 (restart follows)"
        psql_admin -c "ALTER SYSTEM SET wal_level = replica" -c "ALTER SYSTEM SET max_wal_senders = 10"
        restart=1
    fi
    if ! grep -q "accord test services: replication" "${hba}" 2>/dev/null; then
        is_root || die "PostgreSQL on 127.0.0.1:5432 refuses replication connections from loopback; run as root, or add to ${hba}: host replication all 127.0.0.1/32 trust"
        say "replication: allowing replication connections from loopback in ${hba}"
        {
            echo "# accord test services: replication from loopback (the read-replica tests)"
            echo "host replication all 127.0.0.1/32 trust"
        } | cat - "${hba}" >"${hba}.new"
        chown --reference="${hba}" "${hba}.new"
        chmod --reference="${hba}" "${hba}.new"
        mv "${hba}.new" "${hba}"
        [ "${restart}" -eq 1 ] || psql_admin -c "SELECT pg_reload_conf()" >/dev/null
    fi
    if [ "$(psql_admin -c 'SHOW max_slot_wal_keep_size')" = "-1" ]; then
        if is_root; then
            say "replication: max_slot_wal_keep_size = 10GB"
            psql_admin -c "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'" \
                -c "SELECT pg_reload_conf()" >/dev/null
        else  # a safety net only: the tests drop their slots
            say "replication: note: a slot left by a killed run keeps WAL until the next run drops it (ALTER SYSTEM SET max_slot_wal_keep_size = '10GB' bounds it)"
        fi
    fi
    if [ "${restart}" -eq 1 ]; then
        pg_ctlcluster --skip-systemctl-redirect "${major}" main restart
        for _ in $(seq 1 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 1
        done
        pg_isready -q -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come back within 30 s"
    fi
    psql -X -q -At "dbname=replication replication=true host=127.0.0.1 port=5432 user=postgres" \
        -c IDENTIFY_SYSTEM >/dev/null ||
        die "PostgreSQL on 127.0.0.1:5432 still refuses a replication connection from loopback"
    say "replication: the primary streams to loopback (PostgreSQL ${major})"
}

# -- Dovecot (IMAP polling tests) ------------------------------------------------------
# (the functions are named need_* so that `command -v dovecot` finds the program, not them)
need_dovecot() {
    if command -v dovecot >/dev/null || [ -x /usr/sbin/dovecot ]; then
        say "Dovecot is installed"
        return
    fi
    apt_install dovecot-imapd
}

# -- Chromium (browser tests, driven by Playwright without a browser download) ---------
need_chromium() {
    if [ -x /usr/bin/chromium ]; then
        say "Chromium is installed"
        return
    fi
    apt_install chromium chromium-driver
}

need_postgres
need_replication
need_dovecot
need_chromium
