package signalsin

import (
	"context"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/signals"
	"github.com/consentgate/consentgate/pkg/stream"
)

// FuzzProcess: whatever a record's value, Process never fails without a
// registry (nothing can be transient), never panics, and returns either
// valid changes for the consent topic or exactly one dead letter carrying
// the value unchanged with one of the documented reasons; nothing partial.
func FuzzProcess(f *testing.F) {
	codec := newCodec(f)
	for _, body := range []string{decidingJSON, nothingJSON, gpcJSON, grantJSON} {
		f.Add(encode(f, codec, submission(f, body)))
	}
	bad := submission(f, gpcJSON)
	bad.Signals = append(bad.Signals, signals.Signal{Type: "gpp", Value: "DBABM"})
	f.Add(encode(f, codec, bad))
	f.Add([]byte{})
	f.Add([]byte("\xc3\x01"))
	c := newConsumer(f, codec)
	f.Fuzz(func(t *testing.T, value []byte) {
		out, err := c.Process(context.Background(), []kafka.Message{record(9, "k", value, received)})
		if err != nil {
			t.Fatalf("Process failed with no registry: %v", err)
		}
		if len(out) == 1 && out[0].Topic == signalsTopic+".dlq" {
			reason, _ := stream.Header(out[0], stream.HeaderDLQReason)
			known := false
			for _, r := range Reasons {
				known = known || r == reason
			}
			if !known || string(out[0].Value) != string(value) {
				t.Fatalf("dead letter with reason %q, value kept %v", reason, string(out[0].Value) == string(value))
			}
			return
		}
		for _, m := range out {
			if m.Topic != changesTopic {
				t.Fatalf("record on %s among changes", m.Topic)
			}
			ch := decodeChange(t, codec, m)
			if err := ch.Validate(); err != nil || string(m.Key) != ch.SubjectID {
				t.Fatalf("produced change %+v (key %q): %v", ch, m.Key, err)
			}
		}
	})
}
