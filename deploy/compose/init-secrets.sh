#!/bin/sh
# Makes the compose stack's secrets once, in the `secrets` volume, and gives
# them and the ledger's data volume to the services' user (65532): the
# pseudonymisation key (32 random bytes, hex), the key-encryption key of the
# data keys (consent.kek: 32 random bytes, standard base64, as package shred
# reads CONSENT_KEK_FILE), the intake's bearer token and the ledger
# console's bearer token; and Grafana's admin password, to Grafana's user
# (472). A file that exists is kept, so pseudonyms, tokens, the
# password and the KEK stay the same across runs (a new KEK would leave
# every data key on the keys topic unreadable). Each service mounts only its own
# file. Nothing secret is printed; read one with
#   docker compose run --rm --no-deps --entrypoint cat init-secrets /secrets/intake.tokens
set -eu
umask 077
cd /secrets
for f in pseudonymisation.key consent.kek intake.tokens console.tokens grafana-admin.password; do
	if [ ! -s "$f" ]; then
		if [ "$f" = consent.kek ]; then
			head -c 32 /dev/urandom | base64 | tr -d '\n' > "$f.tmp"
		else
			head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f.tmp"
		fi
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
