package intake

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/stream"
)

// TestHandlerAnswersARecordTheTopicRefusesForGoodAsPermanent: a valid change
// whose record is larger than the consent topic accepts (max.message.bytes
// below the body limit) can never be written. stream.WriteAll says so with a
// *stream.RejectedError; the intake must not answer 503 with Retry-After and
// "send it again" (the client would resend for ever, and the change is never
// recorded), but 413: the change is too large as it is, nothing was produced.
func TestHandlerAnswersARecordTheTopicRefusesForGoodAsPermanent(t *testing.T) {
	t.Parallel()
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1, MaxMessageBytes: 4096})
	const topic = "intake.refused"
	broker.CreateTopics(t, 1, topic)
	kc := stream.DefaultConfig()
	kc.Brokers = []string{broker.Addr}
	h := New(Options{Topic: topic, MaxBodyBytes: 64 << 10, ProduceTimeout: 10 * time.Second, Purposes: catalogue}, newCodec(t), kc)
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()

	body := strings.Replace(validGrant, `"preference-centre"`, `"`+strings.Repeat("s", 8192)+`"`, 1)
	start := time.Now()
	a := post(t, srv.URL, http.MethodPost, "application/json", body)
	if a.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413 for a record the topic refuses as too large (%v)", a.code, a.body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("answered after %v: a permanent refusal is not retried", took)
	}
	if n := h.Unavailable.Load(); n != 0 {
		t.Errorf("Unavailable = %d, want 0: the brokers answered", n)
	}
	if n := h.Rejected.Load(); n != 1 {
		t.Errorf("Rejected = %d, want 1", n)
	}
	if got := broker.ReadAll(t, topic, 300*time.Millisecond, 5*time.Second); len(got) != 0 {
		t.Errorf("%d records produced, want none", len(got))
	}
}
