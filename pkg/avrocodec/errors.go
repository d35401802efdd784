package avrocodec

import (
	"errors"
	"fmt"
)

// Reason classifies why bytes could not be decoded. Its string value is short
// and stable, suitable for a dead-letter header or a metric label.
type Reason string

// Reasons of a DecodeError.
const (
	// ReasonEmpty: the message has no bytes.
	ReasonEmpty Reason = "empty"
	// ReasonTruncated: the message is shorter than its framing header.
	ReasonTruncated Reason = "truncated"
	// ReasonBadMagic: the first bytes are neither the Confluent magic byte
	// 0x00 nor the single-object marker 0xC3 0x01.
	ReasonBadMagic Reason = "bad_magic"
	// ReasonUnknownFingerprint: no catalog schema has the single-object
	// fingerprint.
	ReasonUnknownFingerprint Reason = "unknown_fingerprint"
	// ReasonUnknownSchemaID: the schema registry does not know the Confluent
	// schema id, returned a schema that is not a usable Avro record schema,
	// or no registry is configured.
	ReasonUnknownSchemaID Reason = "unknown_schema_id"
	// ReasonBadPayload: the Avro binary does not decode with the writer
	// schema.
	ReasonBadPayload Reason = "bad_payload"
	// ReasonIncompatible: the writer's data cannot be resolved into the
	// reader schema.
	ReasonIncompatible Reason = "incompatible"
	// ReasonTrailingBytes: bytes remain after the Avro datum.
	ReasonTrailingBytes Reason = "trailing_bytes"
)

// DecodeError is a permanent failure to decode a message: retrying the same
// bytes gives the same result, so the message belongs on the dead-letter
// topic with Reason. Error() names the reason and schema elements, never
// payload bytes or field values.
type DecodeError struct {
	Reason Reason
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Err == nil {
		return "decode avro: " + string(e.Reason)
	}
	return "decode avro: " + string(e.Reason) + ": " + e.Err.Error()
}

func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(r Reason, format string, args ...any) error {
	return &DecodeError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// EncodeError is a permanent failure to encode a value: the value does not
// fit the schema. Error() names the schema, never field values (goavro's own
// messages may quote values, so they are reachable only through Unwrap).
type EncodeError struct {
	Schema string
	Err    error
}

func (e *EncodeError) Error() string {
	if e.Schema == "" {
		return "encode avro: value does not match the schema"
	}
	return "encode avro: value does not match schema " + e.Schema
}

func (e *EncodeError) Unwrap() error { return e.Err }

// ErrRegistryUnavailable marks a failure to fetch a writer schema from the
// schema registry that may succeed later (network error, timeout, 5xx,
// authorisation trouble). It is not a DecodeError: the caller should pause
// and retry rather than dead-letter the message.
var ErrRegistryUnavailable = errors.New("schema registry unavailable")

// ErrUnknownSchema is returned by the encoders for a full name the catalog
// does not know. It is wrapped in an *EncodeError.
var ErrUnknownSchema = errors.New("unknown schema")

// IsPermanent reports whether err is a permanent codec failure (a
// *DecodeError or *EncodeError): the message should go to the dead-letter
// topic. Errors wrapping ErrRegistryUnavailable or a context error are not
// permanent.
func IsPermanent(err error) bool {
	var de *DecodeError
	var ee *EncodeError
	return errors.As(err, &de) || errors.As(err, &ee)
}

// IsRetryable reports whether err is a transient failure (the registry could
// not be reached) after which the same bytes may decode.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrRegistryUnavailable)
}
