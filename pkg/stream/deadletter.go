package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// Headers of the records the Runner writes in place of records that can
// never be written. The reason, error and source headers are those the
// processors' own dead letters carry.
const (
	HeaderDLQReason    = "consentgate.dlq.reason"
	HeaderDLQError     = "consentgate.dlq.error"
	HeaderSourceTopic  = "consentgate.source.topic"
	HeaderSourcePart   = "consentgate.source.partition"
	HeaderSourceOffset = "consentgate.source.offset"
	HeaderEventID      = "consentgate.event_id"
	// HeaderDLQUndelivered lists, comma-separated and sorted, the topics
	// whose record for the input was never written.
	HeaderDLQUndelivered = "consentgate.dlq.undelivered_topics"
	// HeaderDLQReference is "true" on a reference record: the dead letter
	// itself could not be written, so the record carries no key, value or
	// input headers, only the input's coordinates, sizes and SHA-256. The
	// input itself stays in its topic (until its retention ends).
	HeaderDLQReference  = "consentgate.dlq.reference"
	HeaderDLQKeyBytes   = "consentgate.dlq.key_bytes"
	HeaderDLQValueBytes = "consentgate.dlq.value_bytes"
	HeaderDLQValueHash  = "consentgate.dlq.value_sha256"
	// HeaderDLQOrigin is "unknown" on a reference record for a record that
	// could not be tied to its input (no source headers, see Runner.Origin):
	// sizes and hash are then the refused record's.
	HeaderDLQOrigin = "consentgate.dlq.origin"
)

// DefaultDLQSuffix is the dead-letter suffix when Runner.DLQSuffix is empty.
const DefaultDLQSuffix = ".dlq"

// Coordinates locate an input record.
type Coordinates struct {
	Topic     string
	Partition int
	Offset    int64
}

// SourceCoordinates reads the consentgate.source.* headers that the
// processors put on every output and dead letter: the Runner's default
// Origin.
func SourceCoordinates(m kafka.Message) (Coordinates, bool) {
	var c Coordinates
	var seen int
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderSourceTopic:
			c.Topic = string(h.Value)
			seen |= 1
		case HeaderSourcePart:
			p, err := strconv.Atoi(string(h.Value))
			if err != nil {
				return c, false
			}
			c.Partition = p
			seen |= 2
		case HeaderSourceOffset:
			o, err := strconv.ParseInt(string(h.Value), 10, 64)
			if err != nil {
				return c, false
			}
			c.Offset = o
			seen |= 4
		}
	}
	return c, seen == 7
}

// undelivered gathers the refused records of one input.
type undelivered struct {
	input    int   // index in the batch, -1 when unknown
	refused  []int // indexes in the records written (see replaceRejected)
	topics   []string
	reason   string
	err      error
	eventID  []byte
	isLetter bool // a refused record was itself a dead letter
}

// replaceRejected writes, for the records of msgs (records of p) that can
// never be written, a dead letter per input (its original key, value and
// headers, plus the reason, the error, the undelivered topics and its
// coordinates) on <input topic><DLQSuffix>; a dead letter that cannot be
// written either, or that would replace a dead letter, becomes a reference
// record without payload. It returns the records written in their place and
// the refused records grouped by input, or an error when even a reference
// cannot be written (the batch is then not committed).
func (r *Runner) replaceRejected(ctx context.Context, p *processed, msgs []kafka.Message, rejected []Rejected, onRetry func(int, error)) ([]kafka.Message, []*undelivered, error) {
	groups := r.groupRejected(p, msgs, rejected)
	letters := make([]kafka.Message, 0, len(groups))
	var letterOf []*undelivered
	var refs []kafka.Message
	for _, g := range groups {
		if g.input < 0 || g.isLetter { // never dead-letter a dead letter
			refs = append(refs, r.reference(p, msgs, g))
			continue
		}
		letters = append(letters, r.deadLetter(p.batch[g.input], g))
		letterOf = append(letterOf, g)
	}
	again, err := WriteEach(ctx, r.Sink, letters, onRetry)
	if err != nil {
		return nil, nil, fmt.Errorf("write dead letters: %w", err)
	}
	written := make([]kafka.Message, 0, len(groups))
	refused := make([]bool, len(letters))
	for _, x := range again {
		refused[x.Index] = true
		// The dead letter is refused too: a reference without payload.
		refs = append(refs, r.reference(p, msgs, letterOf[x.Index]))
	}
	for i, m := range letters {
		if !refused[i] {
			written = append(written, m)
		}
	}
	if len(refs) > 0 {
		final, err := WriteEach(ctx, r.Sink, refs, onRetry)
		if err != nil {
			return nil, nil, fmt.Errorf("write dead-letter references: %w", err)
		}
		if len(final) > 0 {
			return nil, nil, fmt.Errorf("%d dead-letter references refused (%s: %w): set the dead-letter topics' max.message.bytes above a few KiB",
				len(final), final[0].Reason, final[0].Err)
		}
		written = append(written, refs...)
	}
	r.DeadLettered.Add(int64(len(groups)))
	if o, ok := r.observer().(DeadLetterObserver); ok {
		byReason := map[string]int{}
		for _, g := range groups {
			byReason[g.reason]++
		}
		for reason, n := range byReason {
			o.DeadLettered(ctx, reason, n)
		}
	}
	r.Log.WarnContext(ctx, "records that can never be written were replaced by dead letters",
		"records", len(rejected), "inputs", len(groups), "references", len(refs), "reason", groups[0].reason, "error", groups[0].err.Error())
	return written, groups, nil
}

// inputOf returns a function that ties a record of p to its input's index
// in p.batch: by r.Origin (default SourceCoordinates), else by the event id
// of another record of the batch that has coordinates, when the id is that
// of one input only; -1 when neither ties it.
func (r *Runner) inputOf(p *processed) func(kafka.Message) int {
	origin := r.Origin
	if origin == nil {
		origin = SourceCoordinates
	}
	var byCoords map[Coordinates]int
	var byEventID map[string]Coordinates
	return func(m kafka.Message) int {
		c, ok := origin(m)
		if !ok {
			id, has := Header(m, HeaderEventID)
			if !has {
				return -1
			}
			if byEventID == nil {
				byEventID = map[string]Coordinates{}
				for _, o := range p.out {
					if oid, has := Header(o, HeaderEventID); has {
						if oc, ok := origin(o); ok {
							if prev, dup := byEventID[oid]; !dup {
								byEventID[oid] = oc
							} else if prev != oc {
								// Event ids come from the producers: two
								// inputs may share one (a producer's retry).
								// Then the id names no input.
								byEventID[oid] = Coordinates{Partition: -1, Offset: -1}
							}
						}
					}
				}
			}
			if c, ok = byEventID[id]; !ok {
				return -1
			}
		}
		if byCoords == nil {
			byCoords = make(map[Coordinates]int, len(p.batch))
			for i, b := range p.batch {
				byCoords[Coordinates{b.Topic, b.Partition, b.Offset}] = i
			}
		}
		if i, ok := byCoords[c]; ok {
			return i
		}
		return -1
	}
}

// groupRejected ties each refused record of msgs to its input (inputOf).
// Records of one input make one group; a record tied to no input makes a
// group of its own.
func (r *Runner) groupRejected(p *processed, msgs []kafka.Message, rejected []Rejected) []*undelivered {
	input := r.inputOf(p)
	var groups []*undelivered
	byInput := map[int]*undelivered{}
	for _, x := range rejected {
		m := msgs[x.Index]
		i := input(m)
		g := byInput[i]
		if g == nil || i < 0 {
			g = &undelivered{input: i, reason: x.Reason, err: x.Err}
			groups = append(groups, g)
			if i >= 0 {
				byInput[i] = g
			}
		}
		g.refused = append(g.refused, x.Index)
		if !slices.Contains(g.topics, m.Topic) {
			g.topics = append(g.topics, m.Topic)
		}
		if id, ok := Header(m, HeaderEventID); ok && g.eventID == nil {
			g.eventID = []byte(id)
		}
		if _, ok := Header(m, HeaderDLQReason); ok || (i >= 0 && m.Topic == p.batch[i].Topic+r.dlqSuffix()) {
			g.isLetter = true
		}
	}
	for _, g := range groups {
		slices.Sort(g.topics)
	}
	return groups
}

func (r *Runner) dlqSuffix() string {
	if r.DLQSuffix == "" {
		return DefaultDLQSuffix
	}
	return r.DLQSuffix
}

// deadLetter keeps the input's key, value and headers: the input is what
// was not delivered, not the (possibly grown) record made from it.
func (r *Runner) deadLetter(in kafka.Message, g *undelivered) kafka.Message {
	h := make([]kafka.Header, 0, len(in.Headers)+7)
	h = append(h, in.Headers...)
	h = append(h, r.letterHeaders(in, g)...)
	if _, ok := Header(in, HeaderEventID); !ok && g.eventID != nil {
		h = append(h, kafka.Header{Key: HeaderEventID, Value: g.eventID})
	}
	return kafka.Message{Topic: in.Topic + r.dlqSuffix(), Key: in.Key, Value: in.Value, Headers: h}
}

func (r *Runner) letterHeaders(in kafka.Message, g *undelivered) []kafka.Header {
	return []kafka.Header{
		{Key: HeaderDLQReason, Value: []byte(g.reason)},
		{Key: HeaderDLQError, Value: []byte(g.err.Error())},
		{Key: HeaderDLQUndelivered, Value: []byte(strings.Join(g.topics, ","))},
		{Key: HeaderSourceTopic, Value: []byte(in.Topic)},
		{Key: HeaderSourcePart, Value: []byte(strconv.Itoa(in.Partition))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(in.Offset, 10))},
	}
}

// reference describes the input (or, when its input is unknown, the refused
// record msgs[g.refused[0]]) by coordinates, sizes and the SHA-256 of its value; it carries no
// key, value or input header.
func (r *Runner) reference(p *processed, msgs []kafka.Message, g *undelivered) kafka.Message {
	var h []kafka.Header
	var topic string
	var described kafka.Message
	if g.input >= 0 {
		in := p.batch[g.input]
		described, topic = in, in.Topic
		h = r.letterHeaders(in, g)
	} else {
		described = msgs[g.refused[0]]
		topic = p.batch[0].Topic
		h = []kafka.Header{
			{Key: HeaderDLQReason, Value: []byte(g.reason)},
			{Key: HeaderDLQError, Value: []byte(g.err.Error())},
			{Key: HeaderDLQUndelivered, Value: []byte(strings.Join(g.topics, ","))},
			{Key: HeaderDLQOrigin, Value: []byte("unknown")},
		}
	}
	sum := sha256.Sum256(described.Value)
	h = append(h,
		kafka.Header{Key: HeaderDLQReference, Value: []byte("true")},
		kafka.Header{Key: HeaderDLQKeyBytes, Value: []byte(strconv.Itoa(len(described.Key)))},
		kafka.Header{Key: HeaderDLQValueBytes, Value: []byte(strconv.Itoa(len(described.Value)))},
		kafka.Header{Key: HeaderDLQValueHash, Value: []byte(hex.EncodeToString(sum[:]))},
	)
	if g.eventID != nil {
		h = append(h, kafka.Header{Key: HeaderEventID, Value: g.eventID})
	}
	return kafka.Message{Topic: topic + r.dlqSuffix(), Headers: h}
}
