package devchain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
)

type result struct {
	o   Outcome
	err error
}

// submitAsync submits raw and returns where its outcome will arrive, once
// the tx is pending.
func submitAsync(t *testing.T, c *Chain, raw []byte) <-chan result {
	t.Helper()
	out := make(chan result, 1)
	before := pendingCount(c)
	go func() {
		o, err := c.Submit(context.Background(), raw)
		out <- result{o, err}
	}()
	testutil.Eventually(t, 5*time.Second, "tx pending", func() bool { return pendingCount(c) > before })
	return out
}

func pendingCount(c *Chain) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mu.pending)
}

func produce(t *testing.T, c *Chain) settlement.Head {
	t.Helper()
	h, err := c.ProduceBlock()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestProduceBlockOnDemand(t *testing.T) {
	c, clock := newTestChain(t, t.TempDir(), 0)
	k := chaintest.Key("alice")
	r := submitAsync(t, c, NewTx(k, 1, &contract.Deposit{Amount: 5}).Bytes())
	select {
	case <-r:
		t.Fatal("answered before a block was made")
	default:
	}
	clock.Advance(time.Hour)
	h := produce(t, c)
	res := <-r
	if res.err != nil || res.o.Block != 1 || h.Height != 1 || h.TimeMs != genesis.Add(time.Hour).UnixMilli() {
		t.Fatalf("outcome %+v %v head %+v", res.o, res.err, h)
	}
	// Time never goes backwards, even with a clock that does not move.
	if h2 := produce(t, c); h2.TimeMs != h.TimeMs+1 {
		t.Fatalf("next block time %d, want %d", h2.TimeMs, h.TimeMs+1)
	}
}

func TestNonceOrder(t *testing.T) {
	tests := []struct {
		name   string
		nonces []uint64
		blocks int
		errs   []error
	}{
		{"in order", []uint64{1, 2, 3}, 1, []error{nil, nil, nil}},
		{"reversed within a block", []uint64{3, 2, 1}, 1, []error{nil, nil, nil}},
		{"duplicate", []uint64{1, 1}, 1, []error{nil, ErrBadNonce}},
		{"gap never filled", []uint64{1, 3}, 3, []error{nil, ErrNonceGap}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig(t.TempDir())
			cfg.BlockInterval, cfg.NoSync, cfg.NonceGapBlocks = 0, true, 3
			c, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			k := chaintest.Key("alice")
			var rs []<-chan result
			for _, n := range tc.nonces {
				rs = append(rs, submitAsync(t, c, NewTx(k, n, &contract.Deposit{Amount: n}).Bytes()))
			}
			for range tc.blocks {
				produce(t, c)
			}
			for i, r := range rs {
				res := <-r
				if !errors.Is(res.err, tc.errs[i]) || (tc.errs[i] == nil && res.err != nil) {
					t.Fatalf("tx %d (nonce %d): %v, want %v", i, tc.nonces[i], res.err, tc.errs[i])
				}
			}
		})
	}
}

// TestRestartKeepsStateAndEvents closes and reopens a chain: same head, same
// state hash, same events, and a watch resumes without gaps or repeats.
func TestRestartKeepsStateAndEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	c, clock := newTestChain(t, dir, 2*time.Millisecond)
	s := map[string]*Client{}
	for _, n := range []string{"alice", "bob", "carol"} {
		s[n] = NewLocal(c, chaintest.Key(n))
	}
	id, err := s["alice"].CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("code")})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice", "bob", "carol"} {
		if _, err := s[n].Join(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s["alice"].ClaimLeader(ctx, id, 0, nil); err != nil {
		t.Fatal(err)
	}
	before := collect(t, c, settlement.EventID{}, 5)
	c.Close()
	head, app := c.Head(), c.AppHash()

	cfg := DefaultConfig(dir)
	cfg.BlockInterval, cfg.Clock, cfg.NoSync = 2*time.Millisecond, clock, true
	c2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if h := c2.Head(); h.Height < head.Height {
		t.Fatalf("head went back from %d to %d", head.Height, h.Height)
	}
	if b, err := c2.Block(head.Height); err != nil || b.AppHash != app {
		t.Fatalf("block %d after restart: %v", head.Height, err)
	}
	after := collect(t, c2, settlement.EventID{}, len(before))
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("event %d changed: %+v, then %+v", i, before[i], after[i])
		}
	}
	// New events continue the numbering.
	bob := NewLocal(c2, chaintest.Key("bob"))
	if err := bob.Leave(ctx, id); err != nil {
		t.Fatal(err)
	}
	next := collect(t, c2, before[len(before)-1].ID.Next(), 1)
	if next[0].Kind != contract.EventMemberLeaving || !before[len(before)-1].ID.Less(next[0].ID) {
		t.Fatalf("resumed with %+v", next[0])
	}
}

func collect(t *testing.T, c *Chain, from settlement.EventID, n int) []settlement.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := c.Watch(ctx, from)
	var out []settlement.Event
	for len(out) < n {
		ev, err := st.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		out = append(out, ev)
	}
	return out
}

func TestCloseTwiceAndRefuse(t *testing.T) {
	c, _ := newTestChain(t, t.TempDir(), 0)
	r := submitAsync(t, c, NewTx(chaintest.Key("a"), 1, &contract.Deposit{Amount: 1}).Bytes())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if res := <-r; !errors.Is(res.err, ErrClosed) {
		t.Fatalf("pending tx: %v", res.err)
	}
	if _, err := c.Submit(context.Background(), NewTx(chaintest.Key("a"), 2, &contract.Deposit{Amount: 1}).Bytes()); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit after close: %v", err)
	}
	if _, err := c.ChannelInfo(protocol.ChannelID{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("query after close: %v", err)
	}
}

func TestVerifySignaturesSplit(t *testing.T) {
	for _, n := range []int{1, 127, 300, 1001} {
		batch := make([]*pendingTx, n)
		for i := range batch {
			st := NewTx(chaintest.Key(fmt.Sprint(i%7)), uint64(i+1), &contract.Deposit{Amount: 1})
			if i == n/2 {
				st.Signature[0] ^= 1
			}
			batch[i] = &pendingTx{tx: st}
		}
		for i, ok := range verifySignatures(batch) {
			if ok != (i != n/2) {
				t.Fatalf("n=%d: tx %d verified %v", n, i, ok)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		ok     bool
	}{
		{"defaults", func(c *Config) {}, true},
		{"manual blocks", func(c *Config) { c.BlockInterval = 0 }, true},
		{"no dir", func(c *Config) { c.Dir = "" }, false},
		{"negative interval", func(c *Config) { c.BlockInterval = -time.Second }, false},
		{"no clock", func(c *Config) { c.Clock = nil }, false},
		{"tiny tx limit", func(c *Config) { c.MaxTxBytes = 10 }, false},
		{"pending below block", func(c *Config) { c.MaxPending = c.MaxBlockTxs - 1 }, false},
		{"no nonce wait", func(c *Config) { c.NonceGapBlocks = 0 }, false},
		{"no logger", func(c *Config) { c.Logger = nil }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig(t.TempDir())
			tc.change(&cfg)
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				if _, err := Open(cfg); err == nil {
					t.Fatal("Open accepted an invalid config")
				}
			}
		})
	}
}

// TestDataDirInUse: a second chain on a data directory in use is refused
// with an error that says so, after the open's 2 s wait for the lock.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	newTestChain(t, dir, 0)
	cfg := DefaultConfig(dir)
	cfg.Logger = testutil.Logger(t, "devchain")
	c, err := Open(cfg)
	if err == nil {
		c.Close()
		t.Fatal("a second chain opened a data directory in use")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second chain: %v", err)
	}
}
