// Package backoff is scraft's one retry helper: a doubling wait between
// attempts, capped, that ends with the caller's context.
//
// Every loop in scraft that tries something again (a chain query, a join
// through a peer, a submission across a leader change, a client request on
// another node) uses it, so that they all behave alike under a failure: the
// first retry comes quickly, later ones no faster than Max, and a cancelled
// context ends the wait at once.
package backoff

import (
	"context"
	"fmt"
	"time"
)

// Policy says how long to wait between attempts. The zero Policy waits
// 10 ms, then doubles up to 1 s.
type Policy struct {
	// Initial is the first wait. Default 10 ms.
	Initial time.Duration
	// Max caps the wait. Default 1 s.
	Max time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Initial <= 0 {
		p.Initial = 10 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = time.Second
	}
	if p.Max < p.Initial {
		p.Max = p.Initial
	}
	return p
}

// Backoff is the state of one retry loop. It is not safe for concurrent
// use: each loop keeps its own.
type Backoff struct {
	p    Policy
	next time.Duration
}

// New starts a retry loop under p.
func New(p Policy) *Backoff {
	p = p.withDefaults()
	return &Backoff{p: p, next: p.Initial}
}

// Next returns the wait before the next attempt and doubles the one after,
// up to Max.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.p.Max)
	return d
}

// Reset makes the next wait Initial again, after a success.
func (b *Backoff) Reset() { b.next = b.p.Initial }

// Wait waits the next delay. It returns false, at once, when ctx ends or
// when any of stop is closed first.
func (b *Backoff) Wait(ctx context.Context, stop ...<-chan struct{}) bool {
	return Sleep(ctx, b.Next(), stop...)
}

// Sleep waits d. It returns false, at once, when ctx ends or when any of
// stop (at most two) is closed first.
func Sleep(ctx context.Context, d time.Duration, stop ...<-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var s0, s1 <-chan struct{}
	switch len(stop) {
	case 0:
	case 1:
		s0 = stop[0]
	default:
		s0, s1 = stop[0], stop[1]
	}
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s0:
		return false
	case <-s1:
		return false
	}
}

// Retry calls fn until it succeeds, fn's error is final (final returns
// true; a nil final retries every error), or ctx ends. On ctx's end it
// returns ctx's error wrapped with fn's last one.
func Retry[T any](ctx context.Context, p Policy, final func(error) bool, fn func(context.Context) (T, error)) (T, error) {
	b := New(p)
	for {
		v, err := fn(ctx)
		if err == nil || (final != nil && final(err)) {
			return v, err
		}
		if !b.Wait(ctx) {
			return v, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
	}
}
