package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/consentgate/consentgate/pkg/shred"
	"github.com/consentgate/consentgate/pkg/topicread"
)

// keyShredder marks erased subjects in the keys topic and destroys their
// data keys (package shred). The topic may not exist yet: then no data key
// exists anywhere (a key is only ever used once it is in the topic), and
// an erasure has nothing to destroy. Every erasure looks again, and once
// the topic is there the ring is opened and its shredder started, so an
// erasure that follows the first key always marks it.
type keyShredder struct {
	log  *slog.Logger
	open func(ctx context.Context) (*shred.Ring, error)
	// ctx is the shredder's lifetime; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	ring   *shred.Ring
	done   chan struct{}

	// Destroyed counts the data keys tombstoned.
	destroyed int64
}

func newKeyShredder(log *slog.Logger, open func(ctx context.Context) (*shred.Ring, error)) *keyShredder {
	k := &keyShredder{log: log, open: open}
	k.ctx, k.cancel = context.WithCancel(context.Background())
	return k
}

// get returns the open ring, opening it when the topic exists; nil, nil
// when the topic does not exist.
func (k *keyShredder) get(ctx context.Context) (*shred.Ring, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ring != nil {
		return k.ring, nil
	}
	r, err := k.open(ctx)
	if errors.Is(err, topicread.ErrNoTopic) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k.ring, k.done = r, make(chan struct{})
	go func() {
		defer close(k.done)
		for k.ctx.Err() == nil {
			err := r.Shred(k.ctx, func(d shred.Destroyed) {
				k.mu.Lock()
				k.destroyed++
				k.mu.Unlock()
				k.log.Info("data key destroyed", "key_version", d.Version, "erased_by", d.ChangeID)
			})
			if k.ctx.Err() != nil || errors.Is(err, shred.ErrClosed) {
				return
			}
			k.log.Warn("shredding erased subjects' data keys failed; retrying", "error", err)
			select {
			case <-k.ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return r, nil
}

// Erase marks the subject erased (apply.Eraser).
func (k *keyShredder) Erase(ctx context.Context, subject string, e shred.Erasure) error {
	r, err := k.get(ctx)
	if err != nil || r == nil {
		return err
	}
	return r.Erase(ctx, subject, e)
}

// Ready is nil while the ring (if open) reads its topic.
func (k *keyShredder) Ready() error {
	k.mu.Lock()
	r := k.ring
	k.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Ready()
}

// Destroyed returns the number of data keys tombstoned so far.
func (k *keyShredder) Destroyed() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.destroyed
}

// Close stops the shredder and closes the ring.
func (k *keyShredder) Close() {
	k.cancel()
	k.mu.Lock()
	r, done := k.ring, k.done
	k.mu.Unlock()
	if r != nil {
		r.Close()
		<-done
	}
}
