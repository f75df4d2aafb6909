package contract

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

var testCode = []byte("\x00asm\x01\x00\x00\x00")

// harness drives a Machine over a MemStore with named members and a chain
// clock that tests move by hand.
type harness struct {
	t      *testing.T
	m      *Machine
	st     MemStore
	now    int64
	height uint64
	keys   map[string]*protocol.Key
	ch     protocol.ChannelID
}

func newHarness(t *testing.T) *harness { return newHarnessWith(t, DefaultParams()) }

// newHarnessWith starts a chain whose genesis holds p.
func newHarnessWith(t *testing.T, p Params) *harness {
	h := &harness{t: t, m: New(DefaultParams()), st: MemStore{}, now: 1_700_000_000_000, keys: map[string]*protocol.Key{}}
	if err := InitGenesis(h.st, p); err != nil {
		t.Fatal(err)
	}
	return h
}

// params returns the chain's settings.
func (h *harness) params() Params { return h.m.ParamsOf(h.st) }

func (h *harness) key(name string) *protocol.Key {
	if k, ok := h.keys[name]; ok {
		return k
	}
	seed := sha256.Sum256([]byte(name))
	k, err := protocol.KeyFromSeed(seed[:])
	if err != nil {
		h.t.Fatal(err)
	}
	h.keys[name] = k
	return k
}

func (h *harness) addr(name string) protocol.Address { return h.key(name).Address() }

// call runs c as name in a block of its own, 1 ms after the last.
func (h *harness) call(name string, c Call) (Receipt, error) {
	h.height++
	h.now++
	k := h.key(name)
	tx := sha256.Sum256(fmt.Appendf(nil, "%s/%d", name, h.height))
	return h.m.Apply(h.st, Env{Height: h.height, TimeMs: h.now, Sender: k.Address(), SenderKey: k.Public(), TxHash: tx}, c)
}

func (h *harness) must(name string, c Call) Receipt {
	h.t.Helper()
	rc, err := h.call(name, c)
	if err != nil {
		h.t.Fatalf("%s by %s: %v", c.Kind(), name, err)
	}
	return rc
}

func (h *harness) advance(d time.Duration) { h.now += d.Milliseconds() }

// channel creates a channel with min stake 100 and fine 60 and has the named
// members stake and join in order; the first claims leadership.
func (h *harness) channel(members ...string) protocol.ChannelID {
	h.t.Helper()
	rc := h.must("creator", &CreateChannel{Contract: "chat", Code: testCode,
		Labels: []Label{{"server_address", "127.0.0.1:1"}},
		Config: ChannelConfig{MinStake: 100, Fine: 60, TickInterval: 50 * time.Millisecond}})
	h.ch = rc.Channel
	for i, n := range members {
		h.must(n, &Stake{Channel: h.ch, Amount: 100})
		h.must(n, &Join{Channel: h.ch})
		if i == 0 {
			h.must(n, &ClaimLeader{Channel: h.ch, Epoch: 0})
		}
	}
	return h.ch
}

func (h *harness) chanRec() *Channel {
	h.t.Helper()
	c, err := GetChannel(h.st, h.ch)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) keepAll(names ...string) {
	for _, n := range names {
		h.must(n, &KeepAlive{Channel: h.ch})
	}
}

func (h *harness) propose(name string, kind protocol.ProposalKind, v protocol.Encodable) (uint64, error) {
	rc, err := h.call(name, &CreateProposal{Channel: h.ch, Type: kind, Data: protocol.Marshal(v)})
	return rc.Proposal, err
}

func (h *harness) attest(epoch uint64, claimant string, attesters ...string) []protocol.Attestation {
	var out []protocol.Attestation
	for _, n := range attesters {
		a := protocol.Attestation{Channel: h.ch, Epoch: epoch, Claimant: h.addr(claimant)}
		a.Sign(h.key(n))
		out = append(out, a)
	}
	return out
}

// batch returns a batch signed by leader holding one call by sender at
// height with the given claimed result.
func (h *harness) batch(leader, sender string, height uint64, claimed protocol.Result) (*protocol.Batch, *protocol.SignedTx) {
	tx := protocol.SignTx(h.key(sender), protocol.Tx{Channel: h.ch, Nonce: height, Function: "chat::send", Args: []byte("hi")})
	b := &protocol.Batch{Channel: h.ch, Epoch: 1, FirstHeight: height, TimestampMs: 1,
		Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}},
		Results: []protocol.Result{claimed}}
	b.Sign(h.key(leader))
	return b, tx
}

// punishment builds a punish payload against target from a batch whose
// claimed result differs from the honest one.
func (h *harness) punishment(target string) *protocol.Punish {
	honestCS := protocol.ChangeSet{}
	honest := protocol.Result{Status: protocol.StatusOK, GasUsed: 10, ChangeSet: honestCS.Hash()}
	claimed := honest
	claimed.GasUsed = 11
	b, _ := h.batch(target, "bob", 7, claimed)
	return &protocol.Punish{Target: h.addr(target), Height: 7, Batch: b.Bytes(), Honest: honest, HonestChangeSet: honestCS, Reason: "result differs"}
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}
