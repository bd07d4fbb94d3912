#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting and lints (cargo fmt --check, clippy
# with warnings as errors), Rust tests, then the interop suite that drives
# the built `tarn` binary and checks its tables with real Delta clients (deltalake, DuckDB,
# polars) and a local S3 server (moto).
#
# Environment:
#   TARN_VENV         Python venv for the interop clients (default: ./.venv). Rebuilt when
#                     tests/interop/requirements.txt or the Python version changes.
#   CARGO_TARGET_DIR  respected; the binary is taken from ${CARGO_TARGET_DIR:-./target}/debug/tarn.
#   PYTHON            interpreter used to create the venv (default: python3).
#   PYTEST_ARGS       extra arguments for pytest, e.g. "-k concurrency -x".
#   TARN_TEST_POSTGRES PostgreSQL for the catalog and import tests (default
#                     postgres://postgres@127.0.0.1:5432/test; `skip` to skip them).
#   TARN_TEST_MYSQL   MySQL/MariaDB for the import tests (default
#                     mysql://root@127.0.0.1:3306/test; `skip` to skip them). When nothing
#                     listens on 127.0.0.1:3306, this script installs and starts MariaDB
#                     (Debian/Ubuntu, as root) rather than skipping.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${TARN_VENV:-$ROOT/.venv}"
REQUIREMENTS="$ROOT/tests/interop/requirements.txt"
PYTHON="${PYTHON:-python3}"
STAMP_FILE="$VENV/.tarn-requirements-stamp"

fail() {
  echo "run.sh: FAILED: $*" >&2
  exit 1
}

step() {
  echo
  echo "==> $*"
}

# --- Python clients ---------------------------------------------------------------------
stamp="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) $("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP_FILE" 2>/dev/null || true)" != "$stamp" ]]; then
  step "installing interop clients into $VENV (pinned in tests/interop/requirements.txt)"
  if [[ -e "$VENV" && ! -f "$VENV/pyvenv.cfg" ]]; then
    fail "$VENV exists and is not a Python venv; remove it or point TARN_VENV elsewhere"
  fi
  rm -rf "$VENV"
  started=$SECONDS
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
    -r "$REQUIREMENTS" || fail "pip install -r tests/interop/requirements.txt"
  echo "$stamp" >"$STAMP_FILE"
  echo "venv ready in $((SECONDS - started)) s"
else
  echo "==> interop clients up to date in $VENV"
fi

# Runs "$@" with none of this script's file descriptors but stdin, stdout and stderr: a
# server it starts (MariaDB, PostgreSQL) must not keep a lock its caller holds on an
# inherited descriptor (for example `flock FILE bash tests/run.sh`) after this script has
# ended.
without_inherited_fds() {
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if [[ "$fd" -gt 2 ]]; then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    "$@"
  )
}

# Starts MariaDB as a daemon (see without_inherited_fds).
start_mariadb() {
  without_inherited_fds bash -c '(service mariadb start || service mysql start) >/dev/null 2>&1 \
    || (mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null; setsid mysqld_safe </dev/null >/dev/null 2>&1 &)'
}

# --- MySQL/MariaDB for the import tests -------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [[ "${TARN_TEST_MYSQL:-}" != "skip" && -z "${TARN_TEST_MYSQL:-}" ]] && ! port_open 3306; then
  step "no MySQL/MariaDB on 127.0.0.1:3306: installing and starting MariaDB"
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    fail "no MySQL/MariaDB on 127.0.0.1:3306 and no way to install one here (needs root and apt-get): start one, point TARN_TEST_MYSQL at one, or set TARN_TEST_MYSQL=skip"
  fi
  if ! command -v mariadbd >/dev/null && ! command -v mysqld >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server >/dev/null \
      || fail "apt-get install mariadb-server"
  fi
  start_mariadb
  for _ in $(seq 1 60); do port_open 3306 && break; sleep 1; done
  port_open 3306 || fail "MariaDB did not start listening on 127.0.0.1:3306"
  # Root over TCP with an empty password, and the `test` database (as on CI machines).
  mysql -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); CREATE DATABASE IF NOT EXISTS test" \
    || fail "could not prepare MariaDB (root without password, database test)"
fi

# --- TLS on the local MariaDB, and a user that may only connect over it (tests/tls.rs) ------
# As root, idempotently, for the default TARN_TEST_MYSQL when MariaDB is configured by
# /etc/mysql/my.cnf: a test CA and a certificate it signs for localhost (openssl) in
# /etc/mysql/tarn-tls/ (ca.pem is what clients trust); when the server has TLS off
# (have_ssl=DISABLED), /etc/mysql/conf.d/tarn-tls.cnf naming them (ssl_cert, ssl_key), an
# `!includedir /etc/mysql/conf.d/` line appended to my.cnf if it has none, and a restart of
# MariaDB (mariadb-admin shutdown, then started as above); new certificates for a server
# that has TLS on already are loaded with FLUSH SSL. Then the user tarn_tls@127.0.0.1 (no
# password, REQUIRE SSL) with SELECT and CREATE TEMPORARY TABLES on `test`. Each change is
# printed; without root the MySQL TLS tests skip.
if [[ "${TARN_TEST_MYSQL:-}" != "skip" && -z "${TARN_TEST_MYSQL:-}" ]] && port_open 3306 \
  && [[ "$(id -u)" == 0 ]] && command -v mysql >/dev/null && command -v openssl >/dev/null \
  && [[ -f /etc/mysql/my.cnf ]]; then
  my() { mysql -uroot -h127.0.0.1 -NB -e "$1"; }
  tls_dir=/etc/mysql/tarn-tls
  if [[ ! -f "$tls_dir/ca.pem" ]]; then
    rm -rf "$tls_dir" && mkdir -p "$tls_dir"
    (
      cd "$tls_dir"
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Tarn test CA" \
        -keyout ca-key.pem -out ca.pem
      openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr
      printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >server.ext
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
        -extfile server.ext -out server-cert.pem
    ) >/dev/null 2>&1 || fail "openssl (MariaDB's test certificates in $tls_dir)"
    chown -R mysql:mysql "$tls_dir" 2>/dev/null || true
    chmod 600 "$tls_dir"/*key.pem
    echo "==> made a test CA ($tls_dir/ca.pem) and a certificate it signs for localhost (MariaDB's TLS)"
    if [[ "$(my "SHOW VARIABLES LIKE 'have_ssl'" | cut -f2)" == YES ]]; then
      my "FLUSH SSL" && echo "==> MariaDB reloaded its certificates (FLUSH SSL)"
    fi
  fi
  if [[ "$(my "SHOW VARIABLES LIKE 'have_ssl'" | cut -f2)" == DISABLED ]]; then
    mkdir -p /etc/mysql/conf.d
    printf '# tarn tests/run.sh: TLS for tests/tls.rs\n[mysqld]\nssl_cert = %s/server-cert.pem\nssl_key = %s/server-key.pem\n' \
      "$tls_dir" "$tls_dir" >/etc/mysql/conf.d/tarn-tls.cnf
    if ! grep -q '^!includedir /etc/mysql/conf.d' /etc/mysql/my.cnf; then
      printf '\n# tarn tests/run.sh: TLS for tests/tls.rs (conf.d/tarn-tls.cnf)\n!includedir /etc/mysql/conf.d/\n' >>/etc/mysql/my.cnf
      echo "==> appended '!includedir /etc/mysql/conf.d/' to /etc/mysql/my.cnf"
    fi
    echo "==> wrote /etc/mysql/conf.d/tarn-tls.cnf (ssl_cert, ssl_key); restarting MariaDB"
    mariadb-admin -uroot shutdown 2>/dev/null || mysqladmin -uroot shutdown || fail "stopping MariaDB"
    for _ in $(seq 1 60); do port_open 3306 || break; sleep 1; done
    start_mariadb
    for _ in $(seq 1 60); do port_open 3306 && break; sleep 1; done
    port_open 3306 || fail "MariaDB did not come back on 127.0.0.1:3306 after turning TLS on"
    [[ "$(my "SHOW VARIABLES LIKE 'have_ssl'" | cut -f2)" == YES ]] \
      || fail "MariaDB still has TLS off (see /var/log/mysql/error.log)"
    echo "==> MariaDB has TLS on (have_ssl=YES)"
  fi
  if [[ "$(my "SHOW VARIABLES LIKE 'have_ssl'" | cut -f2)" == YES ]] \
    && [[ "$(my "SELECT COUNT(*) FROM mysql.user WHERE user = 'tarn_tls'")" == 0 ]]; then
    my "CREATE USER 'tarn_tls'@'127.0.0.1' REQUIRE SSL; GRANT SELECT, CREATE TEMPORARY TABLES ON test.* TO 'tarn_tls'@'127.0.0.1'" \
      || fail "CREATE USER tarn_tls (MariaDB)"
    echo "==> created the MariaDB user tarn_tls@127.0.0.1 (no password, REQUIRE SSL) for tests/tls.rs"
  fi
fi

# --- PostgreSQL roles for the TLS and authentication tests ---------------------------------
# As root, idempotently:
# - role `tarn_tls` (LOGIN, no password) for tests/tls.rs, and pg_hba lines before all the
#   others so that it gets in over TLS only:
#     hostssl all tarn_tls 127.0.0.1/32 trust    host all tarn_tls 127.0.0.1/32 reject
#   (and the same for ::1/128); the old pg_hba.conf is kept as pg_hba.conf.before-tarn-tls;
# - roles `tarn_scram` (password stored as SCRAM-SHA-256), `tarn_md5` (stored as MD5) and
#   `tarn_password` (sent in the clear), each LOGIN with the password `<role>-pw`, for the
#   authentication tests of the import's COPY client (import/src/pgwire.rs), and pg_hba
#   lines before all the others that make each log in that way:
#     host all tarn_scram 127.0.0.1/32 scram-sha-256    host all tarn_md5 127.0.0.1/32 md5
#     host all tarn_password 127.0.0.1/32 password
#   (and the same for ::1/128); the old pg_hba.conf is kept as pg_hba.conf.before-tarn-auth;
# then SELECT pg_reload_conf(). Each change is printed. Not root, or no psql: those tests
# skip and say how to set this up.
if [[ "${TARN_TEST_POSTGRES:-}" != "skip" ]]; then
  pg_admin="${TARN_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
  # Puts the lines of $3 before the first rule of pg_hba.conf $1 (the old file kept as
  # $1.$2), then reloads the configuration.
  pg_hba_first() {
    cp "$1" "$1.$2"
    local tmp
    tmp="$(mktemp)"
    TARN_HBA_LINES="$3" awk '
      !done && /^[[:space:]]*(local|host|hostssl|hostnossl|hostgssenc|hostnogssenc)[[:space:]]/ {
        print ENVIRON["TARN_HBA_LINES"]
        done = 1
      }
      { print }
    ' "$1" >"$tmp"
    cat "$tmp" >"$1" && rm -f "$tmp"
    psql "$pg_admin" -Atc "SELECT pg_reload_conf()" >/dev/null || fail "SELECT pg_reload_conf()"
  }
  if [[ "$(id -u)" != 0 ]] || ! command -v psql >/dev/null; then
    echo "==> not root (or no psql): the PostgreSQL test roles are not set up; tests/tls.rs and the COPY client's authentication tests will skip"
  elif ! hba="$(psql "$pg_admin" -Atc 'SHOW hba_file' 2>/dev/null)" || [[ ! -w "$hba" ]]; then
    echo "==> cannot read or write PostgreSQL's pg_hba.conf via $pg_admin: tests/tls.rs and the COPY client's authentication tests will skip"
  else
    if [[ "$(psql "$pg_admin" -Atc "SELECT count(*) FROM pg_roles WHERE rolname = 'tarn_tls'")" == 0 ]]; then
      psql "$pg_admin" -qc "CREATE ROLE tarn_tls LOGIN" >/dev/null || fail "CREATE ROLE tarn_tls"
      echo "==> created the PostgreSQL role tarn_tls (LOGIN, no password) for tests/tls.rs"
    fi
    if ! grep -Eq '^hostssl[[:space:]]+all[[:space:]]+tarn_tls[[:space:]]' "$hba"; then
      pg_hba_first "$hba" before-tarn-tls "# tarn tests/run.sh: the role tarn_tls may only connect over TLS (tests/tls.rs)
hostssl all tarn_tls 127.0.0.1/32 trust
hostssl all tarn_tls ::1/128 trust
host    all tarn_tls 127.0.0.1/32 reject
host    all tarn_tls ::1/128 reject"
      echo "==> $hba: added 'hostssl all tarn_tls ... trust' and 'host all tarn_tls ... reject' before the other lines (old file: $hba.before-tarn-tls); configuration reloaded"
    fi
    for role_stored in tarn_scram:scram-sha-256 tarn_md5:md5 tarn_password:scram-sha-256; do
      role="${role_stored%%:*}" stored="${role_stored#*:}"
      if [[ "$(psql "$pg_admin" -Atc "SELECT count(*) FROM pg_roles WHERE rolname = '$role'")" == 0 ]]; then
        psql "$pg_admin" -qc "SET password_encryption = '$stored'; CREATE ROLE $role LOGIN PASSWORD '$role-pw'" >/dev/null \
          || fail "CREATE ROLE $role"
        echo "==> created the PostgreSQL role $role (LOGIN, password '$role-pw' stored as $stored)"
      fi
    done
    if ! grep -Eq '^host[[:space:]]+all[[:space:]]+tarn_scram[[:space:]]' "$hba"; then
      pg_hba_first "$hba" before-tarn-auth "# tarn tests/run.sh: roles that log in with a password (import/src/pgwire.rs)
host    all tarn_scram 127.0.0.1/32 scram-sha-256
host    all tarn_scram ::1/128 scram-sha-256
host    all tarn_md5 127.0.0.1/32 md5
host    all tarn_md5 ::1/128 md5
host    all tarn_password 127.0.0.1/32 password
host    all tarn_password ::1/128 password"
      echo "==> $hba: added 'host all tarn_scram ... scram-sha-256', 'host all tarn_md5 ... md5' and 'host all tarn_password ... password' before the other lines (old file: $hba.before-tarn-auth); configuration reloaded"
    fi
  fi
fi

# --- wal_level = logical for the change data capture tests (tests/cdc.rs) ------------------
# As root, idempotently: when the server's wal_level is not `logical`, ALTER SYSTEM SET
# wal_level = logical and restart the cluster (pg_ctlcluster; a few seconds), once: later runs
# find it logical and change nothing. The role tarn_tls gets REPLICATION (CDC over TLS).
# Stale replication slots the CDC tests left (`tarn_test_%`, not active) are dropped: a
# leftover slot keeps WAL on the server. Not root: tests/cdc.rs skips and says how to enable it.
if [[ "${TARN_TEST_POSTGRES:-}" != "skip" ]] && command -v psql >/dev/null; then
  pg_admin="${TARN_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
  if [[ "$(psql "$pg_admin" -Atc 'SHOW wal_level' 2>/dev/null)" != logical ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v pg_ctlcluster >/dev/null; then
      port="$(psql "$pg_admin" -Atc 'SHOW port')"
      read -r ver name < <(pg_lsclusters -h | awk -v p="$port" '$3 == p {print $1, $2; exit}')
      [[ -n "${ver:-}" ]] || fail "no Debian PostgreSQL cluster listens on port $port"
      psql "$pg_admin" -qc "ALTER SYSTEM SET wal_level = logical" || fail "ALTER SYSTEM SET wal_level = logical"
      without_inherited_fds pg_ctlcluster "$ver" "$name" restart || fail "pg_ctlcluster $ver $name restart"
      for _ in $(seq 60); do pg_isready -q -h 127.0.0.1 -p "$port" && break; sleep 0.5; done
      [[ "$(psql "$pg_admin" -Atc 'SHOW wal_level')" == logical ]] || fail "wal_level is still not logical"
      echo "==> PostgreSQL $ver/$name: ALTER SYSTEM SET wal_level = logical, restarted once for tests/cdc.rs"
    else
      echo "==> PostgreSQL's wal_level is not logical and this is not root: tests/cdc.rs will skip (as a superuser: ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL)"
    fi
  fi
  psql "$pg_admin" -qc "DO \$\$BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tarn_tls' AND NOT rolreplication)
     THEN ALTER ROLE tarn_tls REPLICATION; END IF; END\$\$" >/dev/null 2>&1 || true
  psql "$pg_admin" -Atc "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
     WHERE slot_name LIKE 'tarn\\_test\\_%' AND NOT active" >/dev/null 2>&1 || true
fi

# --- Rust ---------------------------------------------------------------------------------
step "cargo fmt --all --check"
cargo fmt --all --check || fail "cargo fmt --all --check (run \`cargo fmt --all\` and commit)"

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings \
  || fail "cargo clippy --workspace --all-targets -- -D warnings"

step "cargo build --bins"
cargo build --bins || fail "cargo build --bins"

step "cargo test --workspace"
cargo test --workspace || fail "cargo test --workspace"

TARN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/tarn"
case "$TARN_BIN" in /*) ;; *) TARN_BIN="$ROOT/$TARN_BIN" ;; esac
[[ -x "$TARN_BIN" ]] || fail "cargo build did not produce $TARN_BIN"

# --- Interop ------------------------------------------------------------------------------
step "pytest tests/interop (TARN_BIN=$TARN_BIN)"
set +e
# shellcheck disable=SC2086 # PYTEST_ARGS is a list of words on purpose
TARN_BIN="$TARN_BIN" "$VENV/bin/python" -m pytest tests/interop -q ${PYTEST_ARGS:-}
status=$?
set -e
case "$status" in
  0) ;;
  5) fail "pytest collected no tests in tests/interop" ;;
  *) fail "pytest tests/interop exited with $status" ;;
esac

# --- The benchmark harness runs (tiny data, not timed: see bench/run.py) -------------------
if [[ "${TARN_TEST_POSTGRES:-}" != "skip" ]]; then
  step "bench/run.py --tiny (checks the harness works; figures meaningless at this size)"
  TARN_BIN="$TARN_BIN" "$VENV/bin/python" bench/run.py --tiny || fail "bench/run.py --tiny"
fi

echo
echo "run.sh: ALL TESTS PASSED (cargo test --workspace, pytest tests/interop, bench --tiny)"
