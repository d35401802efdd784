// Package shred encrypts a customer's personal fields under a key of that
// customer's own (a data key) and erases them by destroying the key:
// crypto-shredding. Every copy of the data downstream — topics, lakes,
// backups — becomes unreadable at once, without anyone having to find it.
//
// # What a ciphertext looks like
//
// A bytes field holds the binary envelope:
//
//	offset  size  meaning
//	0       3     magic "cg" 0x01 (format version 1)
//	3       1     mode: 'D' deterministic (AES-256-SIV, RFC 5297)
//	                    'R' randomised (AES-256-GCM)
//	4       16    key id (random, unique per data key)
//	20      4     key version, uint32 big-endian (1, 2, ... per subject)
//	24      ...   D: 16-byte synthetic IV || ciphertext
//	              R: 12-byte random nonce || ciphertext || 16-byte tag
//
// The first 24 bytes (the header) are the associated data of the
// encryption: changing any byte of a ciphertext, header included, makes it
// fail to decrypt. A string field holds "cg1:" followed by the unpadded
// URL-safe base64 (RFC 4648 §5) of the envelope, e.g.
// "cg1:Y2cBRKChoqOk...". IsCiphertext and Parse/ParseString recognise
// both forms and read the header without a key.
//
// Deterministic encryption gives equal ciphertexts for equal values of one
// subject (so joins and group-bys on the encrypted column still work within
// a subject; across subjects the keys differ); it reveals which of a
// subject's values are equal. Randomised encryption reveals nothing but
// the length. The policy chooses per rule (pkg/policy, "encryption").
//
// A data key is 32 random bytes. The AES-SIV key is HKDF-SHA256(data key,
// no salt, info "consentgate/v1/aes-siv", 64 bytes); the AES-GCM key is
// HKDF-SHA256(data key, no salt, info "consentgate/v1/aes-gcm", 32 bytes).
// AES-SIV is tink-go's (daead/subtle); AES-GCM and HKDF are Go's standard
// library. Any language with these primitives can decrypt: a consumer that
// holds the data key needs nothing from this package.
//
// # The keys topic
//
// The data keys live in one compacted Kafka topic, consent.keys by default,
// which is their system of record. Its records are Avro, in the
// single-object encoding, schema consentgate.keys.KeyEvent
// (schemas/subject_key.avsc):
//
//   - DATA_KEY, Kafka key "key:" + hex(key id) + ":" + subject: one data
//     key, wrapped (encrypted) by a key-encryption key (KEK) that never
//     leaves the services. One record per key, never updated. Two enforcers
//     that create a first key for one subject at the same moment both
//     write theirs; both stay valid, so no ciphertext is ever orphaned.
//   - SUBJECT_ERASED, Kafka key "erased:" + subject: the subject was
//     erased (change_id and erasure_captured_at name the ERASE consent
//     change). Every DATA_KEY of the subject made without knowing this
//     erasure is dead from the moment the marker is read: a DATA_KEY
//     records the newest erasure the consent state it was made for knew
//     (its change_id and erasure_captured_at, none for a subject never
//     erased), and erasures are ordered as the consent store orders them
//     (captured_at to the millisecond, then change id byte-wise), not by
//     offset. A key made for a grant given after the erasure (knowing it)
//     lives on, so an erasure marked again (a redelivery, a late and older
//     ERASE, a replay) destroys nothing a later grant needs.
//   - a tombstone (null value) with a DATA_KEY's Kafka key destroys that
//     key for good; compaction then removes its material from the broker.
//
// Every record of a subject goes to partition murmur2(subject) mod the
// partition count (Balancer, Partition; the hash of the Java client and of
// kafka-go's Murmur2Balancer), so that one partition holds a subject's keys
// and markers (a ring reads a new key back from its partition before it
// uses it, and so sees every marker written before it). The partition
// count must never change. Records of any other format in
// the topic are skipped and counted (Ring.Skipped), never used.
//
// The KEK: LoadLocalKEK/ParseLocalKEK read a file of lines, each the
// standard base64 of 32 random bytes (`openssl rand -base64 32`); the first
// line wraps new keys, every line unwraps (rotate the KEK by putting a new
// line first and keeping the old ones). The services read the file named by
// CONSENT_KEK_FILE, or the same text from CONSENT_KEK (LocalKEKFromEnv). A
// KMS can implement the KEK interface instead. Each wrapped key is bound
// to its key id, version and subject: it cannot be moved to another record.
// Without the KEK the topic is useless, so back the KEK up apart from the
// topic; a wrong KEK makes the ring fail (an error naming the key id),
// never silently create new keys.
//
// # Guarantees
//
//   - A ciphertext is published only after its data key was written to the
//     keys topic with acks=all (Ring.Keys returns a key only then). So in a
//     topic read to its end, an unknown key id means a destroyed key:
//     Ring.Key and the Decrypt methods return ErrErased for it. The
//     converse does not hold: an id the topic never held also gives
//     ErrErased. Compaction removes a destroyed key's record and, after
//     delete.retention.ms, its tombstone, so the topic keeps no trace of
//     the ids it destroyed (only the subject's marker), and a ring cannot
//     tell a destroyed id from one never written. A string of ciphertext
//     form in a field nobody encrypted (a customer's value copied through
//     a kept field, a forged one) therefore reads as erased (DecryptValue
//     lists it in Decrypted.Erased). Which fields were encrypted is the
//     policy's to say (its encrypt rules, the audit's treated fields);
//     which keys were destroyed, the ledger's (the Destroyed events of
//     Ring.Shred).
//   - A key is never updated or reused; rotation (RotateAfter) adds a key
//     with the next version, and the older ones keep decrypting what they
//     encrypted until the subject is erased.
//   - No data key, KEK or subject id appears in a log line or an error of
//     this package; DataKey and LocalKEK print their ids only.
//
// # What an erasure does
//
// consent-sync marks every ERASE it consumes with a SUBJECT_ERASED marker
// (Ring.Erase; skipped when the ring holds this erasure or a newer one)
// before it commits the change (reading the topic to its end first, so a
// newer marker another instance wrote is known). An enforcer asks for keys
// with the erasure its consent state knows (Ring.KeysKnowing): it gets only
// a key made knowing exactly that erasure (a new one when there is none),
// and ErrStaleErasure when the ring holds a newer marker, or a key made
// knowing a newer erasure, than the state knows (the state is older than
// another's; the batch is retried until it catches up). A marker written
// without the erasure's captured_at kills every key of the subject read
// before it. From the marker on:
//
//  1. every ring that has read the marker drops the subject's older keys
//     from memory at once: their ciphertexts give ErrErased everywhere the
//     keys are looked up through a Ring;
//  2. Ring.Shred (run by consent-sync) writes a tombstone for each of those
//     keys and reports each destroyed key (for the ledger), also after a
//     crash between the marker and the tombstones: a restarted Shred reads
//     the marker again and finishes the job;
//  3. compaction removes the wrapped keys from the broker's disks; the
//     marker stays, so a ring reading the topic from the start still knows
//     that the subject's older keys are dead.
//
// A key created after the marker (the customer came back and consented
// again) stays alive and is not affected by the old erasure.
//
// The window: an enforcer that has not yet read the marker (normally
// milliseconds, longer if it lags) may still encrypt a few events under
// the old key. Those ciphertexts become unreadable with the rest — the key
// is dead whatever was encrypted under it — so the window loses data, it
// never leaks it. Anyone who copied a data key out of a ring (a consumer
// that cached decrypted keys or plaintext) is outside this guarantee.
//
// # Use
//
//	ring, err := shred.OpenRing(ctx, shred.RingConfig{Brokers: brokers,
//	    Dialer: sec.Dialer(id), Transport: sec.Transport(id), KEK: kek})
//	err = ring.WaitCaughtUp(ctx)
//	keys, err := ring.Keys(ctx, subjects)        // enforcer, per batch
//	s, err := keys[subject].EncryptString(v, true)
//	v, err := ring.DecryptString(ctx, s)         // consumer; ErrErased
//	err = ring.Erase(ctx, subject, changeID)     // consent-sync
//	go ring.Shred(ctx, onDestroyed)              // consent-sync
package shred
