package enforce

import (
	"errors"
	"fmt"
	"slices"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/decision"
	"github.com/consentgate/consentgate/pkg/stream"
)

// ReasonUndelivered is the audit reason of a stream whose record of the
// event could never be written (too large for the topic, or refused as
// invalid): the stream.Runner dead-lettered the input instead, so the
// stream got nothing and the audit record says DROPPED.
const ReasonUndelivered = "undelivered"

// Attach sets up r to write the enforcer's audit records after the other
// records of their batch, and to amend the audit record of an input whose
// output on some stream could never be written (r dead-letters that input):
// the stream's decision becomes DROPPED with reason undelivered, so the
// audit never claims a delivery that did not happen (DESIGN.md: every
// decision is recorded). Call it before r.Run.
func (e *Enforcer) Attach(r *stream.Runner) {
	r.Deferred = e.isAudit
	r.Origin = e.origin
	r.Amend = e.amend
}

func (e *Enforcer) isAudit(m kafka.Message) bool { return m.Topic == e.opts.AuditTopic }

// origin ties a record the enforcer wrote to its input: an audit record by
// its source coordinates (it carries no consentgate.source.* headers), the
// others by those headers, the last of each key: on a dead letter the
// enforcer's come after the input's, which a producer may have forged
// (an output keeps none of them: see EnforcerHeader).
func (e *Enforcer) origin(m kafka.Message) (stream.Coordinates, bool) {
	if !e.isAudit(m) {
		return lastSourceCoordinates(m)
	}
	cat, err := e.catalog()
	if err != nil {
		return stream.Coordinates{}, false
	}
	a, err := ReadAudit(cat, m.Value)
	if err != nil {
		return stream.Coordinates{}, false
	}
	return stream.Coordinates{Topic: a.SourceTopic, Partition: int(a.SourcePartition), Offset: a.SourceOffset}, true
}

func (e *Enforcer) catalog() (*avrocodec.Catalog, error) {
	c, ok := e.codec.(interface{ Catalog() *avrocodec.Catalog })
	if !ok || c.Catalog() == nil {
		return nil, errors.New("the codec does not expose its catalog")
	}
	return c.Catalog(), nil
}

// amend rewrites the audit record m of an input whose records on u.Topics
// were never written: every stream among them decided PASSED or REDACTED
// becomes DROPPED, reason undelivered, without treated fields (nothing was
// published); its purposes and consents stay, they are what decided. Other
// records, and audit records without such a stream, are returned as they
// are.
func (e *Enforcer) amend(m kafka.Message, u stream.Undelivered) (kafka.Message, error) {
	if !e.isAudit(m) {
		return m, nil
	}
	cat, err := e.catalog()
	if err != nil {
		return kafka.Message{}, err
	}
	a, err := ReadAudit(cat, m.Value)
	if err != nil {
		return kafka.Message{}, err
	}
	changed := false
	for i := range a.Decisions {
		d := &a.Decisions[i]
		if d.Decision != decision.Dropped && slices.Contains(u.Topics, d.Stream) {
			d.Decision, d.Reason, d.TreatedFields = decision.Dropped, ReasonUndelivered, nil
			changed = true
		}
	}
	if !changed {
		return m, nil
	}
	b, err := e.encodeAudit(nil, a)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("amended: %w", err)
	}
	m.Value = b
	return m, nil
}

// lastSourceCoordinates is stream.SourceCoordinates read from the last
// header of each of the three keys, so that earlier copies (a dead
// letter's input headers) are never read, malformed or not.
func lastSourceCoordinates(m kafka.Message) (stream.Coordinates, bool) {
	var last [3]int
	for i := range last {
		last[i] = -1
	}
	for i, h := range m.Headers {
		switch h.Key {
		case HeaderSourceTopic:
			last[0] = i
		case HeaderSourcePart:
			last[1] = i
		case HeaderSourceOffset:
			last[2] = i
		}
	}
	if last[0] < 0 || last[1] < 0 || last[2] < 0 {
		return stream.Coordinates{}, false
	}
	return stream.SourceCoordinates(kafka.Message{Headers: []kafka.Header{m.Headers[last[0]], m.Headers[last[1]], m.Headers[last[2]]}})
}
