package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/devchain"
)

// appendExec is a tiny contract: send appends its args to the sender's
// resource.
type appendExec struct{}

func (appendExec) Has(fn string) bool { return fn == "send" }

func (appendExec) Execute(call protocol.Call, st protocol.StateReader) protocol.CallResult {
	key := protocol.ResourceKey{Account: call.Sender, Type: "chat::Messages"}
	old, ok := st.Get(key)
	nw := append(append([]byte(nil), old...), call.Args...)
	ch := protocol.Change{Key: key, Kind: protocol.OpNew, New: nw}
	if ok {
		ch = protocol.Change{Key: key, Kind: protocol.OpModify, Old: old, New: nw}
	}
	return protocol.CallResult{Status: protocol.StatusOK, GasUsed: 10, ChangeSet: protocol.ChangeSet{Changes: []protocol.Change{ch}}}
}

// startAPINode starts one node on an in-process chain, hosting a new
// channel whose only member is the node, and returns it with its key and
// the channel.
func startAPINode(t *testing.T, recent int) (*runningNode, *protocol.Key, protocol.ChannelID) {
	t.Helper()
	return startAPINodeWith(t, recent, nil)
}

// startAPINodeWith is startAPINode with tune changing the node's options.
func startAPINodeWith(t *testing.T, recent int, tune func(*nodeOptions)) (*runningNode, *protocol.Key, protocol.ChannelID) {
	t.Helper()
	ctx := context.Background()
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval = 5 * time.Millisecond
	cfg.NoSync = true
	cfg.Logger = testutil.Logger(t, "devchain")
	chain, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	creator, _ := protocol.GenerateKey(nil)
	id, err := devchain.NewLocal(chain, creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := protocol.GenerateKey(nil)
	if _, err := devchain.NewLocal(chain, key).Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	o := nodeOptions{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", Key: key, Chain: devchain.NewLocal(chain, key),
		Logger: testutil.Logger(t, "node"), Channels: []protocol.ChannelID{id},
		Tune: func(c *cluster.Config) {
			c.Executors = func(string, []byte) (fsm.Executor, error) { return appendExec{}, nil }
			c.RecentOutcomes = recent
		},
	}
	if tune != nil {
		tune(&o)
	}
	r, err := startNode(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	testutil.WaitFor(t, 20*time.Second, func() error {
		c, ok := r.node.Channel(id)
		if !ok {
			return fmt.Errorf("channel not open")
		}
		if st := c.Status(); !st.Ready || !st.Leading {
			return fmt.Errorf("not ready or not leading: %+v", st)
		}
		return nil
	})
	return r, key, id
}

func TestChannelAPIOverClient(t *testing.T) {
	const recent = 16
	r, key, id := startAPINode(t, recent)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, key, []protocol.Address{key.Address()}, r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	var heights []uint64
	call := func(msg string) *client.Result {
		t.Helper()
		res, err := cl.Call(ctx, id, "chat::send", []byte(msg))
		if err != nil {
			t.Fatalf("call %q: %v", msg, err)
		}
		heights = append(heights, res.Height)
		return res
	}
	for i := range 10 {
		call(fmt.Sprintf("m%d;", i))
	}

	// Resuming from a retained height: no snapshot, every height after it.
	from := heights[4]
	sub, err := cl.Subscribe(ctx, id, from)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	next := from + 1
	read := func(upTo uint64) {
		t.Helper()
		for next <= upTo {
			u, err := sub.Next(ctx)
			if err != nil {
				t.Fatalf("subscription: %v", err)
			}
			if u.Snapshot != nil {
				t.Fatalf("snapshot at %d when resuming from retained height %d", u.Snapshot.Height, from)
			}
			if u.Outcome.Height != next {
				t.Fatalf("outcome at height %d, want %d", u.Outcome.Height, next)
			}
			next++
		}
	}
	read(heights[9])
	last := call("live;")
	read(last.Height)

	// Resuming from a height the ring no longer holds: a snapshot first.
	for i := range recent + 4 {
		call(fmt.Sprintf("n%d;", i))
	}
	old, err := cl.Subscribe(ctx, id, heights[0])
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	u, err := old.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Snapshot == nil || u.Snapshot.Height < heights[len(heights)-1] || len(u.Snapshot.Members) != 1 {
		t.Fatalf("evicted height %d: first update %+v, want a snapshot at %d or later", heights[0], u, heights[len(heights)-1])
	}

	// A used nonce with other content is a stale nonce; the same tx again
	// is its first outcome.
	tx := protocol.SignTx(key, protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send", Args: []byte("again;")})
	if _, err := cl.CallTx(ctx, tx); !errors.Is(err, protocol.ErrStaleNonce) {
		t.Fatalf("used nonce: %v, want stale nonce", err)
	}

	st, err := cl.Status(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 1 {
		t.Fatalf("status members: %+v", st.Members)
	}
	m := st.Members[0]
	if m.Address != key.Address() || !m.Leader || m.Lag != 0 || m.HeartbeatAge < 0 {
		t.Fatalf("member status %+v", m)
	}
}

// dialNodeTLS opens a raw gRPC connection to a node's port over TLS,
// accepting only the node whose key has address nodeKey; it is closed when
// the test ends.
func dialNodeTLS(t *testing.T, addr string, nodeKey protocol.Address) *grpc.ClientConn {
	t.Helper()
	tcfg, err := tlsid.ClientConfig(nil, tlsid.Pinned(nodeKey))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tcfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
