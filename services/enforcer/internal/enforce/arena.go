package enforce

import (
	"strconv"

	"github.com/segmentio/kafka-go"
)

// bytes returns a copy of s carved from the arena.
func (a *arena) bytes(s string) []byte {
	return a.commit(append(a.start(len(s)), s...))
}

// appendInt returns the decimal form of v carved from the arena.
func (a *arena) appendInt(v int64) []byte {
	return a.commit(strconv.AppendInt(a.start(20), v, 10))
}

// headerArena hands out header slices carved from larger chunks, so that
// the records of a batch cost a few allocations for their headers instead
// of one each. A slice handed out has length 0 and its capacity capped at
// what was asked: appending past it reallocates, never reaching into the
// next slice. Slices are never handed out twice, so records may be kept
// after the batch.
type headerArena struct{ buf []kafka.Header }

const headerChunk = 1024

// take returns an empty header slice with room for n headers.
func (h *headerArena) take(n int) []kafka.Header {
	if cap(h.buf)-len(h.buf) < n {
		h.buf = make([]kafka.Header, 0, max(headerChunk, n))
	}
	s := h.buf[len(h.buf) : len(h.buf) : len(h.buf)+n]
	h.buf = h.buf[:len(h.buf)+n]
	return s
}
