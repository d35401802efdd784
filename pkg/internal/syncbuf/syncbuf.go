// Package syncbuf is a bytes.Buffer safe for concurrent use: what the test
// harnesses (pgtest, redistest, proctest) collect a child process's output
// in, since os/exec writes it from a goroutine of its own.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from several goroutines. The zero value is empty
// and ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (b *Buffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
