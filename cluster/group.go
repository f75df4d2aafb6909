package cluster

import (
	"context"
	"sync"
)

// group runs a channel's long-lived goroutines. They start in one place
// (Channel.start), each with its own context; stop ends them in the
// reverse order of their start, each after the ones started after it, and
// waits for each.
type group struct {
	mu      sync.Mutex
	stopped bool
	members []groupMember
}

type groupMember struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs fn on a new goroutine with a context derived from parent,
// which stop cancels. After stop it runs nothing.
func (g *group) start(parent context.Context, fn func(ctx context.Context)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	m := groupMember{cancel: cancel, done: make(chan struct{})}
	g.members = append(g.members, m)
	go func() {
		defer close(m.done)
		fn(ctx)
	}()
}

// stop cancels the goroutines last started first and waits for each
// before it cancels the one started before. It is safe to call more than
// once.
func (g *group) stop() {
	g.mu.Lock()
	g.stopped = true
	ms := g.members
	g.members = nil
	g.mu.Unlock()
	for i := len(ms) - 1; i >= 0; i-- {
		ms[i].cancel()
		<-ms[i].done
	}
}
