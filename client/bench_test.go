package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

func benchKeys(b *testing.B, n int) []*protocol.Key {
	keys := make([]*protocol.Key, n)
	for i := range keys {
		keys[i] = testKey(b, 1000+i)
	}
	return keys
}

// BenchmarkCall256 measures calls through the stream from 256 clients at
// once, each with its own key and stream, to one channel of an in-memory
// node (real fsm, real vm running the chat contract, batched by a leader
// loop): tx/s is committed, verified calls per second.
func BenchmarkCall256(b *testing.B) {
	const clients = 256
	keys := benchKeys(b, clients)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(b, ch, keys...)
	tn := startNode(b, node, func(c *clientapi.Config) { c.MaxChannelInFlight = 4096 })
	ctx := context.Background()
	cs := make([]*client.Client, clients)
	for i, k := range keys {
		cs[i] = dial(b, k, tn.addr)
		if _, err := cs[i].Call(ctx, ch, "chat::join", chatArgs(b, "join", fmt.Sprintf(`{"nick":"u%d"}`, i))); err != nil {
			b.Fatal(err)
		}
	}
	args := chatArgs(b, "send", `{"text":"hello, channel"}`)
	b.ResetTimer()
	start, cpu0 := time.Now(), testutil.CPUTime()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range cs {
		n := b.N / clients
		if i < b.N%clients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if _, err := c.Call(ctx, ch, "chat::send", args); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tx/s")
	b.ReportMetric(float64((testutil.CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/tx")
}

// BenchmarkFanout1000 measures the delay from commit (the leader loop has
// applied the batch) to delivery by the SDK for 1,000 subscribers of one
// channel, each on its own client and stream. b.N is the number of
// commits, one tx each:
//
//   - unpaced: one writer calls again as soon as its call commits, so the
//     commit rate is whatever the machine leaves it;
//   - 20Hz, 50Hz: writers commit on a fixed tick, like a game server's,
//     whether or not the subscribers keep up.
//
// It reports the delay percentiles, CPU time per delivery (both ends:
// everything runs in this process), the commit rate reached, the outcomes
// per message the subscribers received (above 1 when the node coalesces),
// the read and write system calls per delivery, the peak heap and the
// subscribers the node dropped.
func BenchmarkFanout1000(b *testing.B) {
	for _, rate := range []int{0, 20, 50} {
		name := "unpaced"
		if rate > 0 {
			name = fmt.Sprintf("%dHz", rate)
		}
		b.Run(name, func(b *testing.B) { benchFanout(b, 1000, rate) })
	}
}

// benchFanout runs one fan-out benchmark: subscribers streams, writers
// committing rate times a second (as fast as they can when 0).
func benchFanout(b *testing.B, subscribers, rate int) {
	writers := 1
	if rate > 0 {
		// A Client sends its calls to a channel one after the other: with
		// one writer per tick of a second, the tick holds as long as a
		// call commits within a second.
		writers = rate
	}
	keys := benchKeys(b, subscribers+writers)
	node := newMemNode()
	ch := testChannel(1)
	mc := node.addChannel(b, ch, keys...)
	tn := startNode(b, node, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// committed[h] is when height h was applied, in Unix nanoseconds.
	committed := make([]atomic.Int64, b.N+1)
	mc.mu.Lock()
	mc.onCommit = func(outs []protocol.Outcome) {
		now := time.Now().UnixNano()
		for _, o := range outs {
			if o.Height < uint64(len(committed)) {
				committed[o.Height].Store(now)
			}
		}
	}
	mc.mu.Unlock()

	ws := make([]*client.Client, writers)
	for i := range ws {
		ws[i] = dial(b, keys[i], tn.addr)
	}
	var msgs countMessages
	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithStatsHandler(&msgs))
	subs := make([]*client.Subscription, subscribers)
	for i := range subs {
		c, err := cfg.Dial(ctx, keys[writers+i], tn.addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		s, err := c.Subscribe(ctx, ch, 0)
		if err != nil {
			b.Fatal(err)
		}
		if u, err := s.Next(ctx); err != nil || u.Snapshot == nil {
			b.Fatalf("snapshot: %v", err)
		}
		subs[i] = s
	}
	args := chatArgs(b, "rename", `{"name":"g"}`)
	call := func(c *client.Client) error {
		// Aborts (rename by a non-member of the chat) commit too.
		if _, err := c.Call(ctx, ch, "chat::rename", args); err != nil && !errors.Is(err, protocol.ErrAbort) {
			return err
		}
		return nil
	}
	delays := make([][]time.Duration, subscribers)
	final := uint64(b.N)
	var wg sync.WaitGroup
	heap := watchHeap()
	b.ResetTimer()
	start, cpu0, msgs0, sys0 := time.Now(), testutil.CPUTime(), msgs.n.Load(), ioSyscalls()
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				u, err := s.Next(ctx)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						b.Error(err)
					}
					return
				}
				if u.Outcome == nil {
					b.Errorf("subscriber %d: a snapshot while it kept up", i)
					return
				}
				h := u.Outcome.Height
				if h > final {
					b.Errorf("subscriber %d: height %d, only %d committed", i, h, final)
					return
				}
				delays[i] = append(delays[i], time.Duration(time.Now().UnixNano()-committed[h].Load()))
				if h == final {
					return
				}
			}
		}()
	}
	if rate == 0 {
		for range b.N {
			if err := call(ws[0]); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		errs := make(chan error, b.N)
		var calls sync.WaitGroup
		for i := range b.N {
			<-tick.C
			calls.Add(1)
			go func() {
				defer calls.Done()
				if err := call(ws[i%writers]); err != nil {
					errs <- err
				}
			}()
		}
		tick.Stop()
		calls.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
	}
	commitRate := float64(b.N) / time.Since(start).Seconds()
	wg.Wait()
	b.StopTimer()
	cpu, received, sys := testutil.CPUTime()-cpu0, msgs.n.Load()-msgs0, ioSyscalls()-sys0
	peak := heap()
	var all []time.Duration
	for _, d := range delays {
		all = append(all, d...)
	}
	if len(all) != b.N*subscribers {
		b.Fatalf("%d deliveries, want %d", len(all), b.N*subscribers)
	}
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(all[len(all)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(tn.svc.Stats().Dropped), "dropped")
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-µs/delivery")
	b.ReportMetric(commitRate, "commits/s")
	b.ReportMetric(float64(len(all))/float64(max(received, 1)), "outcomes/msg")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	if sys0 >= 0 {
		b.ReportMetric(float64(sys)/float64(len(all)), "rw-syscalls/delivery")
	}
}

// ioSyscalls returns the read and write system calls the process made so
// far (Linux's /proc/self/io: syscr + syscw), or -1 where it cannot tell.
func ioSyscalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok && (k == "syscr" || k == "syscw") {
			c, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			n += c
		}
	}
	return n
}

// countMessages is a gRPC stats handler that counts the messages a client
// receives.
type countMessages struct{ n atomic.Int64 }

func (c *countMessages) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *countMessages) HandleRPC(_ context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.InPayload); ok {
		c.n.Add(1)
	}
}
func (c *countMessages) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *countMessages) HandleConn(context.Context, stats.ConnStats) {}

// watchHeap samples the heap until the returned function is called, which
// returns the largest heap seen (bytes of objects, live or not yet swept).
func watchHeap() func() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		peak := read()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				peak = max(peak, read())
			case <-stop:
				done <- max(peak, read())
				return
			}
		}
	}()
	return func() uint64 {
		close(stop)
		return <-done
	}
}
