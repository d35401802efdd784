package signalsin

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestReview2SignalsDeadLetterErrorEchoesSignalText shows that the
// consentgate.dlq.error header of an undecodable signal record can carry
// the record's own text: the codec's (goavro's) error is copied as it is,
// and goavro names the offending value, e.g. a Consent Mode state key that
// appears twice ("cannot decode binary map: duplicate key: \"...\""). The
// package documentation promises the header never holds a signal's text or
// a subject id; here a producer that put an e-mail address in a state key
// (a mis-mapped tag variable) gets it copied into a header of the
// dead-letter topic, which operators read and tools index. The error of an
// undecodable record must be the codec's reason without the values.
func TestReview2SignalsDeadLetterErrorEchoesSignalText(t *testing.T) {
	t.Parallel()
	codec := newCodec(t)
	c := newConsumer(t, codec)
	const secret, twin = "jane.doe@example.com", "jane.doe@example.coX"
	sub := signals.Submission{SubjectID: "sig-echo-1", CapturedAt: t0, Signals: []signals.Signal{{Type: "consent_mode",
		States: map[string]string{secret: "granted", twin: "denied"}}}}
	value := bytes.Replace(encode(t, codec, sub), []byte(twin), []byte(secret), 1)
	out, err := c.Process(context.Background(), []kafka.Message{record(3, "sig-echo-1", value, received)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("%d records out, want the dead letter", len(out))
	}
	for _, h := range out[0].Headers {
		if h.Key == stream.HeaderDLQError && strings.Contains(string(h.Value), secret) {
			t.Errorf("%s repeats a value of the record: %q", h.Key, h.Value)
		}
	}
}
