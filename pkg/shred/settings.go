package shred

import (
	"errors"
	"log/slog"
	"time"

	"github.com/consentgate/consentgate/pkg/envflag"
)

// Settings are a service's settings of the keys: the keys topic, the
// key-encryption key and the rotation of data keys. The enforcer needs
// all of them when its policy encrypts; consent-sync only the topic (an
// erasure needs no key material); a consumer that decrypts the topic and
// the key-encryption key.
type Settings struct {
	// Topic is the compacted keys topic (KEYS_TOPIC).
	Topic string
	// KEKFile is the file of the local key-encryption keys
	// (CONSENT_KEK_FILE); KEK the same text inline (CONSENT_KEK). Never
	// logged.
	KEKFile, KEK string
	// RotateAfter is the age after which a subject's data key is
	// replaced by a new version for new ciphertext (KEYS_ROTATE_AFTER; 0:
	// never). Older versions still decrypt.
	RotateAfter time.Duration
}

// DefaultSettings returns the settings used when nothing is set.
func DefaultSettings() Settings { return Settings{Topic: DefaultTopic} }

// Flags declares the settings on s; withKEK adds the key-encryption key
// and the rotation (services that encrypt or decrypt).
func (c *Settings) Flags(s *envflag.Set, withKEK bool) {
	s.String(&c.Topic, "keys-topic", "KEYS_TOPIC", "compacted topic of the subjects' data keys (encrypt rules; an erasure destroys the subject's keys there); empty: none")
	if !withKEK {
		return
	}
	s.String(&c.KEKFile, "kek-file", "CONSENT_KEK_FILE", "file of the key-encryption keys that wrap the data keys: one or more lines, each the base64 of 32 random bytes; the first wraps, all unwrap (required when the policy encrypts)")
	s.Secret(&c.KEK, "kek", "CONSENT_KEK", "the same text inline, instead of CONSENT_KEK_FILE")
	s.Duration(&c.RotateAfter, "keys-rotate-after", "KEYS_ROTATE_AFTER", "age after which a subject's data key gets a new version for new ciphertext (older versions still decrypt); 0 never rotates")
}

// Validate reports every problem at once, each with what to set; needKEK
// says the service cannot run without a key-encryption key.
func (c Settings) Validate(needKEK bool) error {
	var errs []error
	if needKEK && c.Topic == "" {
		errs = append(errs, errors.New("the policy encrypts fields but KEYS_TOPIC is empty: set it to the keys topic (consent.keys)"))
	}
	if c.KEKFile != "" && c.KEK != "" {
		errs = append(errs, errors.New("both CONSENT_KEK and CONSENT_KEK_FILE are set: set only one"))
	}
	if needKEK && c.KEKFile == "" && c.KEK == "" {
		errs = append(errs, errors.New("the policy encrypts fields but no key-encryption key is set: set CONSENT_KEK_FILE to a file holding the base64 of 32 random bytes (openssl rand -base64 32), the same for every service that encrypts or decrypts"))
	}
	if c.RotateAfter < 0 {
		errs = append(errs, errors.New("KEYS_ROTATE_AFTER is negative: set 0 (never) or a duration such as 2160h"))
	}
	return errors.Join(errs...)
}

// HasKEK reports whether a key-encryption key is set.
func (c Settings) HasKEK() bool { return c.KEKFile != "" || c.KEK != "" }

// LoadKEK returns the local key-encryption keys, nil when none is set
// (LocalKEKFromEnv over the settings). No error shows the file's content
// or the inline value.
func (c Settings) LoadKEK() (KEK, error) {
	k, ok, err := LocalKEKFromEnv(func(name string) string {
		switch name {
		case EnvKEKFile:
			return c.KEKFile
		case EnvKEK:
			return c.KEK
		}
		return ""
	})
	if err != nil || !ok {
		return nil, err // never a nil *LocalKEK in a non-nil KEK
	}
	return k, nil
}

// LogAttrs describes the settings for the start-up log, secrets masked.
func (c Settings) LogAttrs() []slog.Attr {
	return []slog.Attr{slog.String("keys_topic", c.Topic), slog.Bool("kek_set", c.HasKEK()), slog.Duration("keys_rotate_after", c.RotateAfter)}
}
