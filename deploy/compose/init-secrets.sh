#!/bin/sh
# Makes the compose stack's secrets once, in the `secrets` volume, and gives
# them and the ledger's data volume to the services' user (65532): the
# pseudonymisation key (32 random bytes, hex), the intake's bearer token and
# the ledger console's bearer token; and Grafana's admin password, to
# Grafana's user (472). A file that exists is kept, so pseudonyms, tokens and
# the password stay the same across runs. Each service mounts only its own
# file. Nothing secret is printed; read one with
#   docker compose run --rm --no-deps --entrypoint cat init-secrets /secrets/intake.tokens
set -eu
umask 077
cd /secrets
for f in pseudonymisation.key intake.tokens console.tokens grafana-admin.password; do
	if [ ! -s "$f" ]; then
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f.tmp"
		echo >> "$f.tmp"
		mv "$f.tmp" "$f"
		echo "created $f"
	fi
	owner=65532:65532
	[ "$f" = grafana-admin.password ] && owner=472:0
	chown "$owner" "$f"
	chmod 0400 "$f"
done
chown 65532:65532 /ledger
echo "secrets ready"
