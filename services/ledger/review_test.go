package main

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/avrocodec"
	"github.com/consentgate/consentgate/pkg/brokertest"
	"github.com/consentgate/consentgate/pkg/ledger"
	"github.com/consentgate/consentgate/pkg/stream"
	"github.com/consentgate/consentgate/schemas"
)

// deleteRecords sends a DeleteRecords v0 request (what retention or
// kafka-delete-records does) to the broker: the records of topic/partition
// before offset are gone, and the partition's first offset becomes offset.
// kafka-go has no client for it, so the request is encoded here.
func deleteRecords(t *testing.T, addr, topic string, partition int32, offset int64) {
	t.Helper()
	var body []byte
	body = binary.BigEndian.AppendUint16(body, 21) // api key DeleteRecords
	body = binary.BigEndian.AppendUint16(body, 0)  // version
	body = binary.BigEndian.AppendUint32(body, 7)  // correlation id
	body = binary.BigEndian.AppendUint16(body, 6)
	body = append(body, "review"...)
	body = binary.BigEndian.AppendUint32(body, 1) // topics
	body = binary.BigEndian.AppendUint16(body, uint16(len(topic)))
	body = append(body, topic...)
	body = binary.BigEndian.AppendUint32(body, 1) // partitions
	body = binary.BigEndian.AppendUint32(body, uint32(partition))
	body = binary.BigEndian.AppendUint64(body, uint64(offset))
	body = binary.BigEndian.AppendUint32(body, 10000) // timeout ms
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)); err != nil {
		t.Fatal(err)
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(conn, resp); err != nil {
		t.Fatal(err)
	}
	// correlation id, throttle, 1 topic (name), 1 partition: id, low watermark, error code
	code := int16(binary.BigEndian.Uint16(resp[len(resp)-2:]))
	low := int64(binary.BigEndian.Uint64(resp[len(resp)-10 : len(resp)-2]))
	if code != 0 || low != offset {
		t.Fatalf("delete records: error code %d, low watermark %d", code, low)
	}
}

func runConsumer(t *testing.T, addr string, store Store, codec *avrocodec.Codec) (stop func()) {
	t.Helper()
	cctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{Brokers: []string{addr}, Topics: DefaultConfig().Topics(), Store: store, Decoder: &ledger.Decoder{Codec: codec, LeafHash: leafHash},
		BatchSize: 50, Linger: 5 * time.Millisecond, Refresh: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	return func() { cancel(); <-done }
}

func letters(from, n int) []kafka.Message {
	var out []kafka.Message
	for i := range n {
		out = append(out, kafka.Message{Topic: "customer.events.dlq", Value: []byte(fmt.Sprintf("raw %d", from+i)),
			Headers: []kafka.Header{{Key: stream.HeaderDLQReason, Value: []byte("undecodable")}}})
	}
	return out
}

// TestReviewConsumerRecordsRecordsGoneBeforeItReadThem: records deleted
// from a topic (retention, DeleteRecords) while the ledger was down are
// skipped by kafka-go's reader without a word (it moves to the first
// offset). The ledger must not lose them silently: the offsets it never
// read are in the ledger, by coordinates, as records it could not store.
func TestReviewConsumerRecordsRecordsGoneBeforeItReadThem(t *testing.T) {
	broker := brokertest.Start(t, brokertest.Options{Partitions: 1})
	cat, err := avrocodec.LoadCatalog(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	codec := avrocodec.New(cat, nil)
	path := filepath.Join(t.TempDir(), "ledger.db")
	store, err := ledger.Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	produce(t, broker.Addr, letters(0, 10))
	stop := runConsumer(t, broker.Addr, store, codec)
	waitRows(t, store, 10, 60*time.Second)
	stop() // the ledger is down ...
	produce(t, broker.Addr, letters(10, 10))
	deleteRecords(t, broker.Addr, "customer.events.dlq", 0, 15) // ... while offsets 10..14 are deleted
	produce(t, broker.Addr, letters(20, 5))
	stop = runConsumer(t, broker.Addr, store, codec)
	waitRows(t, store, 25, 60*time.Second)
	stop()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var letters int
	if err := db.QueryRow(`SELECT count(*) FROM dead_letters WHERE topic = 'customer.events.dlq'`).Scan(&letters); err != nil {
		t.Fatal(err)
	}
	if letters != 20 {
		t.Errorf("%d dead letters in the ledger, want 20 (offsets 0..9 and 15..24)", letters)
	}
	rows, err := db.Query(`SELECT record_offset, error FROM undecodable_records WHERE topic = 'customer.events.dlq' ORDER BY record_offset`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var found []string
	for rows.Next() {
		var off int64
		var msg string
		if err := rows.Scan(&off, &msg); err != nil {
			t.Fatal(err)
		}
		found = append(found, fmt.Sprintf("%d: %s", off, msg))
	}
	if len(found) != 1 || !strings.HasPrefix(found[0], "10: ") || !strings.Contains(found[0], "10..14") {
		t.Errorf("the ledger does not say that offsets 10..14 were never read; its undecodable records: %q", found)
	}
}
