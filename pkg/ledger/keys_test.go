package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/consentgate/consentgate/pkg/brokertest"
)

// TestAddKeyRecord checks what is kept of each kind of Kafka key of the
// keys topic.
func TestAddKeyRecord(t *testing.T) {
	id := "0123456789abcdef0123456789ABCDEF"
	c := Coord{Topic: "consent.keys", Partition: 1, Offset: 7, Time: time.UnixMilli(1_800_000_000_000).UTC()}
	for _, tc := range []struct {
		key       string
		nilKey    bool
		tombstone bool
		keys      []DataKeyEvent
		erasures  []KeyErasure
		unknown   int
	}{
		{key: "key:" + id + ":subject-1", keys: []DataKeyEvent{{Coord: c, KeyID: strings.ToLower(id), SubjectID: "subject-1"}}},
		{key: "key:" + id + ":subject-1", tombstone: true, keys: []DataKeyEvent{{Coord: c, KeyID: strings.ToLower(id), SubjectID: "subject-1", Destroyed: true}}},
		{key: "key:" + id + ":a:b:c", keys: []DataKeyEvent{{Coord: c, KeyID: strings.ToLower(id), SubjectID: "a:b:c"}}},
		{key: "erased:subject-1", erasures: []KeyErasure{{Coord: c, SubjectID: "subject-1"}}},
		{key: "erased:subject-1", tombstone: true},  // ignored, not unknown
		{key: "key:" + id + ":", unknown: 1},        // no subject
		{key: "key:" + id[:31] + ":s", unknown: 1},  // 31 digits
		{key: "key:" + id + "0:s", unknown: 1},      // 33 digits
		{key: "key:" + id[:31] + "g:s", unknown: 1}, // not hex
		{key: "key:" + id, unknown: 1},
		{key: "key:", unknown: 1},
		{key: "erased:", unknown: 1},
		{key: "Key:" + id + ":s", unknown: 1},
		{key: "subject-1", unknown: 1},
		{key: "", unknown: 1},
		{nilKey: true, unknown: 1},
		{nilKey: true, tombstone: true, unknown: 1},
	} {
		var key []byte
		if !tc.nilKey {
			key = []byte(tc.key)
		}
		var b Batch
		AddKeyRecord(&b, c, key, tc.tombstone)
		if fmt.Sprint(b.DataKeys) != fmt.Sprint(tc.keys) || fmt.Sprint(b.KeyErasures) != fmt.Sprint(tc.erasures) || b.UnknownKeys != tc.unknown {
			t.Errorf("key %q (tombstone %v): keys %v, erasures %v, unknown %d; want %v, %v, %d", tc.key, tc.tombstone,
				b.DataKeys, b.KeyErasures, b.UnknownKeys, tc.keys, tc.erasures, tc.unknown)
		}
	}
}

// FuzzAddKeyRecord checks that a record is kept as exactly one thing or
// counted unknown, and that what is kept gives back its Kafka key.
func FuzzAddKeyRecord(f *testing.F) {
	f.Add([]byte("key:0123456789abcdef0123456789abcdef:s"), false)
	f.Add([]byte("erased:s"), false)
	f.Add([]byte("key:x"), true)
	f.Fuzz(func(t *testing.T, key []byte, tombstone bool) {
		var b Batch
		AddKeyRecord(&b, Coord{}, key, tombstone)
		n := len(b.DataKeys) + len(b.KeyErasures) + b.UnknownKeys
		if n > 1 || (n == 0 && !(tombstone && strings.HasPrefix(string(key), "erased:") && len(key) > len("erased:"))) {
			t.Fatalf("key %q: %d outcomes", key, n)
		}
		for _, k := range b.DataKeys {
			if got := "key:" + k.KeyID + ":" + k.SubjectID; got != strings.ToLower(string(key[:36]))+string(key[36:]) || k.Destroyed != tombstone {
				t.Fatalf("key %q kept as %q (destroyed %v)", key, got, k.Destroyed)
			}
		}
		for _, e := range b.KeyErasures {
			if "erased:"+e.SubjectID != string(key) || tombstone {
				t.Fatalf("key %q kept as erasure of %q", key, e.SubjectID)
			}
		}
	})
}

// keyRecord is a record of the keys topic as the shredder writes it: the
// value (nil for a tombstone) is opaque to the ledger.
func keyRecord(kafkaKey string, value []byte, at time.Time) kafka.Message {
	return kafka.Message{Topic: "consent.keys", Key: []byte(kafkaKey), Value: value, Time: at}
}

func randomValue(t *testing.T, n int) []byte {
	t.Helper()
	v := make([]byte, n)
	if _, err := rand.Read(v); err != nil {
		t.Fatal(err)
	}
	return v
}

func produceKeys(t *testing.T, addr string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			return
		}
		if !errors.Is(err, kafka.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatalf("produce: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ingestRead decodes msgs into one batch, with the positions after them,
// and ingests it.
func ingestRead(t *testing.T, s *Store, d *Decoder, extra *Batch, msgs []kafka.Message) *Batch {
	t.Helper()
	b := &Batch{}
	if extra != nil {
		*b = *extra
	}
	last := map[int32]kafka.Message{}
	for _, m := range msgs {
		if err := d.Add(context.Background(), b, HoldsKeys, m); err != nil {
			t.Fatal(err)
		}
		if l, ok := last[int32(m.Partition)]; !ok || m.Offset > l.Offset {
			last[int32(m.Partition)] = m
		}
	}
	for p, m := range last {
		b.Positions = append(b.Positions, Position{Topic: m.Topic, Partition: p, Next: m.Offset + 1, Last: RecordHash(m)})
	}
	if err := s.Ingest(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeysTopicThroughABroker writes records of the keys topic to a real
// broker, reads them back (kafka-go, as the consumer does: a tombstone is
// a record with a null value) and ingests them in two transactions: a key
// created in the first and destroyed in the second has one row with both
// times; a key created and destroyed in one transaction too; a tombstone of
// a key never seen makes a row with its creation unknown; unknown Kafka
// keys are counted and stored nowhere; no value (wrapped key, marker)
// appears in any column of any table; the subject's history lists the keys
// and the erasure marker next to the ERASE change.
func TestKeysTopicThroughABroker(t *testing.T) {
	broker := brokertest.Start(t, brokertest.Options{})
	broker.CreateTopics(t, 2, "consent.keys")
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	idA, idB, idC, idD := strings.Repeat("a1", 16), strings.Repeat("b2", 16), strings.Repeat("c3", 16), strings.Repeat("d4", 16)
	vA, vB, vD, vMark := randomValue(t, 96), randomValue(t, 96), randomValue(t, 96), randomValue(t, 64)
	values := [][]byte{vA, vB, vD, vMark}
	first := []kafka.Message{
		keyRecord("key:"+idA+":subject-1", vA, at(1)),
		keyRecord("key:"+idB+":subject-2", vB, at(2)),
		keyRecord("not-a-key-record", randomValue(t, 8), at(3)),
		keyRecord("key:"+idA[:30]+":subject-1", randomValue(t, 8), at(3)),
	}
	second := []kafka.Message{
		keyRecord("erased:subject-1", vMark, at(10)),
		keyRecord("key:"+idA+":subject-1", nil, at(11)), // destroyed
		keyRecord("key:"+idC+":subject-1", nil, at(12)), // never seen
		keyRecord("key:"+idD+":subject-1", vD, at(13)),
		keyRecord("key:"+idD+":subject-1", nil, at(14)), // same transaction
		keyRecord("erased:subject-1", nil, at(15)),      // ignored
		keyRecord("garbage", nil, at(16)),
	}
	produceKeys(t, broker.Addr, first)
	read1 := broker.ReadAll(t, "consent.keys", 200*time.Millisecond, 30*time.Second)
	produceKeys(t, broker.Addr, second)
	all := broker.ReadAll(t, "consent.keys", 200*time.Millisecond, 30*time.Second)
	if len(read1) != len(first) || len(all) != len(first)+len(second) {
		t.Fatalf("read %d then %d records, want %d then %d", len(read1), len(all), len(first), len(first)+len(second))
	}
	seen := map[string]bool{}
	for _, m := range read1 {
		seen[fmt.Sprint(m.Partition, m.Offset)] = true
	}
	var read2 []kafka.Message
	coords := map[string]kafka.Message{} // by key and whether a tombstone
	for _, m := range all {
		if !seen[fmt.Sprint(m.Partition, m.Offset)] {
			read2 = append(read2, m)
		}
		coords[fmt.Sprint(string(m.Key), m.Value == nil)] = m
	}
	tomb := func(key string) kafka.Message { return coords[fmt.Sprint(key, true)] }
	rec := func(key string) kafka.Message { return coords[fmt.Sprint(key, false)] }
	if m, ok := coords[fmt.Sprint("key:"+idA+":subject-1", true)]; !ok || m.Value != nil {
		t.Fatalf("the tombstone did not come back from the broker as a null value")
	}

	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		d := &Decoder{}
		b1 := ingestRead(t, s, d, nil, read1)
		erase := &Batch{Changes: []ConsentChange{{Coord: Coord{Topic: "consent.changes", Offset: 0, Time: at(9)}, ChangeID: "erase-1",
			SubjectID: "subject-1", Action: "ERASE", Source: "test", CapturedAt: at(9)}},
			Positions: []Position{{Topic: "consent.changes", Partition: 0, Next: 1}}}
		b2 := ingestRead(t, s, d, erase, read2)
		if b1.UnknownKeys+b2.UnknownKeys != 3 {
			t.Errorf("%d unknown keys counted, want 3", b1.UnknownKeys+b2.UnknownKeys)
		}
		once := dump(t, s)
		// Reading the same records again (a crash before the position
		// moved, another process) changes nothing.
		ingestRead(t, s, d, nil, all)
		if again := dump(t, s); again != once {
			t.Errorf("ingesting the records again changed the ledger:\n%s\nvs\n%s", once, again)
		}
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Tables["data_keys"] != 4 || st.Tables["key_erasures"] != 1 || st.Tables["undecodable_records"] != 0 {
			t.Errorf("tables %v: want 4 data keys, 1 key erasure, no undecodable record", st.Tables)
		}

		h, err := s.Subject(ctx, "subject-1")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][2]*kafka.Message{}
		ptr := func(m kafka.Message, ok bool) *kafka.Message {
			if !ok {
				return nil
			}
			return &m
		}
		for _, id := range []string{idA, idC, idD} {
			k := "key:" + id + ":subject-1"
			_, hasRec := coords[fmt.Sprint(k, false)]
			want[id] = [2]*kafka.Message{ptr(rec(k), hasRec), ptr(tomb(k), true)}
		}
		if len(h.DataKeys) != 3 {
			t.Fatalf("subject-1 has %d data keys, want 3: %+v", len(h.DataKeys), h.DataKeys)
		}
		if h.DataKeys[0].KeyID != idC {
			t.Errorf("first key %s, want %s (creation unknown comes first)", h.DataKeys[0].KeyID, idC)
		}
		for _, k := range h.DataKeys {
			w, ok := want[k.KeyID]
			if !ok {
				t.Errorf("unexpected key %s", k.KeyID)
				continue
			}
			check := func(what string, at *time.Time, off *int64, m *kafka.Message) {
				switch {
				case m == nil && (at != nil || off != nil):
					t.Errorf("key %s: %s at %v offset %v, want unknown", k.KeyID, what, at, off)
				case m != nil && (at == nil || off == nil):
					t.Errorf("key %s: %s unknown, want %v at offset %d", k.KeyID, what, m.Time, m.Offset)
				case m != nil && (!at.Equal(m.Time) || *off != m.Offset || k.Partition != int32(m.Partition) || k.Topic != "consent.keys"):
					t.Errorf("key %s: %s at %v %s/%d@%d, want %v %s/%d@%d", k.KeyID, what, at, k.Topic, k.Partition, *off, m.Time, m.Topic, m.Partition, m.Offset)
				}
			}
			check("created", k.CreatedAt, k.CreatedOffset, w[0])
			check("destroyed", k.DestroyedAt, k.DestroyedOffset, w[1])
		}
		mark := rec("erased:subject-1")
		if len(h.KeyErasures) != 1 || !h.KeyErasures[0].At.Equal(mark.Time) || h.KeyErasures[0].Coords.Offset != mark.Offset {
			t.Errorf("key erasures %+v, want one at %v offset %d", h.KeyErasures, mark.Time, mark.Offset)
		}
		// The timeline tells it: erasure requested (the ERASE change),
		// the marker, then the keys destroyed.
		var kinds []string
		for _, e := range h.Timeline {
			kinds = append(kinds, e.Kind+"@"+e.Time.Sub(t0).String())
		}
		wantKinds := []string{"data_key_created@1s", "consent_change@9s", "keys_erased@10s", "data_key_destroyed@11s", "data_key_destroyed@12s",
			"data_key_created@13s", "data_key_destroyed@14s"}
		if fmt.Sprint(kinds) != fmt.Sprint(wantKinds) {
			t.Errorf("timeline %v, want %v", kinds, wantKinds)
		}
		if h2, err := s.Subject(ctx, "subject-2"); err != nil || len(h2.DataKeys) != 1 || h2.DataKeys[0].DestroyedAt != nil || h2.DataKeys[0].CreatedAt == nil {
			t.Errorf("subject-2: %+v (%v), want one live key", h2, err)
		}
		if h3, err := s.Subject(ctx, "not-a-key-record"); err != nil || len(h3.DataKeys)+len(h3.KeyErasures) != 0 {
			t.Errorf("an unknown Kafka key made rows: %+v (%v)", h3, err)
		}

		// No column of any table holds a value, nor the unknown keys.
		needles := [][]byte{[]byte("not-a-key-record"), []byte("garbage"), []byte(idA[:30] + ":")}
		for _, v := range values {
			needles = append(needles, v, []byte(hex.EncodeToString(v)), []byte(base64.StdEncoding.EncodeToString(v)),
				[]byte(base64.RawURLEncoding.EncodeToString(v)), v[:16])
		}
		cells := everyCellOf(t, s, func(table, col string, v []byte) {
			for i, n := range needles {
				if bytes.Contains(v, n) {
					t.Errorf("%s.%s holds needle %d (a record's value or an unknown key)", table, col, i)
				}
			}
		})
		if cells < 20 {
			t.Fatalf("only %d cells read: the check reads nothing", cells)
		}
		// The check finds a value where one is: a control row.
		ctl := &Batch{Undecodable: []Undecodable{{Coord: Coord{Topic: "control", Offset: 0}, Error: "x" + hex.EncodeToString(vA)}},
			Positions: []Position{{Topic: "control", Next: 1}}}
		if err := s.Ingest(ctx, ctl); err != nil {
			t.Fatal(err)
		}
		found := false
		everyCellOf(t, s, func(_, _ string, v []byte) { found = found || bytes.Contains(v, []byte(hex.EncodeToString(vA))) })
		if !found {
			t.Error("the check does not find a value stored in a column")
		}
	})
}

// everyCellOf calls check on the bytes of every column of every row of every
// table of s and returns how many it read.
func everyCellOf(t *testing.T, s *Store, check func(table, col string, v []byte)) int {
	t.Helper()
	ctx := context.Background()
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if s.pool != nil {
		q = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	}
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 10 {
		t.Fatalf("only tables %v", tables)
	}
	n := 0
	for _, tab := range tables {
		rows, err := s.db.QueryContext(ctx, "SELECT * FROM "+tab)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				var bs []byte
				switch v := v.(type) {
				case []byte:
					bs = v
				case string:
					bs = []byte(v)
				default:
					bs = []byte(fmt.Sprint(v))
				}
				check(tab, cols[i], bs)
				n++
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return n
}

// TestIngestRefusesKeyRowsPastThePosition: the guard of Ingest sees the
// rows of the keys topic (a key's record, its tombstone, an erasure
// marker) stored past a position that was removed.
func TestIngestRefusesKeyRowsPastThePosition(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		id := strings.Repeat("9a", 16)
		for i, b := range []*Batch{
			{DataKeys: []DataKeyEvent{{Coord: Coord{Topic: "k0", Offset: 5, Time: t0}, SubjectID: "s", KeyID: id}}},
			{DataKeys: []DataKeyEvent{{Coord: Coord{Topic: "k1", Offset: 5, Time: t0}, SubjectID: "s", KeyID: id, Destroyed: true}}},
			{KeyErasures: []KeyErasure{{Coord: Coord{Topic: "k2", Offset: 5, Time: t0}, SubjectID: "s"}}},
		} {
			topic := fmt.Sprintf("k%d", i)
			b.Positions = []Position{{Topic: topic, Next: 6}}
			if err := s.Ingest(ctx, b); err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.ExecContext(ctx, s.d.q("DELETE FROM ledger_positions WHERE topic = ?"), topic); err != nil {
				t.Fatal(err)
			}
			again := &Batch{DataKeys: []DataKeyEvent{{Coord: Coord{Topic: topic, Offset: 0, Time: t0}, SubjectID: "s", KeyID: id, Destroyed: true}},
				Positions: []Position{{Topic: topic, Next: 1}}}
			var pe *PartitionError
			if err := s.Ingest(ctx, again); !errors.As(err, &pe) || pe.Topic != topic {
				t.Errorf("%s: ingest over rows past the position: %v, want a *PartitionError", topic, err)
			}
		}
	})
}

// TestDataKeysAgainstAModel ingests random sequences of key records and
// tombstones (a few keys, odd subject ids too), cut into random batches,
// and compares every row with a model: per key, the first record read
// gives the creation, the first tombstone read the destruction.
func TestDataKeysAgainstAModel(t *testing.T) {
	type row struct{ createdAt, createdOff, destroyedAt, destroyedOff any }
	subjects := []string{"s-1", "s\x00nul", "s-\xff-bad", strings.Repeat("long", 400)}
	eachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		r := mrand.New(mrand.NewPCG(7, 8))
		for round := range 6 {
			topic := fmt.Sprintf("keys-%d", round)
			model := map[string]*row{}
			var events []DataKeyEvent
			for o := range int64(40 + r.IntN(40)) {
				id := fmt.Sprintf("%032x", r.IntN(6))
				subj := subjects[r.IntN(len(subjects))]
				e := DataKeyEvent{Coord: Coord{Topic: topic, Offset: o, Time: t0.Add(time.Duration(o) * time.Second)}, KeyID: id, SubjectID: subj,
					Destroyed: r.IntN(2) == 0}
				events = append(events, e)
				k := id + "|" + storeText(subj)
				m := model[k]
				if m == nil {
					m = &row{}
					model[k] = m
				}
				if !e.Destroyed && m.createdOff == nil {
					m.createdAt, m.createdOff = e.Time.UnixMilli(), o
				}
				if e.Destroyed && m.destroyedOff == nil {
					m.destroyedAt, m.destroyedOff = e.Time.UnixMilli(), o
				}
			}
			for i := 0; i < len(events); {
				j := min(len(events), i+1+r.IntN(12))
				b := &Batch{DataKeys: events[i:j], Positions: []Position{{Topic: topic, Next: events[j-1].Offset + 1}}}
				if err := s.Ingest(ctx, b); err != nil {
					t.Fatal(err)
				}
				i = j
			}
			rows, err := s.db.QueryContext(ctx, s.d.q("SELECT key_id, subject_id, created_at, created_offset, destroyed_at, destroyed_offset FROM data_keys WHERE topic = ?"), topic)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var id, subj string
				var got row
				if err := rows.Scan(&id, &subj, &got.createdAt, &got.createdOff, &got.destroyedAt, &got.destroyedOff); err != nil {
					t.Fatal(err)
				}
				n++
				m := model[id+"|"+subj]
				if m == nil || fmt.Sprint(*m) != fmt.Sprint(got) {
					t.Errorf("round %d key %s of %q: row %v, model %v", round, id, subj, got, m)
				}
			}
			rows.Close()
			if n != len(model) {
				t.Errorf("round %d: %d rows, model %d", round, n, len(model))
			}
			// The subject's history finds its keys by the id as given.
			for _, subj := range subjects {
				h, err := s.Subject(ctx, subj)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				for k := range model {
					if strings.HasSuffix(k, "|"+storeText(subj)) {
						want++
					}
				}
				got := 0
				for _, k := range h.DataKeys {
					if k.Topic == topic {
						got++
					}
				}
				if got != want {
					t.Errorf("round %d: Subject(%q) lists %d keys of %s, want %d", round, subj, got, topic, want)
				}
			}
		}
	})
}
