package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// BenchmarkStreamVsNode compares, on one 3-node chat channel in this
// process (real gRPC, Raft, bbolt, vm; an in-process devchain), 256 members
// sending signed chat::send calls one after the other: "node" submits them
// inside the nodes (cluster.Channel.Submit, spread over the three), "stream"
// sends them through the client API with the SDK, one client, key and
// stream each, dialled to the three nodes in turn, each client with
// connections of its own; "pooled" is "stream" with the clients' streams
// sharing one connection per node (client.Pool). Run with -benchtime 1x;
// SCRAFT_BENCH_SECONDS (default 9) is how long each is measured, over three
// alternating rounds; SCRAFT_BENCH_MEMBERS (default 256) the members sending.
func BenchmarkStreamVsNode(b *testing.B) {
	members := 256
	if s, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_MEMBERS")); err == nil && s > 0 {
		members = s
	}
	d := 9 * time.Second
	if s, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_SECONDS")); err == nil && s > 0 {
		d = time.Duration(s) * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	chain, err := devchain.Open(devchain.DefaultConfig(filepath.Join(dir, "chain")))
	if err != nil {
		b.Fatal(err)
	}
	defer chain.Close()
	chat, err := contracts.Get("chat")
	if err != nil {
		b.Fatal(err)
	}
	initial, err := initialState(ctx, chat.Wasm)
	if err != nil {
		b.Fatal(err)
	}
	creator, _ := protocol.GenerateKey(nil)
	id, err := devchain.NewLocal(chain, creator).CreateChannel(ctx, settlement.ChannelSpec{
		Contract: "chat", Code: chat.Wasm, InitialState: initial,
		Config: contract.ChannelConfig{SettleEveryTxs: 1 << 62},
	})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]*protocol.Key, 3+3*members)
	var joins sync.WaitGroup
	for i := range keys {
		keys[i], _ = protocol.GenerateKey(nil)
		joins.Add(1)
		go func() { // one block each, so all at once
			defer joins.Done()
			if _, err := devchain.NewLocal(chain, keys[i]).Join(ctx, id, false); err != nil {
				b.Error(err)
			}
		}()
	}
	joins.Wait()
	if b.Failed() {
		return
	}
	var nodes []*runningNode
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for i, k := range keys[:3] {
		o := nodeOptions{
			DataDir: filepath.Join(dir, fmt.Sprintf("node%d", i)), Listen: "127.0.0.1:0", Key: k,
			Chain: devchain.NewLocal(chain, k), Channels: []protocol.ChannelID{id},
		}
		if i > 0 {
			o.Peers = []string{nodes[0].srv.Addr()}
		}
		n, err := startNode(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	channels := make([]*cluster.Channel, 3)
	for i, n := range nodes {
		channels[i], _ = n.node.Channel(id)
	}
	testutil.Eventually(b, 60*time.Second, "3 voters and a leader", func() bool {
		st := channels[0].Status()
		return st.Voters == 3 && st.Leader != (protocol.Address{})
	})
	// Each way has its own members, so that each keeps its nonces.
	users, streamUsers, pooledUsers := keys[3:3+members], keys[3+members:3+2*members], keys[3+2*members:]
	send := func(fn, args string) []byte {
		a, err := chat.EncodeArgs(fn, []byte(args))
		if err != nil {
			b.Fatal(err)
		}
		return a
	}
	join, msg := send("join", `{"nick":"member"}`), send("send", `{"text":"hello, channel"}`)

	// measure runs loop for every member for d after a short warm-up and
	// returns the committed calls per second. Each loop makes calls until
	// stop reports true: a call is never cut off halfway.
	measure := func(name string, d time.Duration, loop func(i int, stop func() bool, count func())) float64 {
		var n atomic.Int64
		var counting, stopping atomic.Bool
		var wg sync.WaitGroup
		for i := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				loop(i, stopping.Load, func() {
					if counting.Load() {
						n.Add(1)
					}
				})
			}()
		}
		<-time.After(d / 4) // warm-up
		counting.Store(true)
		start, cpu := time.Now(), testutil.CPUTime()
		<-time.After(d)
		counting.Store(false)
		elapsed, used := time.Since(start), testutil.CPUTime()-cpu
		rate := float64(n.Load()) / elapsed.Seconds()
		stopping.Store(true)
		wg.Wait()
		b.Logf("%s: %.0f tx/s, %.0f cpu-µs/tx, %.2f cores", name, rate,
			float64(used.Microseconds())/float64(max(n.Load(), 1)), used.Seconds()/elapsed.Seconds())
		return rate
	}

	nonces := make([]uint64, len(users))
	inNode := func(i int, stop func() bool, count func()) {
		ch := channels[i%3]
		for !stop() && !b.Failed() {
			fn, args := "chat::send", msg
			if nonces[i] == 0 {
				fn, args = "chat::join", join
			}
			tx := protocol.SignTx(users[i], protocol.Tx{Channel: id, Nonce: nonces[i] + 1, Function: fn, Args: args})
			if _, err := ch.Submit(ctx, tx); err != nil {
				b.Error(err)
				return
			}
			nonces[i]++
			count()
		}
	}
	addrs := []string{nodes[0].srv.Addr(), nodes[1].srv.Addr(), nodes[2].srv.Addr()}
	// sdk returns the loop of members keys calling through the SDK with cfg.
	sdk := func(keys []*protocol.Key, cfg client.Config) func(i int, stop func() bool, count func()) {
		clients := make([]*client.Client, len(keys))
		for i, u := range keys {
			if clients[i], err = cfg.Dial(ctx, u, addrs[i%3], addrs[(i+1)%3], addrs[(i+2)%3]); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { clients[i].Close() })
		}
		joined := make([]bool, len(keys))
		return func(i int, stop func() bool, count func()) {
			for !stop() && !b.Failed() {
				fn, args := "chat::send", msg
				if !joined[i] {
					fn, args = "chat::join", join
				}
				if _, err := clients[i].Call(ctx, id, fn, args); err != nil {
					b.Error(err)
					return
				}
				joined[i] = true
				count()
			}
		}
	}
	streamCfg := client.DefaultConfig()
	for _, k := range keys[:3] {
		streamCfg.NodeKeys = append(streamCfg.NodeKeys, k.Address())
	}
	stream := sdk(streamUsers, streamCfg)
	pooledCfg := streamCfg
	pooledCfg.Pool = client.NewPool()
	pooled := sdk(pooledUsers, pooledCfg)
	// Rounds alternate between the two, so that a change in the machine's
	// load hits both alike.
	const rounds = 3
	var nodeRate, streamRate, pooledRate float64
	only := os.Getenv("SCRAFT_BENCH_ONLY") // "node", "stream" or "pooled", to profile one
	for r := range rounds {
		if only == "" || only == "node" {
			nodeRate += measure(fmt.Sprintf("round %d: node", r+1), d/rounds, inNode) / rounds
		}
		if only == "" || only == "stream" {
			streamRate += measure(fmt.Sprintf("round %d: stream", r+1), d/rounds, stream) / rounds
		}
		if only == "" || only == "pooled" {
			pooledRate += measure(fmt.Sprintf("round %d: pooled", r+1), d/rounds, pooled) / rounds
		}
	}
	b.ReportMetric(nodeRate, "node-tx/s")
	b.ReportMetric(streamRate, "stream-tx/s")
	b.ReportMetric(pooledRate, "pooled-tx/s")
	if nodeRate > 0 {
		b.ReportMetric(streamRate/nodeRate, "stream/node")
		b.ReportMetric(pooledRate/nodeRate, "pooled/node")
	}
}
