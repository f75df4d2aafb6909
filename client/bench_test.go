package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/transport"
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
	tn := startNode(b, node, func(c *transport.ClientConfig) { c.MaxChannelInFlight = 4096 })
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
	start, cpu0 := time.Now(), cpuTime()
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
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/tx")
}

// cpuTime is the process's CPU time so far, user and system: on a shared
// machine it is steadier than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanout1000 measures the delay from commit (the leader loop has
// applied the batch) to delivery by the SDK for 1,000 subscribers of one
// channel, each on its own stream, while one writer calls.
func BenchmarkFanout1000(b *testing.B) {
	const subscribers = 1000
	keys := benchKeys(b, subscribers+1)
	node := newMemNode()
	ch := testChannel(1)
	mc := node.addChannel(b, ch, keys...)
	tn := startNode(b, node, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	committed := map[uint64]time.Time{}
	mc.mu.Lock()
	mc.onCommit = func(outs []transport.Outcome) {
		now := time.Now()
		mu.Lock()
		for _, o := range outs {
			committed[o.Height] = now
		}
		mu.Unlock()
	}
	mc.mu.Unlock()

	writer := dial(b, keys[0], tn.addr)
	subs := make([]*client.Subscription, subscribers)
	for i := range subs {
		c := dial(b, keys[i+1], tn.addr)
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
	delays := make([][]time.Duration, subscribers)
	final := uint64(b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	for i, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s.Height() < final || len(delays[i]) < b.N {
				u, err := s.Next(ctx)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						b.Error(err)
					}
					return
				}
				now := time.Now()
				mu.Lock()
				at := committed[u.Outcome.Height]
				mu.Unlock()
				delays[i] = append(delays[i], now.Sub(at))
				if u.Outcome.Height == final {
					return
				}
			}
		}()
	}
	for range b.N {
		// Aborts (rename by a non-member of the chat) commit too.
		if _, err := writer.Call(ctx, ch, "chat::rename", args); err != nil && !errors.Is(err, transport.ErrAbort) {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
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
	b.ReportMetric(float64(tn.svc.Stats().Dropped), "dropped")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(len(all)), "cpu-µs/delivery")
}
