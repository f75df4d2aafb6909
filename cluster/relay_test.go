package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport"
)

// TestRelayRefusesUncommitted: a candidate cannot make a delegator apply
// a batch that did not commit. A batch the leader signed but never
// committed, relayed with no proof, with a proof the candidate signed,
// with the leader's proof of another command, of another height or of
// another channel, is refused before it is executed; the delegator
// applies nothing of it and goes on with the committed batches.
func TestRelayRefusesUncommitted(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	ln := tc.leader()
	var del, cand *testNode
	for _, nd := range tc.nodes {
		switch c := tc.channel(nd); {
		case c.delegating() && del == nil:
			del = nd
		case !c.delegating() && nd != ln && cand == nil:
			cand = nd
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	out, err := tc.channel(del).Submit(ctx, tc.tx(del.key, "committed;"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	tc.checkConverged([]*protocol.Outcome{out}, 20*time.Second)

	// The committed command at out.Height, with the leader's proof, as
	// the leader's relay log holds it.
	lc, dc := tc.channel(ln), tc.channel(del)
	var committed relayEntry
	lc.relay.mu.Lock()
	for _, e := range lc.relay.mu.entries {
		if e.first <= out.Height && out.Height <= e.last {
			committed = *e
		}
	}
	lc.relay.mu.Unlock()
	if committed.cmd == nil {
		t.Fatal("the leader's relay log lacks the committed batch")
	}
	if committed.proof == nil {
		committed.proof = signCommit(ln.key, tc.id, lc.Status().Epoch, committed.last, committed.hash).bytes()
	}
	b, err := protocol.DecodeBatch(committed.cmd[1:])
	if err != nil {
		t.Fatal(err)
	}
	// A batch the leader signs for the next heights that never commits.
	height := dc.Status().Height
	b.FirstHeight = height + 1
	b.Sign(ln.key)
	uncommitted := encodeLog(logBatch, b.Bytes())
	h := commandHash(uncommitted)
	epoch := lc.Status().Epoch
	other := protocol.ChannelID{1}

	cases := []struct {
		name  string
		proof []byte
	}{
		{"no proof", nil},
		{"garbage", []byte("not a proof")},
		{"signed by the candidate", signCommit(cand.key, tc.id, epoch, b.LastHeight(), h).bytes()},
		{"signed by the delegator itself", signCommit(del.key, tc.id, epoch, b.LastHeight(), h).bytes()},
		{"the leader's proof of another command", committed.proof},
		{"the leader's proof of another height", signCommit(ln.key, tc.id, epoch, b.LastHeight()+1, h).bytes()},
		{"the leader's proof for another channel", signCommit(ln.key, other, epoch, b.LastHeight(), h).bytes()},
		{"a proof of an epoch the chain has not reached", signCommit(cand.key, tc.id, epoch+5, b.LastHeight(), h).bytes()},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := dc.acceptRelayed(context.Background(), &peerpb.RelayedCommand{Command: uncommitted, Proof: tt.proof})
			if !errors.Is(err, errBadRelay) {
				t.Fatalf("accepted (%v)", err)
			}
			if got := dc.Status().Height; got != height {
				t.Fatalf("delegator at height %d, was %d", got, height)
			}
		})
	}

	// The delegator goes on with what commits.
	var acked []*protocol.Outcome
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := tc.channel(del).Submit(ctx, tc.tx(del.key, fmt.Sprintf("after%d;", i)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, out)
	}
	tc.checkConverged(acked, 20*time.Second)
}

// TestCommitProofDecode: a proof's encoding round-trips and every
// truncation, extension or flipped byte of it is refused.
func TestCommitProofDecode(t *testing.T) {
	k, _ := protocol.GenerateKey(nil)
	p := signCommit(k, protocol.ChannelID{7}, 3, 42, commandHash([]byte{logBatch, 1, 2}))
	raw := p.bytes()
	got, err := decodeCommitProof(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.signer() != k.Address() || got.LastHeight != 42 || got.Epoch != 3 || got.Command != p.Command {
		t.Fatalf("round trip: %+v", got)
	}
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 1
		if _, err := decodeCommitProof(bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	if _, err := decodeCommitProof(raw[:len(raw)-1]); err == nil {
		t.Fatal("truncated: accepted")
	}
	if _, err := decodeCommitProof(append(raw, 0)); err == nil {
		t.Fatal("extended: accepted")
	}
}

// TestCarryVoteRefuses: a candidate carries only a member's own, well
// signed vote on a proposal the chain has; a node that is no candidate
// carries none.
func TestCarryVoteRefuses(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	var del, cand, other *testNode
	for _, nd := range tc.nodes {
		switch c := tc.channel(nd); {
		case c.delegating() && del == nil:
			del = nd
		case c.delegating():
			other = nd
		case cand == nil:
			cand = nd
		}
	}
	// One proposal on chain, so that proposal 1 exists.
	if _, err := tc.chain.client(cand.key).CreateProposal(context.Background(), tc.id, protocol.ProposalSettlement,
		protocol.Marshal(&protocol.Settlement{From: 1, To: 1})); err != nil {
		t.Logf("create proposal: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if rec := tc.channel(cand).view.channel(); rec == nil || rec.LastProposal == 0 {
			return errors.New("no proposal seen")
		}
		return nil
	})
	vote := func(k *protocol.Key, pid uint64) *protocol.Vote {
		v := &protocol.Vote{Channel: tc.id, Proposal: pid, Option: protocol.VoteFor}
		v.Sign(k)
		return v
	}
	forged := vote(del.key, 1)
	forged.Option = protocol.VoteAgainst // signature no longer holds
	cases := []struct {
		name string
		to   *testNode
		v    *protocol.Vote
	}{
		{"another member's vote", cand, vote(other.key, 1)},
		{"a vote whose signature does not hold", cand, forged},
		{"a vote on a proposal the chain does not have", cand, vote(del.key, 999)},
		// Within the window a candidate waits for (a delegator may hear
		// of a proposal first): refused once the wait is over.
		{"a vote on the chain's next proposal, never made", cand, vote(del.key, tc.channel(cand).view.channel().LastProposal+1)},
		{"to a node that is no candidate", other, vote(del.key, 1)},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := del.node.peers.carryVote(ctx, tt.to.addr, tc.id, tt.v); err == nil {
				t.Fatal("carried")
			}
		})
	}
}

// TestRelayCatchUpFromSnapshot: a delegator restarted after its
// candidate's relay log moved past everything it had catches up from the
// candidate's snapshot, then follows the relay again, and ends with every
// acknowledged tx.
func TestRelayCatchUpFromSnapshot(t *testing.T) {
	old := relayLogEntries
	relayLogEntries = 8
	t.Cleanup(func() { relayLogEntries = old })
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	var del *testNode
	var others []*testNode
	for _, nd := range tc.nodes {
		if tc.channel(nd).delegating() && del == nil {
			del = nd
			continue
		}
		others = append(others, nd)
	}
	tc.stopNode(del)
	var acked []*protocol.Outcome
	for i := 0; i < 30; i++ {
		nd := others[i%len(others)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := tc.channel(nd).Submit(ctx, tc.tx(nd.key, fmt.Sprintf("away%d;", i)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, out)
	}
	tc.restartNode(del)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	out, err := tc.channel(del).Submit(ctx, tc.tx(del.key, "back;"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	tc.checkConverged(append(acked, out), 30*time.Second)
}

// TestRelayLogDropUnproven: commands the leader can no longer prove are
// dropped, the genesis for good, so that a delegator that needs them is
// told to catch up from a snapshot rather than wait.
func TestRelayLogDropUnproven(t *testing.T) {
	var r relayLog
	r.init()
	gen := []byte{logGenesis, 1}
	r.add(&relayEntry{cmd: gen, hash: commandHash(gen)})
	for h := uint64(1); h <= 5; h++ {
		cmd := []byte{logBatch, byte(h)}
		e := &relayEntry{first: h, last: h, cmd: cmd, hash: commandHash(cmd)}
		if h != 3 {
			e.proof = []byte("proof")
		}
		r.add(e)
	}
	if got := r.missingProof(); got != 0 {
		t.Fatalf("missing proof from %d, want 0", got)
	}
	r.dropUnproven()
	if _, held, _ := r.after(0); held {
		t.Fatal("the dropped genesis is still held")
	}
	if got := r.missingProof(); got != 3 {
		t.Fatalf("missing proof from %d, want 3", got)
	}
	r.dropUnproven() // the leader cannot prove 3 either
	if _, held, _ := r.after(3); held {
		t.Fatal("a dropped height is still held")
	}
	es, held, _ := r.after(4)
	if !held || len(es) != 2 || es[0].last != 4 {
		t.Fatalf("from 4: held %v, %d entries", held, len(es))
	}
	r.add(&relayEntry{cmd: gen, hash: commandHash(gen)})
	if _, held, _ := r.after(0); held {
		t.Fatal("the genesis came back")
	}
	if got := r.missingProof(); got != 6 {
		t.Fatalf("missing proof from %d, want 6", got)
	}
}

// TestRelayLogDropUnprovenBefore: the proofs a leader sends from its
// oldest command on make a candidate drop what they do not cover.
func TestRelayLogDropUnprovenBefore(t *testing.T) {
	var r relayLog
	r.init()
	gen := []byte{logGenesis, 1}
	r.add(&relayEntry{cmd: gen, hash: commandHash(gen)})
	for h := uint64(1); h <= 6; h++ {
		cmd := []byte{logBatch, byte(h)}
		e := &relayEntry{first: h, last: h, cmd: cmd, hash: commandHash(cmd)}
		if h == 2 {
			e.proof = []byte("proof")
		}
		r.add(e)
	}
	r.dropUnprovenBefore(5)
	if _, held, _ := r.after(0); held {
		t.Fatal("the unproven genesis is still held")
	}
	if o, _ := r.oldest(); o != 5 {
		t.Fatalf("oldest held %d, want 5", o)
	}
	if got := r.missingProof(); got != 5 {
		t.Fatalf("missing proof from %d, want 5", got)
	}
}

// gatedCode is a delegator's chain whose Code read, the last chain read of
// a genesis being loaded, waits for open (or its context) once entered.
type gatedCode struct {
	Chain
	entered chan struct{} // closed when the first Code read waits
	open    chan struct{} // closed by the test to let it go on
	once    sync.Once
}

func (g *gatedCode) Code(ctx context.Context, h protocol.Hash) ([]byte, error) {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.open:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return g.Chain.Code(ctx, h)
}

// TestRelayApplyOutlivesStream: a delegator's relay stream ends for
// reasons of its own (its source stops answering, a better path, a new
// layout) while the command it brought is being applied and waits for the
// chain (here the genesis, whose code the delegator reads from the chain).
// The apply is not cut short with the stream: the delegator applies that
// command and everything after from its next source. (When the stream's
// end cancelled the apply, the applier took it for shutdown and stopped
// applying for good: delegators that never applied anything.)
func TestRelayApplyOutlivesStream(t *testing.T) {
	const n = 7
	gate := &gatedCode{entered: make(chan struct{}), open: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-gate.open:
		default:
			close(gate.open)
		}
	})
	dropped := make(chan struct{}, 1)
	var del protocol.Address // the last member: a delegator (candidates go by join order)
	tc := &testCluster{t: t, chain: newTestChain(t), faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{}}
	creator, _ := protocol.GenerateKey(nil)
	id, err := tc.chain.client(creator).CreateChannel(context.Background(), settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"),
		InitialState: protocol.State{}, Config: contract.ChannelConfig{SettleEveryTxs: noSettlement}})
	if err != nil {
		t.Fatal(err)
	}
	tc.id = id
	tc.addMembers(n)
	t.Cleanup(tc.close)
	del = tc.nodes[n-1].key.Address()
	tc.startMembers(func(c *Config) {
		if c.Key.Address() != del {
			return
		}
		gate.Chain = c.Chain
		c.Chain = gate
		l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "delegator", Output: io.Discard})
		l.RegisterSink(hclog.NewSinkAdapter(&hclog.LoggerOptions{Output: sinkFunc(func(msg []byte) {
			// The watch ends the stream: its source does not answer, or
			// a better path leads elsewhere.
			if bytes.Contains(msg, []byte("relay source does not answer")) || bytes.Contains(msg, []byte("a better path to the leader")) {
				select {
				case dropped <- struct{}{}:
				default:
				}
			}
		}), Level: hclog.Info}))
		c.Logger = l
	}, 20*time.Second, nil)
	tc.waitCandidateVoters(30 * time.Second)
	dn := tc.nodes[n-1]
	dc := tc.channel(dn)
	select {
	case <-gate.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the delegator never loaded the genesis")
	}
	src := dc.relaySource()
	if src == "" {
		t.Fatal("applying a relayed genesis with no relay source")
	}
	// The source stops answering the delegator: its watch ends the stream
	// while the genesis waits for the chain.
	tc.faults.Disconnect(dn.addr, src)
	select {
	case <-dropped:
	case <-time.After(30 * time.Second):
		t.Fatal("the delegator kept a stream whose source does not answer")
	}
	close(gate.open)
	tc.faults.Heal()
	out := tc.submitVia(tc.leader(), 5, "after;")
	testutil.WaitFor(t, 30*time.Second, func() error {
		var h uint64
		dc.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				h = m.Height()
			}
		})
		if h < out.Height {
			return fmt.Errorf("the delegator applied up to %d, the leader %d", h, out.Height)
		}
		return nil
	})
}

// sinkFunc is an io.Writer that hands each log line to a func.
type sinkFunc func([]byte)

func (f sinkFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }
