package transport

import (
	"context"
	"math/rand"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// Faults injects network faults between node addresses, for tests of this
// package and of the packages built on it. Every node of a test that shares
// one Faults (through Config.Faults) consults it on the sending side before
// each RPC and each pipelined AppendEntries: a cut message fails at once with
// ErrFaultInjected, as if the network had refused it, and never reaches the
// peer. Because both directions of a link are checked by their own sender,
// Partition and Isolate cut traffic both ways.
//
// The Server applies Faults to the other services' calls on its shared
// connections (Server.Conn) too, once per unary call or stream opening, so
// a partition also cuts the peer API between the nodes.
//
// Random drops come from a source seeded in NewFaults, so a test that sends
// the same messages in the same order sees the same drops. Faults is safe
// for concurrent use; its zero value is not: use NewFaults.
type Faults struct {
	mu struct {
		sync.Mutex
		rng      *rand.Rand
		cut      map[[2]string]bool // unordered pairs, smaller address first
		isolated map[string]bool
		drop     float64
		delay    time.Duration
	}
}

// NewFaults returns a Faults that lets everything through; seed drives the
// random drops of SetDrop.
func NewFaults(seed int64) *Faults {
	f := &Faults{}
	f.mu.rng = rand.New(rand.NewSource(seed))
	f.mu.cut = make(map[[2]string]bool)
	f.mu.isolated = make(map[string]bool)
	return f
}

func pair(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Partition cuts traffic between every address of side a and every address
// of side b, both ways, until Heal. Addresses are the raft server addresses
// (Server.Addr) of the nodes.
func (f *Faults) Partition(a, b []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			if x != y {
				f.mu.cut[pair(x, y)] = true
			}
		}
	}
}

// Disconnect cuts traffic between two addresses, both ways, until Heal.
func (f *Faults) Disconnect(a, b string) { f.Partition([]string{a}, []string{b}) }

// Isolate cuts all traffic to and from addr until Heal.
func (f *Faults) Isolate(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.isolated[addr] = true
}

// SetDrop makes every message that is not cut anyway fail with probability
// p (0 ≤ p ≤ 1; 0 turns drops off).
func (f *Faults) SetDrop(p float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.drop = min(max(p, 0), 1)
}

// SetDelay delays every message that is not cut by d before it is sent
// (0 turns delays off).
func (f *Faults) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.delay = max(d, 0)
}

// Heal removes every partition, isolation, drop rate and delay.
func (f *Faults) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.mu.cut)
	clear(f.mu.isolated)
	f.mu.drop = 0
	f.mu.delay = 0
}

// Cut reports whether traffic from one address to another is currently cut
// by a partition or an isolation (random drops aside).
func (f *Faults) Cut(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cutLocked(from, to)
}

func (f *Faults) cutLocked(from, to string) bool {
	return f.mu.isolated[from] || f.mu.isolated[to] || f.mu.cut[pair(from, to)]
}

// check decides the fate of one message from one address to another: the
// delay to apply before sending it, or ErrFaultInjected. A nil Faults lets
// everything through.
func (f *Faults) check(from, to string) (time.Duration, error) {
	if f == nil {
		return 0, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cutLocked(from, to) {
		return 0, ErrFaultInjected
	}
	if f.mu.drop > 0 && f.mu.rng.Float64() < f.mu.drop {
		return 0, ErrFaultInjected
	}
	return f.mu.delay, nil
}

// raftMethodPrefix names the Raft service's methods, which apply Faults
// themselves, per message.
const raftMethodPrefix = "/scraft.raft.v1.Raft/"

// wait applies check to one call from one address to another and waits the
// injected delay.
func (f *Faults) wait(ctx context.Context, from, to string) error {
	delay, err := f.check(from, to)
	if err != nil || delay <= 0 {
		return err
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dialOptions returns interceptors applying f to every call but the Raft
// service's from the node at from.
func (f *Faults) dialOptions(from string) []grpc.DialOption {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !strings.HasPrefix(method, raftMethodPrefix) {
			if err := f.wait(ctx, from, cc.Target()); err != nil {
				return err
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if !strings.HasPrefix(method, raftMethodPrefix) {
			if err := f.wait(ctx, from, cc.Target()); err != nil {
				return nil, err
			}
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}
