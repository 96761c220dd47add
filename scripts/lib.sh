# Shared by the scripts: make sure the local Postgres is running, with the
# HyperLogLog extension the analytics rollups use (migrations/V24; Debian's
# postgresql-<version>-hll package, as the distribution builds it).
ensure_postgres() {
  local version
  version="$(ls /etc/postgresql | head -n1)"
  if [ ! -f "/usr/share/postgresql/$version/extension/hll.control" ]; then
    echo "==> installing the hll extension (apt-get install -y postgresql-$version-hll)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "postgresql-$version-hll"
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    echo "==> starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
    echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
    return 1
  fi
}

# The Python tools the tests use (schemathesis, openapi-spec-validator), pinned
# in tests/fuzz/requirements.txt, in target/pyenv.
ensure_pyenv() {
  local stamp=target/pyenv/.requirements
  if ! cmp -s tests/fuzz/requirements.txt "$stamp" 2>/dev/null; then
    echo "==> installing the Python test tools (tests/fuzz/requirements.txt)"
    python3 -m venv target/pyenv
    target/pyenv/bin/pip install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt
    cp tests/fuzz/requirements.txt "$stamp"
  fi
}
