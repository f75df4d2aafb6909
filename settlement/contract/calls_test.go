package contract

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

func sampleCalls() []Call {
	ch := protocol.ChannelID{1, 2, 3}
	k, _ := protocol.KeyFromSeed(bytes.Repeat([]byte{1}, 32))
	a := protocol.Attestation{Channel: ch, Epoch: 3, Claimant: k.Address()}
	a.Sign(k)
	v := protocol.Vote{Channel: ch, Proposal: 2, Option: protocol.VoteFor}
	v.Sign(k)
	return []Call{
		&CreateChannel{Contract: "chat", Code: testCode, InitialState: protocol.State{{Account: protocol.Address{1}, Type: "a::B"}: []byte("x")},
			Labels: []Label{{"server_address", "x"}}, Config: ChannelConfig{TickInterval: time.Second, GasLimit: 5, MinStake: 1, Fine: 1}},
		&CreateChannel{Contract: "chat", CodeHash: CodeHashOf(testCode), ABI: []byte(testABI)},
		&Stake{Channel: ch, Amount: 5}, &Deposit{Amount: 1}, &Withdraw{Amount: 2},
		&Join{Channel: ch, UsePool: true}, &Leave{Channel: ch}, &KeepAlive{Channel: ch}, &Close{Channel: ch},
		&ClaimLeader{Channel: ch, Epoch: 3, Attestations: []protocol.Attestation{a}},
		&CreateProposal{Channel: ch, Type: protocol.ProposalSettlement, Data: []byte{1}},
		&Vote{Channel: ch, Proposal: 2, Option: protocol.VoteAbstain},
		&SubmitVotes{Channel: ch, Proposal: 2, Votes: []protocol.Vote{v}},
		&ExecuteProposal{Channel: ch, Proposal: 2}, &ProveInclusion{Channel: ch, Proposal: 2, Batch: []byte{9}},
		&Delegate{Channel: ch, Candidate: k.Address()}, &SetNodeAddress{Channel: ch, Address: "127.0.0.1:7801"},
		&TransferLeader{Channel: ch, Epoch: 4, To: k.Address()},
	}
}

func TestCallRoundTrip(t *testing.T) {
	for _, c := range sampleCalls() {
		t.Run(c.Kind().String(), func(t *testing.T) {
			b := EncodeCall(c)
			got, err := DecodeCall(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(EncodeCall(got), b) {
				t.Fatalf("round trip changed the encoding")
			}
			if _, err := DecodeCall(append(b, 0)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("trailing byte: %v", err)
			}
			if _, err := DecodeCall(b[:len(b)-1]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("truncated: %v", err)
			}
		})
	}
	for _, b := range [][]byte{nil, {0}, {99}} {
		if _, err := DecodeCall(b); err == nil {
			t.Fatalf("decoded %x", b)
		}
	}
}

func FuzzDecodeCall(f *testing.F) {
	for _, c := range sampleCalls() {
		f.Add(EncodeCall(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCall(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeCall(c), b) {
			t.Fatalf("decoded %x but encodes as %x", b, EncodeCall(c))
		}
		// Whatever decodes must be applied or refused without a panic.
		h := &harness{t: nil, m: New(DefaultParams()), st: MemStore{}, keys: map[string]*protocol.Key{}}
		k, _ := protocol.KeyFromSeed(bytes.Repeat([]byte{2}, 32))
		_, _ = h.m.Apply(h.st, Env{Height: 1, TimeMs: 1, Sender: k.Address(), SenderKey: k.Public()}, c)
	})
}

func TestErrorCodes(t *testing.T) {
	seen := map[uint32]bool{}
	for _, c := range codes {
		if seen[c.code] || c.code == 0 {
			t.Fatalf("code %d reused", c.code)
		}
		seen[c.code] = true
		wrapped := fmt.Errorf("join: %w", c.err)
		if Code(wrapped) != c.code {
			t.Fatalf("Code(%v) = %d, want %d", wrapped, Code(wrapped), c.code)
		}
		back := ErrorOf(c.code, wrapped.Error())
		if !errors.Is(back, c.err) || back.Error() != wrapped.Error() {
			t.Fatalf("ErrorOf lost %v: %v", c.err, back)
		}
	}
	if Code(errors.New("other")) != 0 || Code(nil) != 0 {
		t.Fatal("unknown errors must have code 0")
	}
}

// TestDeterministic runs the same calls on two stores and compares every
// receipt; a refused call must leave no write behind.
func TestDeterministic(t *testing.T) {
	run := func() (*harness, [][]Write, [][]Event) {
		h := newHarness(t)
		h.channel("alice", "bob", "carol", "dave", "eve", "frank", "grace") // with candidates
		var ws [][]Write
		var evs [][]Event
		steps := []struct {
			who string
			c   Call
		}{
			{"bob", &KeepAlive{Channel: h.ch}},
			{"bob", &ClaimLeader{Channel: h.ch, Epoch: 1, Attestations: h.attest(1, "bob", "bob", "carol", "dave", "frank", "grace")}},
			{"mallory", &Join{Channel: h.ch}},
			{"carol", &Delegate{Channel: h.ch, Candidate: h.addr("bob")}},
			{"frank", &Delegate{Channel: h.ch, Candidate: h.addr("eve")}},
			{"grace", &Stake{Channel: h.ch, Amount: 50}},
			{"alice", &Leave{Channel: h.ch}},
		}
		for _, s := range steps {
			before := len(h.st)
			rc, err := h.call(s.who, s.c)
			if err != nil && len(h.st) != before {
				t.Fatalf("refused %s wrote state", s.c.Kind())
			}
			ws = append(ws, rc.Writes)
			evs = append(evs, rc.Events)
		}
		return h, ws, evs
	}
	h1, w1, e1 := run()
	h2, w2, e2 := run()
	if fmt.Sprint(w1) != fmt.Sprint(w2) || fmt.Sprint(e1) != fmt.Sprint(e2) {
		t.Fatal("same calls gave different writes or events")
	}
	if len(h1.st) != len(h2.st) {
		t.Fatal("stores differ")
	}
	for k, v := range h1.st {
		if !bytes.Equal(h2.st[k], v) {
			t.Fatalf("stores differ at %x", k)
		}
	}
}
