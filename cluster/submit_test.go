package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/backoff"
)

// TestWaitRetryWakesOnNewLeader: a submission waiting out its backoff
// tries again as soon as the chain names a leader, with its backoff
// started over, and gives up when its context ends.
func TestWaitRetryWakesOnNewLeader(t *testing.T) {
	c := &Channel{ctx: context.Background()}
	bo := backoff.New(backoff.Policy{Initial: time.Hour, Max: 4 * time.Hour})
	named := make(chan struct{})
	done := make(chan bool)
	go func() { done <- c.waitRetry(context.Background(), bo, named) }()
	close(named)
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("waitRetry gave up when the chain named a leader")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitRetry did not wake when the chain named a leader")
	}
	if d := bo.Next(); d != time.Hour {
		t.Fatalf("backoff after the wake starts at %s, want its initial wait", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- c.waitRetry(ctx, bo, make(chan struct{})) }()
	cancel()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("waitRetry went on after its context ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitRetry did not end with its context")
	}
}
