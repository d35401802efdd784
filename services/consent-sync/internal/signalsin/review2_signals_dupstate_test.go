package signalsin

import (
	"bytes"
	"context"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/signals"
)

// TestReview2SignalsDuplicateStateKeyOnTopic pins (passing) that the
// consent.signals topic, like the HTTP intake (strictObject), refuses a
// Consent Mode state given twice. An Avro map is a sequence of key/value
// pairs on the wire and could repeat a key (denied, then granted); goavro
// refuses the duplicate, so the record is dead-lettered as undecodable and
// produces nothing, rather than a last-wins marketing GRANT (dev policy:
// consent_mode.ad_user_data and ad_personalization map marketing).
func TestReview2SignalsDuplicateStateKeyOnTopic(t *testing.T) {
	t.Parallel()
	codec := newCodec(t)
	c := newConsumer(t, codec)
	sub := signals.Submission{SubjectID: "sig-dup-1", CapturedAt: t0, Signals: []signals.Signal{{Type: "consent_mode",
		States: map[string]string{"ad_user_data": "denied", "ad_user_datX": "granted", "ad_personalization": "granted"}}}}
	// goavro writes a map in Go's map order: encode until the granted entry
	// comes after the denied one, then give it the same key (same length).
	var value []byte
	for i := 0; i < 200 && value == nil; i++ {
		b := encode(t, codec, sub)
		d, x := bytes.Index(b, []byte("ad_user_data")), bytes.Index(b, []byte("ad_user_datX"))
		if d < 0 || x < 0 {
			t.Fatal("setup: the state keys are not in the encoded record")
		}
		if x > d {
			value = bytes.Replace(b, []byte("ad_user_datX"), []byte("ad_user_data"), 1)
		}
	}
	if value == nil {
		t.Fatal("setup: the encoder never wrote the granted entry last")
	}
	if _, err := codec.Decode(context.Background(), value); err == nil {
		t.Error("a ConsentSignal whose states repeat ad_user_data decodes")
	}
	out, err := c.Process(context.Background(), []kafka.Message{record(1, "sig-dup-1", value, received)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Topic != signalsTopic+".dlq" || header(out[0], "consentgate.dlq.reason") != ReasonUndecodable {
		t.Fatalf("a record with a repeated state: %d records out, want its dead letter (undecodable) only", len(out))
	}
}
