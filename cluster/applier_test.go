package cluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// gatedFacts is a factSource whose chain answers only when the test opens
// it: it knows nothing without asking, and resolve tells asked, then
// waits for answer (the leader of every epoch asked) or ctx.
type gatedFacts struct {
	leader protocol.Address
	asked  chan *fsm.NeedFactsError
	answer chan struct{}
}

func (g *gatedFacts) known(*protocol.Batch, *fsm.Facts) {}

func (g *gatedFacts) resolve(ctx context.Context, need *fsm.NeedFactsError, facts *fsm.Facts) error {
	g.asked <- need
	select {
	case <-g.answer:
		facts.SetLeader(need.Epoch, g.leader)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestApplierOutsideTheLock: the applier builds a genesis's machine and
// waits for a batch's chain facts without the machine lock, so readers of
// the machine never wait for either; with the facts it applies the batch
// and publishes it; cut short by its context while it waits, it applies
// and publishes nothing more.
func TestApplierOutsideTheLock(t *testing.T) {
	key, _ := protocol.GenerateKey(nil)
	id := protocol.ChannelID{0xa9}
	g := &genesis{Contract: "chat", Members: []fsm.Member{{Address: key.Address(), PublicKey: key.Public(), JoinSeq: 1}}, HighestJoinSeq: 1}
	newMachine := func() *fsm.Machine {
		m, err := fsm.New(g.fsmConfig(id), counterExec{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	building := make(chan struct{})
	built := make(chan struct{})
	facts := &gatedFacts{leader: key.Address(), asked: make(chan *fsm.NeedFactsError, 1), answer: make(chan struct{})}
	var published []uint64
	a := &applier{
		id: id, self: protocol.Address{0x01}, logger: testutil.Logger(t, "applier"), cache: newOutcomeCache(16),
		build: func(ctx context.Context, _ *genesis) (*fsm.Machine, error) {
			close(building)
			<-built
			return newMachine(), nil
		},
		facts:   facts,
		applied: func(b *protocol.Batch, _ []byte, _ *fsm.Applied) { published = append(published, b.FirstHeight) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	apply := func(data []byte) <-chan *applyResult {
		done := make(chan *applyResult, 1)
		go func() { done <- a.Apply(ctx, []committedBatch{{data: data}})[0] }()
		return done
	}
	reads := func(what string) {
		t.Helper()
		within(t, 2*time.Second, "the machine lock while "+what, func() error {
			a.machine(func(*fsm.Machine) {})
			return nil
		})
	}

	gen := apply(encodeLog(logGenesis, g.bytes()))
	<-building
	reads("a genesis builds")
	close(built)
	if res := <-gen; res.err != nil {
		t.Fatalf("genesis: %v", res.err)
	}

	proposer := newMachine()
	batch := func(nonce uint64) *protocol.Batch {
		tx := protocol.SignTx(key, protocol.Tx{Channel: id, Nonce: nonce, Function: "chat::send", Args: []byte("x")})
		b, _, err := proposer.Propose([]protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, 1, key, nonce)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1 := batch(1)
	done := apply(encodeLog(logBatch, b1.Bytes()))
	if need := <-facts.asked; !need.Leader || need.Epoch != 1 {
		t.Fatalf("asked for %v, want the leader of epoch 1", need)
	}
	reads("a batch waits for its facts")
	if sum := a.summary.Load(); sum == nil || sum.height != 0 || len(published) != 0 {
		t.Fatalf("published during the wait: %+v, %v", sum, published)
	}
	close(facts.answer)
	if res := <-done; res.err != nil || res.applied == nil {
		t.Fatalf("batch with its facts: %+v", res)
	}
	if sum := a.summary.Load(); sum.height != 1 || len(published) != 1 {
		t.Fatalf("after the batch: summary %+v, published %v", sum, published)
	}

	// The next batch is of an epoch nobody knows yet; shutdown cuts the
	// wait short.
	facts.answer = make(chan struct{})
	tx := protocol.SignTx(key, protocol.Tx{Channel: id, Nonce: 2, Function: "chat::send", Args: []byte("y")})
	b2, _, err := proposer.Propose([]protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, 2, key, 2)
	if err != nil {
		t.Fatal(err)
	}
	done = apply(encodeLog(logBatch, b2.Bytes()))
	<-facts.asked
	cancel()
	if res := <-done; !errors.Is(res.err, ErrClosed) {
		t.Fatalf("cut short: %v, want ErrClosed", res.err)
	}
	if !a.abandoned.Load() {
		t.Fatal("not abandoned")
	}
	if res := <-apply(encodeLog(logBatch, b1.Bytes())); !errors.Is(res.err, ErrClosed) {
		t.Fatalf("after being cut short: %v, want ErrClosed", res.err)
	}
	if sum := a.summary.Load(); sum.height != 1 || len(published) != 1 {
		t.Fatalf("abandoned: summary %+v, published %v", sum, published)
	}
}
