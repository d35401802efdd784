#!/bin/sh
# Makes the compose stack's secrets once, in the `secrets` volume, and gives
# them and the ledger's data volume to the services' user (65532): the
# pseudonymisation key (32 random bytes, hex), the intake's bearer token and
# the ledger console's bearer token. A file that exists is kept, so pseudonyms
# and tokens stay the same across runs. Nothing secret is printed; read a
# token with
#   docker compose run --rm --no-deps --entrypoint cat init-secrets /secrets/intake.tokens
set -eu
umask 077
cd /secrets
for f in pseudonymisation.key intake.tokens console.tokens; do
	if [ ! -s "$f" ]; then
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f.tmp"
		echo >> "$f.tmp"
		mv "$f.tmp" "$f"
		echo "created $f"
	fi
	chown 65532:65532 "$f"
	chmod 0400 "$f"
done
chown 65532:65532 /ledger
echo "secrets ready"
