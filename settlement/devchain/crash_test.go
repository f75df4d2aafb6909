package devchain

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain/chainpb"
)

// childEnv makes the test binary run a chain server instead of tests: the
// crash test re-executes itself as the chain process it kills.
const childEnv = "SCRAFT_DEVCHAIN_CHILD_DIR"

// childIntervalEnv overrides the child's block interval (default 20 ms).
const childIntervalEnv = "SCRAFT_DEVCHAIN_CHILD_INTERVAL"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := runChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild serves a chain in dir (fsync on, 20 ms blocks) and writes its
// address to dir/addr. It runs until killed.
func runChild(dir string) error {
	cfg := DefaultConfig(dir)
	cfg.BlockInterval = 20 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv(childIntervalEnv)); err == nil {
		cfg.BlockInterval = d
	}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "child", Level: hclog.Info, Output: os.Stderr})
	c, err := Open(cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	g, err := NewGRPCServer(c, chainKey)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(l.Addr().String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		return err
	}
	return g.Serve(l)
}

// startChild runs the chain process on dir and returns its address.
func startChild(t testing.TB, dir string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	os.Remove(filepath.Join(dir, "addr"))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"="+dir), env...)
	logf, err := os.OpenFile(filepath.Join(dir, "child.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var addr string
	testutil.WaitFor(t, 20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "addr"))
		if err != nil {
			return err
		}
		addr = string(b)
		return nil
	})
	return cmd, addr
}

type acked struct {
	hash  protocol.Hash
	block uint64
	index uint32
}

// TestCrashRecovery kills the chain process with SIGKILL in the middle of a
// load of chain txs, three times, restarting it on the same data each time.
// After each restart every acknowledged tx is in its block, the event stream
// begins with exactly the events seen before the crash, and replaying every
// block from genesis gives the same blocks (so the same state hashes) and
// the same events.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills chain processes")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd, addr := startChild(t, dir)

	creator, err := Dial(addr, chaintest.Key("creator"), pinned)
	if err != nil {
		t.Fatal(err)
	}
	id, err := creator.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("code")})
	creator.Close()
	if err != nil {
		t.Fatal(err)
	}
	const members = 16
	var (
		seen []settlement.Event
		acks []acked
	)
	for round := range 3 {
		seen, acks = loadUntilKilled(ctx, t, cmd, addr, id, members, round == 0, seen, acks)
		t.Logf("round %d: killed with %d txs acknowledged, %d events seen", round, len(acks), len(seen))
		cmd, addr = startChild(t, dir)
		checkAfterCrash(ctx, t, addr, seen, acks)
	}
}

// loadUntilKilled runs heartbeats and stakes from every member (joining them
// first if join), watches events, and kills the chain once 300 more txs are
// acknowledged. It returns the events seen and txs acknowledged so far.
func loadUntilKilled(ctx context.Context, t *testing.T, cmd *exec.Cmd, addr string, id protocol.ChannelID, members int, join bool,
	seen []settlement.Event, acks []acked) ([]settlement.Event, []acked) {
	t.Helper()
	var clients []*Client
	for i := range members {
		cl, err := Dial(addr, chaintest.Key(fmt.Sprintf("m%d", i)), pinned)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if join {
			if _, err := cl.Join(ctx, id, false); err != nil {
				t.Fatal(err)
			}
		}
		clients = append(clients, cl)
	}
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		target = len(acks) + 300
	)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	from := settlement.EventID{}
	if len(seen) > 0 {
		from = seen[len(seen)-1].ID.Next()
	}
	stream, err := clients[0].Watch(wctx, from)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			mu.Lock()
			seen = append(seen, ev)
			mu.Unlock()
		}
	}()
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				var call contract.Call = &contract.KeepAlive{Channel: id}
				if n%4 == 3 {
					call = &contract.Stake{Channel: id, Amount: 1}
				}
				o, err := cl.Send(wctx, call)
				if o.Block == 0 && err != nil {
					return // the chain is gone
				}
				mu.Lock()
				acks = append(acks, acked{o.TxHash, o.Block, o.Index})
				mu.Unlock()
			}
		}()
	}
	testutil.Eventually(t, 30*time.Second, "300 more acknowledged txs", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acks) >= target
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	wcancel()
	wg.Wait()
	return seen, acks
}

func checkAfterCrash(ctx context.Context, t *testing.T, addr string, seen []settlement.Event, acks []acked) {
	t.Helper()
	cl, err := Dial(addr, chaintest.Key("checker"), pinned)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	api := cl.b.(*remote).api
	block := func(h uint64) *Block {
		resp, err := api.GetBlock(ctx, &chainpb.GetBlockRequest{Height: h})
		if err != nil {
			t.Fatalf("block %d: %v", h, errorFrom(err))
		}
		b, err := DecodeBlock(resp.Block)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Every acknowledged tx is where its outcome said.
	for _, a := range acks {
		b := block(a.block)
		if int(a.index) >= len(b.Txs) {
			t.Fatalf("block %d has %d txs, ack at %d", a.block, len(b.Txs), a.index)
		}
		tx, err := DecodeTx(b.Txs[a.index].Tx, 1<<30)
		if err != nil || tx.Hash() != a.hash {
			t.Fatalf("block %d tx %d is not the acknowledged one", a.block, a.index)
		}
	}
	// The event stream begins with what was seen before the crash.
	after := collectRemote(t, cl, settlement.EventID{}, len(seen))
	for i := range seen {
		if seen[i] != after[i] {
			t.Fatalf("event %d: %+v before the crash, %+v after", i, seen[i], after[i])
		}
	}
	// Replaying all blocks gives the same blocks and events.
	head, err := api.GetHead(ctx, &chainpb.GetHeadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	replay, _ := newTestChain(t, t.TempDir(), 0)
	for h := uint64(1); h <= head.Height; h++ {
		b := block(h)
		rb, err := replay.replay(b)
		if err != nil {
			t.Fatal(err)
		}
		if string(rb.Bytes()) != string(b.Bytes()) {
			t.Fatalf("block %d differs on replay (app hash %s, want %s)", h, rb.AppHash, b.AppHash)
		}
	}
	all := collectUntil(t, replay, settlement.EventID{Block: head.Height + 1})
	remoteAll := collectRemote(t, cl, settlement.EventID{}, len(all))
	for i := range all {
		if all[i] != remoteAll[i] {
			t.Fatalf("replayed event %d differs: %+v vs %+v", i, all[i], remoteAll[i])
		}
	}
	t.Logf("replayed %d blocks, %d events", head.Height, len(all))
}

func collectRemote(t *testing.T, cl *Client, from settlement.EventID, n int) []settlement.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := cl.Watch(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	var out []settlement.Event
	for len(out) < n {
		ev, err := st.Recv()
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, ev)
	}
	return out
}

// collectUntil reads the committed events before id until.
func collectUntil(t *testing.T, c *Chain, until settlement.EventID) []settlement.Event {
	t.Helper()
	var out []settlement.Event
	from := settlement.EventID{}
	for {
		evs, err := c.readEvents(from, 1024)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if !ev.ID.Less(until) {
				return out
			}
			out = append(out, ev)
		}
		if len(evs) == 0 {
			return out
		}
		from = evs[len(evs)-1].ID.Next()
	}
}
