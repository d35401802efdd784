// Package avrocodec decodes and encodes consentgate's Avro events in both
// wire framings the pipeline accepts, and resolves every event into the
// latest (reader) version of its schema.
//
// Framings:
//
//   - Confluent Schema Registry: magic byte 0x00, 4-byte big-endian schema
//     id, Avro binary. The writer schema comes from a registry (see Registry).
//   - Avro single-object encoding: 0xC3 0x01, 8-byte little-endian
//     CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form,
//     Avro binary. The writer schema comes from the local catalog (the
//     schemas/ folder). The fingerprint is the specification's (see
//     CanonicalForm and Fingerprint64), so events of any spec-compliant
//     producer decode and every reader can resolve what this package
//     writes; the fingerprint goavro computes, which consentgate wrote
//     before, is still read (Schema.LegacyFingerprint) but never written.
//
// goavro v2 decodes only with the exact writer schema, so this package
// implements Avro schema resolution itself (see resolve.go): fields are
// matched by name and aliases, missing fields take the reader default, extra
// writer fields are dropped, numbers are promoted, enums are matched by
// symbol, and union branches are chosen as the specification says.
//
// Values are goavro's native form: a record is map[string]any, a non-null
// union value is map[string]any{"<type name>": v}, timestamp-millis is
// time.Time. Field and StringField read through unions so that callers need
// not know that form.
//
// ReadEnvelope (envelope.go) reads what a consent decision needs (framing,
// writer and reader schema, event_id, subject_id) straight from the Avro
// binary and checks that the whole datum decodes and resolves, with the
// errors Decode would give, without building the value: a program compiled
// once per (writer, reader) pair walks the bytes. DecodeEnvelope decodes
// the full Record later, for an event that needs a treated copy.
//
// Errors are classified: *DecodeError and *EncodeError are permanent (the
// message goes to the dead-letter topic with DecodeError.Reason); an error
// wrapping ErrRegistryUnavailable is transient (pause and retry).
//
// Importing the package lowers goavro's process-wide goavro.MaxBlockCount to
// MaxBlockCount: goavro allocates an array or map for the block count it
// reads before reading the items, so a few garbage bytes could otherwise
// make it allocate gigabytes.
package avrocodec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/consentgate/consentgate/pkg/schemaregistry"
	"github.com/linkedin/goavro/v2"
)

// MaxBlockCount is the largest array or map block goavro will decode once
// this package is imported (see the package documentation). A Kafka message
// of a few megabytes cannot hold more items of any non-empty type.
const MaxBlockCount = 1 << 20

func init() {
	// A documented goavro safety knob; set once before any goroutine runs.
	if goavro.MaxBlockCount > MaxBlockCount {
		goavro.MaxBlockCount = MaxBlockCount
	}
}

// Framing is the wire framing of a message.
type Framing int

// Framings.
const (
	// FramingConfluent is the Confluent Schema Registry wire format.
	FramingConfluent Framing = iota + 1
	// FramingSingleObject is the Avro single-object encoding.
	FramingSingleObject
)

func (f Framing) String() string {
	switch f {
	case FramingConfluent:
		return "confluent"
	case FramingSingleObject:
		return "single-object"
	}
	return "unknown"
}

const (
	confluentMagic     = 0x00
	confluentHeaderLen = 5
	soeMagic0          = 0xC3
	soeMagic1          = 0x01
	soeHeaderLen       = 10
)

// Registry fetches writer schemas by Confluent schema id.
// *schemaregistry.Client satisfies it. Errors wrapping
// schemaregistry.ErrNotFound or schemaregistry.ErrNotAvro are permanent
// (ReasonUnknownSchemaID); any other error is treated as transient.
type Registry interface {
	Schema(ctx context.Context, id int) (string, error)
}

// Record is one decoded message.
type Record struct {
	// Schema is the reader schema Value is shaped by: the catalog's latest
	// version of the writer's full name, or the writer schema itself when
	// the catalog does not know that name (Confluent framing only).
	Schema *Schema
	// Value is the decoded record, resolved into Schema, in goavro's native
	// form. Callers must not modify it; build a copy to change it.
	Value map[string]any
	// Framing is the framing the message arrived in.
	Framing Framing
	// WriterID is the Confluent schema id of the writer; 0 for the
	// single-object framing.
	WriterID int
	// WriterFingerprint is the CRC-64-AVRO fingerprint of the writer schema
	// (its Schema.Fingerprint, the specification's, also when the message
	// was framed with the legacy goavro fingerprint).
	WriterFingerprint uint64

	writer *Schema
}

// Writer returns the schema the message was written with.
func (r *Record) Writer() *Schema { return r.writer }

// Codec decodes and encodes messages with a catalog and an optional
// registry. It is safe for concurrent use.
type Codec struct {
	cat *Catalog
	reg Registry

	mu   sync.RWMutex
	byID map[int]*Schema // writer schemas fetched from the registry

	programs sync.Map // programKey -> *program (see envelope.go)
}

// New returns a codec over the catalog cat. reg may be nil: Confluent-framed
// messages then fail with ReasonUnknownSchemaID.
func New(cat *Catalog, reg Registry) *Codec {
	return &Codec{cat: cat, reg: reg, byID: map[int]*Schema{}}
}

// Catalog returns the codec's catalog.
func (c *Codec) Catalog() *Catalog { return c.cat }

// SchemaByName returns the catalog's reader (latest) schema for a full name.
func (c *Codec) SchemaByName(fullName string) (*Schema, bool) {
	return c.cat.SchemaByName(fullName)
}

// Decode decodes one message in either framing and resolves it into the
// reader schema. It returns a *DecodeError for bytes that will never decode,
// and an error wrapping ErrRegistryUnavailable when the writer schema could
// not be fetched for now. ctx bounds the registry request, if one is needed.
func (c *Codec) Decode(ctx context.Context, data []byte) (*Record, error) {
	f, err := c.frame(ctx, data)
	if err != nil {
		return nil, err
	}
	return c.decodeFramed(f)
}

// framed is a message with its framing parsed: the writer schema is known
// and payload is the Avro binary datum.
type framed struct {
	framing  Framing
	writerID int
	writer   *Schema
	payload  []byte
}

// frame parses the framing of a message and finds its writer schema. The
// errors are those of Decode.
func (c *Codec) frame(ctx context.Context, data []byte) (framed, error) {
	var f framed
	if len(data) == 0 {
		return f, &DecodeError{Reason: ReasonEmpty}
	}
	var err error
	switch data[0] {
	case confluentMagic:
		if len(data) < confluentHeaderLen {
			return f, decodeErr(ReasonTruncated, "confluent header needs %d bytes, got %d", confluentHeaderLen, len(data))
		}
		f.framing = FramingConfluent
		f.writerID = int(binary.BigEndian.Uint32(data[1:5]))
		f.writer, err = c.writerByID(ctx, f.writerID)
		if err != nil {
			return f, err
		}
		f.payload = data[confluentHeaderLen:]
	case soeMagic0:
		if len(data) < 2 {
			return f, decodeErr(ReasonTruncated, "single-object header needs %d bytes, got %d", soeHeaderLen, len(data))
		}
		if data[1] != soeMagic1 {
			return f, decodeErr(ReasonBadMagic, "second byte of the single-object marker is 0x%02x, want 0x01", data[1])
		}
		if len(data) < soeHeaderLen {
			return f, decodeErr(ReasonTruncated, "single-object header needs %d bytes, got %d", soeHeaderLen, len(data))
		}
		f.framing = FramingSingleObject
		fp := binary.LittleEndian.Uint64(data[2:10])
		s, ok := c.cat.SchemaByFingerprint(fp)
		if !ok {
			return f, decodeErr(ReasonUnknownFingerprint, "no catalog schema has fingerprint %016x", fp)
		}
		f.writer = s
		f.payload = data[soeHeaderLen:]
	default:
		return f, decodeErr(ReasonBadMagic, "first byte 0x%02x is neither 0x00 (confluent) nor 0xc3 (single-object)", data[0])
	}
	return f, nil
}

// decodeFramed decodes the payload of a framed message with its writer
// schema and resolves it into the reader schema.
func (c *Codec) decodeFramed(f framed) (*Record, error) {
	rec := &Record{Framing: f.framing, WriterID: f.writerID, WriterFingerprint: f.writer.Fingerprint, writer: f.writer}
	native, err := decodeBinary(rec.writer, f.payload)
	if err != nil {
		return nil, err
	}
	rec.Schema = c.readerFor(rec.writer)
	if sameShape(rec.writer, rec.Schema) {
		rec.Value = native
		return rec, nil
	}
	v, err := resolver{}.resolve(rec.writer.root, rec.Schema.root, native)
	if err != nil {
		return nil, incompatibleErr(rec.writer, rec.Schema, err)
	}
	rec.Value = v.(map[string]any)
	return rec, nil
}

func incompatibleErr(writer, reader *Schema, err error) error {
	return &DecodeError{Reason: ReasonIncompatible, Err: fmt.Errorf("read %s as version %d: %w", writer.FullName, reader.Version, err)}
}

// decodeBinary decodes an Avro binary datum with the writer schema. goavro
// is third-party code fed with untrusted bytes: a panic in it is turned into
// a DecodeError rather than crashing the service.
func decodeBinary(writer *Schema, payload []byte) (value map[string]any, err error) {
	defer func() {
		if p := recover(); p != nil {
			value, err = nil, decodeErr(ReasonBadPayload, "decoder panicked on %s data", writer.FullName)
		}
	}()
	native, rest, err := writer.codec.NativeFromBinary(payload)
	if err != nil {
		return nil, &DecodeError{Reason: ReasonBadPayload, Err: fmt.Errorf("%s: %w", writer.FullName, err)}
	}
	if len(rest) != 0 {
		return nil, decodeErr(ReasonTrailingBytes, "%d bytes after the %s datum", len(rest), writer.FullName)
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, decodeErr(ReasonBadPayload, "%s did not decode to a record", writer.FullName)
	}
	return m, nil
}

// readerFor returns the schema a writer's data is read as: the catalog's
// latest version of the writer's full name (or of a record alias of it), or
// the writer itself when the catalog does not know the name.
func (c *Codec) readerFor(writer *Schema) *Schema {
	if r, ok := c.cat.SchemaByName(writer.FullName); ok {
		return r
	}
	return writer
}

// writerByID returns the parsed writer schema of a Confluent schema id,
// fetching it from the registry the first time.
func (c *Codec) writerByID(ctx context.Context, id int) (*Schema, error) {
	c.mu.RLock()
	s, ok := c.byID[id]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	if c.reg == nil {
		return nil, decodeErr(ReasonUnknownSchemaID, "schema id %d: no schema registry configured", id)
	}
	text, err := c.reg.Schema(ctx, id)
	if err != nil {
		if errors.Is(err, schemaregistry.ErrNotFound) || errors.Is(err, schemaregistry.ErrNotAvro) {
			return nil, &DecodeError{Reason: ReasonUnknownSchemaID, Err: fmt.Errorf("schema id %d: %w", id, err)}
		}
		return nil, fmt.Errorf("fetch writer schema %d: %w: %w", id, ErrRegistryUnavailable, err)
	}
	s, err = buildSchema(text)
	if err != nil {
		return nil, &DecodeError{Reason: ReasonUnknownSchemaID, Err: fmt.Errorf("schema id %d: %w", id, err)}
	}
	// Annotations of a catalog schema with the same canonical form win:
	// registries may strip custom properties.
	// The model (Root) takes them too: it is what judging the writer's
	// fields reads (package decision).
	if local, ok := c.cat.byFingerprint[s.Fingerprint]; ok {
		s.Annotations, s.Fields = local.Annotations, local.Fields
		copyCategories(s.root, local.root, map[*Type]bool{})
	}
	c.mu.Lock()
	if prev, ok := c.byID[id]; ok {
		s = prev
	} else {
		c.byID[id] = s
	}
	c.mu.Unlock()
	return s, nil
}

// EncodeSingle encodes value with the catalog's latest schema of fullName in
// the single-object encoding. value is in goavro's native form (as Decode
// returns it); fields it lacks take their defaults. Failures are
// *EncodeError.
func (c *Codec) EncodeSingle(fullName string, value map[string]any) ([]byte, error) {
	s, ok := c.cat.SchemaByName(fullName)
	if !ok {
		return nil, &EncodeError{Err: fmt.Errorf("%w: %s", ErrUnknownSchema, fullName)}
	}
	return encodeSingle(s, value)
}

// EncodeSingle encodes value with this exact schema (not the latest version
// of its name) in the single-object encoding, as a producer that knows only
// this version would. Failures are *EncodeError.
func (s *Schema) EncodeSingle(value map[string]any) ([]byte, error) {
	return encodeSingle(s, value)
}

func encodeSingle(s *Schema, value map[string]any) ([]byte, error) {
	buf := make([]byte, soeHeaderLen, soeHeaderLen+256)
	buf[0], buf[1] = soeMagic0, soeMagic1
	binary.LittleEndian.PutUint64(buf[2:], s.Fingerprint)
	out, err := s.codec.BinaryFromNative(buf, value)
	if err != nil {
		return nil, &EncodeError{Schema: s.FullName, Err: err}
	}
	return out, nil
}

// EncodeConfluent encodes value with the schema registered under id, in the
// Confluent framing. value must be shaped like that schema.
func (c *Codec) EncodeConfluent(ctx context.Context, id int, value map[string]any) ([]byte, error) {
	s, err := c.writerByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return encodeConfluent(s, id, value)
}

func encodeConfluent(s *Schema, id int, value map[string]any) ([]byte, error) {
	buf := make([]byte, confluentHeaderLen, confluentHeaderLen+256)
	binary.BigEndian.PutUint32(buf[1:], uint32(id))
	out, err := s.codec.BinaryFromNative(buf, value)
	if err != nil {
		return nil, &EncodeError{Schema: s.FullName, Err: err}
	}
	return out, nil
}

// EncodeLike encodes value, shaped like rec.Schema (typically a redacted
// copy of rec.Value), in the framing rec arrived in, so that output keeps
// the input's framing:
//
//   - single-object: encoded with rec.Schema, the catalog's latest version;
//   - Confluent, when the writer schema has the reader's canonical form and
//     logical types: encoded with it under the writer's id;
//   - Confluent otherwise: value is resolved back into the writer schema
//     (fields the writer lacks are dropped, writer-only fields take their
//     defaults, long narrows to int when it fits) and encoded under the
//     writer's id. No schema is registered. When value cannot be expressed
//     in the writer schema, the result is an *EncodeError.
func (c *Codec) EncodeLike(ctx context.Context, rec *Record, value map[string]any) ([]byte, error) {
	if rec == nil || rec.Schema == nil {
		return nil, &EncodeError{Err: errors.New("record has no schema")}
	}
	switch rec.Framing {
	case FramingSingleObject:
		return encodeSingle(rec.Schema, value)
	case FramingConfluent:
		writer := rec.writer
		if writer == nil {
			var err error
			if writer, err = c.writerByID(ctx, rec.WriterID); err != nil {
				return nil, err
			}
		}
		if sameShape(writer, rec.Schema) {
			return encodeConfluent(writer, rec.WriterID, value)
		}
		back, err := resolver{narrow: true}.resolve(rec.Schema.root, writer.root, value)
		if err != nil {
			return nil, &EncodeError{Schema: writer.FullName, Err: fmt.Errorf("resolve to writer schema %d: %w", rec.WriterID, err)}
		}
		return encodeConfluent(writer, rec.WriterID, back.(map[string]any))
	default:
		return nil, &EncodeError{Schema: rec.Schema.FullName, Err: fmt.Errorf("unknown framing %d", rec.Framing)}
	}
}
