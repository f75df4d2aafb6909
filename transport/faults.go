package transport

import (
	"context"
	"fmt"
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
// Latency between addresses models members in several regions: SetRegion
// places an address in a region, SetRegionRTT sets the round trip between
// two regions (or within one), and SetLatency sets the round trip of one
// link, which overrides its regions'. A link's round trip is waited on the
// sending side before the message is sent, and the reply is not delayed,
// so a call (or a pipelined AppendEntries and its answer) takes the round
// trip as on a real link; SetDelay's global delay adds to it. A message
// waits in its sender's queue, so a pipeline to a distant peer carries one
// AppendEntries per round trip (Raft batches what accrued meanwhile into
// the next). Latencies are fixed numbers, with no jitter: the same matrix
// always delays the same message by the same time.
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
		// region places addresses; regionRTT holds the round trip between
		// two regions (unordered pairs) and linkRTT that of two addresses.
		region    map[string]string
		regionRTT map[[2]string]time.Duration
		linkRTT   map[[2]string]time.Duration
	}
}

// NewFaults returns a Faults that lets everything through; seed drives the
// random drops of SetDrop.
func NewFaults(seed int64) *Faults {
	f := &Faults{}
	f.mu.rng = rand.New(rand.NewSource(seed))
	f.mu.cut = make(map[[2]string]bool)
	f.mu.isolated = make(map[string]bool)
	f.mu.region = make(map[string]string)
	f.mu.regionRTT = make(map[[2]string]time.Duration)
	f.mu.linkRTT = make(map[[2]string]time.Duration)
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

// SetRegion places addr (a Server.Addr) in region; "" takes it out of any.
// Messages between addresses in regions wait the regions' round trip
// (SetRegionRTT) unless their link has its own (SetLatency).
func (f *Faults) SetRegion(addr, region string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if region == "" {
		delete(f.mu.region, addr)
		return
	}
	f.mu.region[addr] = region
}

// SetRegionRTT sets the round trip between regions a and b, both ways; a
// and b may be the same region, for the links within it. 0 removes it.
// Region names must not be empty and rtt not negative.
func (f *Faults) SetRegionRTT(a, b string, rtt time.Duration) error {
	if a == "" || b == "" {
		return fmt.Errorf("transport: region names cannot be empty (%q, %q)", a, b)
	}
	if rtt < 0 {
		return fmt.Errorf("transport: round trip between %s and %s (%s) cannot be negative", a, b, rtt)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rtt == 0 {
		delete(f.mu.regionRTT, pair(a, b))
		return nil
	}
	f.mu.regionRTT[pair(a, b)] = rtt
	return nil
}

// SetLatency sets the round trip of the link between addresses a and b,
// both ways, overriding their regions'; 0 removes the override (the
// regions' round trip applies again). rtt must not be negative, and a
// link joins two different addresses.
func (f *Faults) SetLatency(a, b string, rtt time.Duration) error {
	if a == b {
		return fmt.Errorf("transport: a link joins two addresses, not %s to itself", a)
	}
	if rtt < 0 {
		return fmt.Errorf("transport: round trip between %s and %s (%s) cannot be negative", a, b, rtt)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rtt == 0 {
		delete(f.mu.linkRTT, pair(a, b))
		return nil
	}
	f.mu.linkRTT[pair(a, b)] = rtt
	return nil
}

// Latency returns the round trip of the link between two addresses: its
// own (SetLatency), else its regions' (SetRegionRTT), else 0. The global
// delay of SetDelay is not included.
func (f *Faults) Latency(a, b string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latencyLocked(a, b)
}

func (f *Faults) latencyLocked(a, b string) time.Duration {
	if a == b {
		return 0
	}
	if d, ok := f.mu.linkRTT[pair(a, b)]; ok {
		return d
	}
	ra, oka := f.mu.region[a]
	rb, okb := f.mu.region[b]
	if !oka || !okb {
		return 0
	}
	return f.mu.regionRTT[pair(ra, rb)]
}

// Heal removes every partition, isolation, drop rate and delay. The
// latency matrix (regions and links) stays: it is the network's shape, not
// a fault.
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
	return f.mu.delay + f.latencyLocked(from, to), nil
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
