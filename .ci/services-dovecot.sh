#!/usr/bin/env bash
# A throw-away IMAP server for the e-mail channel tests: Debian's dovecot on 127.0.0.1:10143,
# plain-text login (no TLS, loopback only), one test user with a Maildir under /tmp.
# Idempotent: does nothing when the instance already answers. The tests read
# TEST_IMAP_HOST / TEST_IMAP_PORT / TEST_IMAP_USER / TEST_IMAP_PASSWORD, whose defaults match.
set -euo pipefail

ROOT=/tmp/cc-dovecot
HOST=127.0.0.1
PORT="${TEST_IMAP_PORT:-10143}"
USER_NAME="${TEST_IMAP_USER:-cctest}"
PASSWORD="${TEST_IMAP_PASSWORD:-cctest-password}"

answers() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

if answers; then
  echo "dovecot already answers on $HOST:$PORT"
  exit 0
fi

if ! command -v dovecot >/dev/null 2>&1; then
  echo "Installing Debian's dovecot-imapd"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq dovecot-imapd >/dev/null
  # The package starts a system-wide instance on 143/993 where systemd runs; ours is separate.
fi

mkdir -p "$ROOT/run" "$ROOT/state" "$ROOT/mail"
chown 65534:65534 "$ROOT/mail"
printf '%s:{PLAIN}%s\n' "$USER_NAME" "$PASSWORD" > "$ROOT/users"
chmod 0644 "$ROOT/users"
cat > "$ROOT/dovecot.conf" <<CONF
# Test-only instance (written by .ci/services-dovecot.sh).
instance_name = cc-dovecot
base_dir = $ROOT/run
state_dir = $ROOT/state
protocols = imap
listen = $HOST
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = $ROOT/dovecot.log
info_log_path = $ROOT/dovecot.log
mail_location = maildir:$ROOT/mail/%u
mail_uid = 65534
mail_gid = 65534
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $ROOT/users
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$ROOT/mail/%u
}
namespace inbox {
  inbox = yes
  separator = /
}
protocol imap {
  mail_max_userip_connections = 200
}
service imap-login {
  inet_listener imap {
    address = $HOST
    port = $PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF

dovecot -c "$ROOT/dovecot.conf"
for _ in $(seq 1 30); do
  answers && { echo "dovecot answers on $HOST:$PORT (user $USER_NAME)"; exit 0; }
  sleep 0.5
done
echo "FAIL: dovecot did not start; its log:"
cat "$ROOT/dovecot.log" 2>/dev/null || true
exit 1
