package integration

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// misbehave is the scraft binary built with -tags scraft_misbehave
// (cluster/misbehave_tag.go, transport/misbehave_tag.go), built on first
// use: only the tests that run a misbehaving node pay for it.
var misbehave struct {
	dir  string // TestMain's folder
	once sync.Once
	bin  string
	err  error
}

func misbehaveBin(t testing.TB) string {
	t.Helper()
	misbehave.once.Do(func() {
		bin := filepath.Join(misbehave.dir, "scraft-misbehave")
		out, err := exec.Command("go", "build", "-tags", "scraft_misbehave", "-o", bin, "../cmd/scraft").CombinedOutput()
		if err != nil {
			misbehave.err = fmt.Errorf("build scraft -tags scraft_misbehave: %v: %s", err, out)
			return
		}
		misbehave.bin = bin
	})
	if misbehave.err != nil {
		t.Fatal(misbehave.err)
	}
	return misbehave.bin
}

// The stakes of the accountability channels: a punishment fines the liar
// punishFine of its punishStake.
const (
	punishStake = 100
	punishFine  = 60
	// tamperAt is the height the lying leader signs a wrong result for:
	// past the genesis and the joins of the nodes' members.
	tamperAt = 30
)

// punishSpec is a chat channel with stakes, never settled, whose first
// node (the one that bootstraps and leads) runs with SCRAFT_MISBEHAVE
// liar.
func punishSpec(liar string) clusterSpec {
	return clusterSpec{contract: "chat",
		config:    contract.ChannelConfig{SettleEveryTxs: 1 << 62, MinStake: punishStake, Fine: punishFine},
		misbehave: map[int]string{0: liar}}
}

// chainState reads the channel, and the balance of every node's member,
// from the chain.
func (pc *procCluster) chainState(cl *devchain.Client) (*settlement.ChannelInfo, map[protocol.Address]uint64) {
	pc.t.Helper()
	ctx := context.Background()
	info, err := cl.Channel(ctx, pc.id)
	if err != nil {
		pc.t.Fatal(err)
	}
	bal := map[protocol.Address]uint64{}
	for _, nd := range pc.nodes {
		acc, err := cl.Account(ctx, nd.key.Address())
		if err != nil {
			pc.t.Fatal(err)
		}
		bal[nd.key.Address()] = acc.Balance
	}
	return info, bal
}

// proposals returns the channel's proposals of kind.
func (pc *procCluster) proposals(cl *devchain.Client, kind protocol.ProposalKind) []*settlement.ProposalInfo {
	pc.t.Helper()
	ctx := context.Background()
	info, err := cl.Channel(ctx, pc.id)
	if err != nil {
		pc.t.Fatal(err)
	}
	var out []*settlement.ProposalInfo
	for pid := uint64(1); pid <= info.LastProposal; pid++ {
		p, err := cl.Proposal(ctx, pc.id, pid)
		if err != nil {
			pc.t.Fatal(err)
		}
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// sighting is when a condition was first seen, and the chain's head then.
type sighting struct {
	at    time.Time
	block uint64
}

// watchEvidence polls nodes until one of them has recorded evidence
// against a leader, and sends when (and the chain's head block then) on
// the channel it returns; it gives up when stop is closed.
func (pc *procCluster) watchEvidence(nodes []*procNode, cl *devchain.Client, stop <-chan struct{}) <-chan sighting {
	out := make(chan sighting, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for _, nd := range nodes {
				if st, err := nd.status(pc.id); err == nil && st.Evidence > 0 {
					s := sighting{at: time.Now()}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					if h, err := cl.Head(ctx); err == nil {
						s.block = h.Height
					}
					cancel()
					out <- s
					return
				}
			}
		}
	}()
	return out
}

// punishFigures are the timings of one punished lie.
type punishFigures struct {
	offence      sighting // a member first holds evidence
	executed     sighting // the chain shows the liar out
	caseCreated  uint64   // the punish case's block
	caseExecuted uint64   // the block that executed it
	firstWrite   time.Time
}

func (f punishFigures) log(t testing.TB) {
	t.Logf("offence seen at block %d; case filed at block %d, executed at block %d (%d blocks after the offence); "+
		"punishment seen %s after the offence; first write under the new leader acknowledged %s after the offence (%s after the punishment)",
		f.offence.block, f.caseCreated, f.caseExecuted, f.caseExecuted-f.offence.block,
		f.executed.at.Sub(f.offence.at).Round(time.Millisecond), f.firstWrite.Sub(f.offence.at).Round(time.Millisecond),
		f.firstWrite.Sub(f.executed.at).Round(time.Millisecond))
}

// runTamperingLeader runs a channel of n node processes whose first node
// leads and signs a wrong gas at tamperAt, under load through the honest
// nodes only, and checks what must follow: the liar is out of the channel
// and banned, the reporter leads on chain and in Raft, writes resume,
// every acknowledged tx is on every honest node with the digest
// acknowledged, and the honest members' stakes did not move; with three
// members or more the reporter got the fine, with two the channel is
// closed at the honest member's state and nobody is fined.
func runTamperingLeader(t testing.TB, n int) punishFigures {
	pc := newProcClusterSpec(t, n, 0, punishSpec(fmt.Sprintf("tamper:%d", tamperAt)))
	liar := pc.nodes[0]
	if l := pc.leader(); l != liar {
		t.Fatalf("node %v leads, not the first", l)
	}
	honest := pc.nodes[1:]
	cl := pc.dialChain(honest[0].key)
	ctx := context.Background()
	_, before := pc.chainState(cl)
	if st, err := liar.status(pc.id); err != nil || st.Height+2 >= tamperAt {
		t.Fatalf("liar's status %+v (%v): the channel is past the height it lies at", st, err)
	}

	stop := make(chan struct{})
	defer close(stop)
	offence := pc.watchEvidence(honest, cl, stop)
	var keys []*protocol.Key
	for _, nd := range honest {
		keys = append(keys, nd.key)
	}
	l := pc.startLoadVia(keys, 0, nil, honest)

	var f punishFigures
	var info *settlement.ChannelInfo
	testutil.WaitFor(t, 90*time.Second, func() error {
		var err error
		if info, err = cl.Channel(ctx, pc.id); err != nil {
			return err
		}
		if _, in := info.Member(liar.key.Address()); in {
			return fmt.Errorf("the liar is still a member (leader %s, epoch %d)", info.Leader, info.Epoch)
		}
		f.executed.at = time.Now()
		return nil
	})
	select {
	case f.offence = <-offence:
	case <-time.After(5 * time.Second):
		t.Fatal("the liar is out, but no node showed evidence")
	}
	cases := pc.proposals(cl, protocol.ProposalPunish)
	if len(cases) != 1 || cases[0].Status != contract.ProposalExecuted {
		t.Fatalf("punish cases: %+v", cases)
	}
	pcase := cases[0]
	f.caseCreated, f.caseExecuted, f.executed.block = pcase.CreatedHeight, pcase.ExecutedHeight, pcase.ExecutedHeight
	var pu protocol.Punish
	if err := protocol.Unmarshal(pcase.Data, &pu); err != nil || pu.Height != tamperAt || pu.Target != liar.key.Address() {
		t.Fatalf("case %+v (%v), want height %d against %s", pu, err, tamperAt, liar.key.Address())
	}
	reporter := pcase.Proposer
	var rep *procNode
	for _, nd := range honest {
		if nd.key.Address() == reporter {
			rep = nd
		}
	}
	if rep == nil {
		t.Fatalf("reporter %s is not an honest node", reporter)
	}
	// Banned: in a channel of two the member left may already have closed
	// it, which refuses every join.
	if _, err := pc.dialChain(liar.key).Join(ctx, pc.id, false); !errors.Is(err, contract.ErrBanned) &&
		!(n == 2 && errors.Is(err, contract.ErrChannelClosed)) {
		t.Errorf("the liar joins again: %v, want ErrBanned", err)
	} else {
		t.Logf("the liar joins again: %v", err)
	}

	if n == 2 {
		checkClosedAlone(t, pc, cl, l, rep, before, liar)
		return f
	}

	// The reporter leads, on chain and in Raft, and writes resume through
	// it.
	if info.Leader != reporter {
		t.Fatalf("chain leader %s, want the reporter %s", info.Leader, reporter)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if st, err := rep.status(pc.id); err != nil || !st.Leading {
			return fmt.Errorf("the reporter does not lead: %+v %v", st, err)
		}
		return nil
	})
	acked := l.count()
	testutil.Eventually(t, 60*time.Second, "writes under the new leader", func() bool { return l.count() >= acked+10 })
	acks, void := pc.splitVoid(l.end(), honest, f.executed.at)
	for _, a := range acks {
		if a.height > tamperAt && a.at.After(f.executed.at) && (f.firstWrite.IsZero() || a.at.Before(f.firstWrite)) {
			f.firstWrite = a.at
		}
	}
	if len(void) > 0 {
		// An honest node answers a forwarded call with its own outcome,
		// once it applied it (cluster.Channel.ownOutcome): it never
		// relays the liar's.
		t.Errorf("%d calls the liar ordered after its offence were acknowledged through honest nodes with its digests (heights %d..%d)",
			len(void), void[0].height, void[len(void)-1].height)
	}
	pc.checkAcked(acks, honest, 30*time.Second)
	checkDigestsAgree(t, pc, honest, 30*time.Second)
	for _, nd := range honest {
		if st, err := nd.status(pc.id); err != nil || st.Epoch != info.Epoch {
			t.Errorf("node %s: status %+v (%v), want epoch %d", nd.addr, st, err, info.Epoch)
		}
	}

	// The liar's node retired the channel: its Raft is shut down.
	testutil.WaitFor(t, 30*time.Second, func() error {
		if st, err := liar.status(pc.id); err != nil || st.RaftState != "Shutdown" {
			return fmt.Errorf("the liar's node still runs the channel: %+v %v", st, err)
		}
		return nil
	})

	// Money: the reporter got the fine, the other honest members kept
	// their balances and stakes, the liar got its stake back less the
	// fine.
	info, after := pc.chainState(cl)
	for _, nd := range honest {
		a := nd.key.Address()
		want := before[a]
		if a == reporter {
			want += punishFine
		}
		if after[a] != want {
			t.Errorf("member %s: balance %d, want %d", a, after[a], want)
		}
		if m, ok := info.Member(a); !ok || m.Locked != punishStake {
			t.Errorf("member %s: stake %+v", a, m)
		}
	}
	if got, want := after[liar.key.Address()], before[liar.key.Address()]+punishStake-punishFine; got != want {
		t.Errorf("liar: balance %d, want %d", got, want)
	}
	return f
}

// splitVoid separates from acks the calls the liar ordered after its
// offence and the honest nodes never applied: acknowledged before the
// punishment (seen at punished), above the offence's height, with a digest
// the honest nodes do not have. They are void (cluster/DESIGN.md
// "Punishment": their senders resubmit), so an honest node must never have
// acknowledged one: the callers fail the test when any is found. Every
// other ack must be on every honest node.
func (pc *procCluster) splitVoid(acks []acked, honest []*procNode, punished time.Time) (kept, void []acked) {
	pc.t.Helper()
	suspect := func(a acked) bool { return a.height > tamperAt && a.sent.Before(punished) }
	// The honest nodes have every height acknowledged after the
	// punishment; a suspect height may be past what they have applied.
	var top uint64
	for _, a := range acks {
		if !suspect(a) {
			top = max(top, a.height)
		}
	}
	testutil.WaitFor(pc.t, 30*time.Second, func() error {
		for _, nd := range honest {
			if st, err := nd.status(pc.id); err != nil || st.Height < top {
				return fmt.Errorf("node %s: %+v %v, want height %d", nd.addr, st, err, top)
			}
		}
		return nil
	})
	st, err := honest[0].status(pc.id)
	if err != nil {
		pc.t.Fatal(err)
	}
	slices.SortFunc(acks, func(a, b acked) int { return cmp.Compare(a.height, b.height) })
	for _, a := range acks {
		if suspect(a) {
			if a.height > st.Height {
				void = append(void, a)
				continue
			}
			d, err := honest[0].digest(pc.id, a.height)
			if err != nil {
				pc.t.Fatalf("node %s: height %d: %v", honest[0].addr, a.height, err)
			}
			if d != a.digest {
				void = append(void, a)
				continue
			}
		}
		kept = append(kept, a)
	}
	return kept, void
}

// checkClosedAlone checks the end of a two-member channel whose leader
// lied: closed, settled at the honest member's state, nobody fined.
func checkClosedAlone(t testing.TB, pc *procCluster, cl *devchain.Client, l *load, honest *procNode, before map[protocol.Address]uint64, liar *procNode) {
	t.Helper()
	ctx := context.Background()
	var info *settlement.ChannelInfo
	testutil.WaitFor(t, 60*time.Second, func() error {
		var err error
		if info, err = cl.Channel(ctx, pc.id); err != nil {
			return err
		}
		if !info.Closed {
			return fmt.Errorf("channel open, %d members", len(info.Members))
		}
		return nil
	})
	acks := l.end()
	if info.SettledHeight < tamperAt {
		t.Fatalf("settled at %d, the offence is at %d", info.SettledHeight, tamperAt)
	}
	// The settled state is the honest member's: the digest its node
	// acknowledged at that height, or, if no call was acknowledged there,
	// the one its node still serves.
	found := false
	for _, a := range acks {
		if a.height == info.SettledHeight {
			found = true
			if a.digest != info.SettledDigest {
				t.Fatalf("settled digest %s at %d, the honest node acknowledged %s", info.SettledDigest, a.height, a.digest)
			}
		}
	}
	if !found {
		d, err := honest.digest(pc.id, info.SettledHeight)
		if err != nil {
			t.Fatalf("no acknowledged call at the settled height %d, and the honest node's digest: %v", info.SettledHeight, err)
		}
		if d != info.SettledDigest {
			t.Fatalf("settled digest %s, the honest node's %s", info.SettledDigest, d)
		}
	}
	// Calls past the settled height are the liar's, ordered after its
	// offence: void, and no honest node acknowledges them (see splitVoid).
	void := 0
	for _, a := range acks {
		if a.height > info.SettledHeight {
			void++
		}
	}
	if void > 0 {
		t.Errorf("%d calls past the settled height %d were acknowledged through the honest node", void, info.SettledHeight)
	}
	// Nobody is fined: the liar got its whole stake back; the honest
	// member's stays locked until its node leaves the closed channel,
	// which gives it back whole.
	info, after := pc.chainState(cl)
	if got, want := after[liar.key.Address()], before[liar.key.Address()]+punishStake; got != want {
		t.Errorf("liar: balance %d, want %d (its stake back, no fine)", got, want)
	}
	// The channel and the balances are two reads: the honest node may
	// leave the closed channel (its stake back) between them.
	a := honest.key.Address()
	m, in := info.Member(a)
	switch {
	case after[a] == before[a]+punishStake: // its stake back, whole
	case after[a] == before[a] && in && m.Locked == punishStake: // still locked, whole
	default:
		t.Errorf("honest member: member %v, locked %d, balance %d; want %d locked and balance %d, or balance %d",
			in, m.Locked, after[a], punishStake, before[a], before[a]+punishStake)
	}
	if _, in := info.Member(liar.key.Address()); in {
		t.Error("the liar is still a member")
	}
	t.Logf("closed at settled height %d after the offence at %d; %d calls acknowledged, %d of them void (ordered by the liar after its offence)",
		info.SettledHeight, tamperAt, len(acks), void)
}

// checkDigestsAgree waits until nodes have the same digest at the lowest
// height they all applied.
func checkDigestsAgree(t testing.TB, pc *procCluster, nodes []*procNode, timeout time.Duration) {
	t.Helper()
	saved := pc.nodes
	pc.nodes = nodes
	defer func() { pc.nodes = saved }()
	pc.checkDigestsAgree(timeout)
}

// TestAccountabilityTamperingLeader: the leader of a 4-member channel,
// a real node process, signs a wrong result; an honest member reports it,
// the chain punishes it, and the channel goes on under the reporter.
func TestAccountabilityTamperingLeader(t *testing.T) {
	runTamperingLeader(t, 4).log(t)
}

// TestAccountabilityTwoMembers: the lying leader of a 2-member channel is
// forced out and banned with no fine, and the honest member closes the
// channel at its own state.
func TestAccountabilityTwoMembers(t *testing.T) {
	runTamperingLeader(t, 2)
}

// censorSpec is a chat channel with stakes, never settled, whose
// complaints must be answered within censorWindow.
func censorSpec() clusterSpec {
	return clusterSpec{contract: "chat", config: contract.ChannelConfig{SettleEveryTxs: 1 << 62,
		MinStake: punishStake, Fine: punishFine, CensorshipWindow: censorWindow}}
}

// censorWindow is the censorship complaints' answer window (chain time,
// which is the chain process's clock).
const censorWindow = 3 * time.Second

// saveKey writes k to a key file for the CLI.
func saveKey(t testing.TB, k *protocol.Key) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "user.key")
	if err := protocol.SaveKey(f, k); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkStakesKept checks that no node member's balance moved since
// before and that each still has its stake locked.
func (pc *procCluster) checkStakesKept(cl *devchain.Client, before map[protocol.Address]uint64) {
	pc.t.Helper()
	info, after := pc.chainState(cl)
	for _, nd := range pc.nodes {
		a := nd.key.Address()
		if after[a] != before[a] {
			pc.t.Errorf("member %s: balance %d, was %d", a, after[a], before[a])
		}
		if m, ok := info.Member(a); !ok || m.Locked != punishStake {
			pc.t.Errorf("member %s: stake %+v", a, m)
		}
	}
}

// TestAccountabilityCensoringLeader: the leader never orders the calls of
// one member. That member's `scraft call --complain-after`, sent through
// an honest node, files a complaint; nobody can answer it (no node's log
// holds the call), so past the deadline the channel closes. Nobody is
// fined.
func TestAccountabilityCensoringLeader(t *testing.T) {
	keys := []*protocol.Key{mustKey(t), mustKey(t), mustKey(t), mustKey(t)}
	victim := keys[3] // the channel's only user
	spec := censorSpec()
	spec.keys = keys
	spec.misbehave = map[int]string{0: "censor:" + victim.Address().String()}
	pc := newProcClusterSpec(t, 3, 1, spec)
	if l := pc.leader(); l != pc.nodes[0] {
		t.Fatalf("node %v leads, not the first", l)
	}
	cl := pc.dialChain(pc.nodes[1].key)
	_, before := pc.chainState(cl)

	call := exec.Command(scraftBin, "call", "--node", pc.nodes[1].addr, "--key", saveKey(t, victim),
		"--channel", pc.id.String(), "--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(),
		"--complain-after", "2s", "--timeout", "30s", "--function", "chat::join", "--args", `{"nick":"censored"}`)
	var out strings.Builder
	call.Stdout, call.Stderr = &out, &out
	if err := call.Start(); err != nil {
		t.Fatal(err)
	}
	done, exited := make(chan error, 1), make(chan struct{})
	go func() {
		done <- call.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		call.Process.Kill()
		<-exited
	})
	var complaint *settlement.ProposalInfo
	testutil.WaitFor(t, 30*time.Second, func() error {
		ps := pc.proposals(cl, protocol.ProposalCensorship)
		if len(ps) == 0 {
			return errors.New("no complaint yet")
		}
		complaint = ps[0]
		return nil
	})
	if complaint.Proposer != victim.Address() {
		t.Fatalf("complaint filed by %s, not the censored member", complaint.Proposer)
	}
	var cs protocol.Censorship
	if err := protocol.Unmarshal(complaint.Data, &cs); err != nil || cs.Accused != pc.nodes[0].key.Address() {
		t.Fatalf("complaint %+v (%v): want the leader %s accused", cs, err, pc.nodes[0].key.Address())
	}
	filed := time.Now()
	var info *settlement.ChannelInfo
	testutil.WaitFor(t, 30*time.Second, func() error {
		var err error
		if info, err = cl.Channel(context.Background(), pc.id); err != nil {
			return err
		}
		if !info.Closed {
			return errors.New("channel open")
		}
		return nil
	})
	p, err := cl.Proposal(context.Background(), pc.id, complaint.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != contract.ProposalExecuted {
		t.Fatalf("complaint is %s, want executed", p.Status)
	}
	t.Logf("complaint %d filed at block %d, deadline in %s; channel closed %s after it was seen (block %d)",
		p.ID, p.CreatedHeight, time.Duration(p.DeadlineMs-p.CreatedAtMs)*time.Millisecond,
		time.Since(filed).Round(time.Millisecond), p.ExecutedHeight)
	// The call never committed: the CLI gives up with an error.
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("scraft call succeeded: %s", out.String())
		}
		t.Logf("scraft call: %v: %s", err, strings.TrimSpace(out.String()))
	case <-time.After(40 * time.Second):
		t.Fatal("scraft call still waits after the channel closed")
	}
	// The nodes leave the closed channel, and every member gets its whole
	// stake back: the leader was not fined.
	testutil.WaitFor(t, 30*time.Second, func() error {
		info, err := cl.Channel(context.Background(), pc.id)
		if err != nil {
			return err
		}
		for _, nd := range pc.nodes {
			if _, in := info.Member(nd.key.Address()); in {
				return fmt.Errorf("node member %s has not left the closed channel", nd.key.Address())
			}
		}
		return nil
	})
	_, after := pc.chainState(cl)
	for _, nd := range pc.nodes {
		a := nd.key.Address()
		if got, want := after[a], before[a]+punishStake; got != want {
			t.Errorf("member %s: balance %d, want %d (its stake back, no fine)", a, got, want)
		}
	}
}

// TestAccountabilityComplaintAnswered: `scraft complain` about a call the
// honest leader ordered is answered with the batch that holds it, and
// nothing happens to the leader: the channel stays open under it, the
// complaint cannot be executed past its deadline, and no stake moves.
func TestAccountabilityComplaintAnswered(t *testing.T) {
	pc := newProcClusterSpec(t, 3, 1, censorSpec())
	leader := pc.waitLeader(30 * time.Second)
	u := pc.users[0]
	cl := pc.dialChain(u)
	ctx := context.Background()
	info0, before := pc.chainState(cl)

	args, err := pc.abi.EncodeArgs("join", []byte(`{"nick":"complainer"}`))
	if err != nil {
		t.Fatal(err)
	}
	tx := protocol.SignTx(u, protocol.Tx{Channel: pc.id, Nonce: 1, Function: "chat::join", Args: args,
		TimestampMs: uint64(time.Now().UnixMilli())})
	ccfg := client.DefaultConfig()
	ccfg.NodeKeys = pc.nodeAddrs()
	ucl, err := ccfg.Dial(ctx, u, pc.nodes[1].addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ucl.Close()
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	res, err := ucl.CallTx(cctx, tx)
	cancel()
	if err != nil {
		t.Fatalf("call: %v", err)
	}

	out, err := exec.Command(scraftBin, "complain", "--key", saveKey(t, u), "--channel", pc.id.String(),
		"--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(), "--tx", hex.EncodeToString(tx.Bytes())).CombinedOutput()
	if err != nil {
		t.Fatalf("scraft complain: %v: %s", err, out)
	}
	var v struct {
		Proposal uint64           `json:"proposal"`
		Accused  protocol.Address `json:"accused"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("scraft complain printed %q: %v", out, err)
	}
	if v.Accused != leader.key.Address() {
		t.Fatalf("accused %s, the leader is %s", v.Accused, leader.key.Address())
	}
	var p *settlement.ProposalInfo
	filed := time.Now()
	testutil.WaitFor(t, 30*time.Second, func() error {
		if p, err = cl.Proposal(ctx, pc.id, v.Proposal); err != nil {
			return err
		}
		if p.Status != contract.ProposalRefuted {
			return fmt.Errorf("complaint is %s", p.Status)
		}
		return nil
	})
	t.Logf("complaint %d about height %d filed at block %d, answered within %s", p.ID, res.Height, p.CreatedHeight, time.Since(filed).Round(time.Millisecond))
	// Past the deadline it cannot be executed.
	testutil.WaitFor(t, 2*censorWindow, func() error {
		h, err := cl.Head(ctx)
		if err != nil {
			return err
		}
		if h.TimeMs <= p.DeadlineMs {
			return fmt.Errorf("chain time %d, deadline %d", h.TimeMs, p.DeadlineMs)
		}
		return nil
	})
	if err := cl.ExecuteProposal(ctx, pc.id, p.ID); !errors.Is(err, contract.ErrProposalClosed) {
		t.Fatalf("executing the answered complaint: %v, want ErrProposalClosed", err)
	}
	info, _ := pc.chainState(cl)
	if info.Closed || info.Leader != leader.key.Address() || info.Epoch != info0.Epoch {
		t.Fatalf("after the answer: closed %v, leader %s epoch %d (was %s, %d)", info.Closed, info.Leader, info.Epoch, info0.Leader, info0.Epoch)
	}
	if st, err := leader.status(pc.id); err != nil || !st.Leading {
		t.Fatalf("the leader's node: %+v %v", st, err)
	}
	pc.checkStakesKept(cl, before)
}

// TestAccountabilityFalseReport: a member whose own execution is wrong
// (falsereport: it computes one more gas unit at one height) accuses the
// honest leader. The others judge by their own execution and vote
// against; the case fails, the leader keeps leading with its stake, the
// others go on, and the false reporter may not report again for a while
// (ErrReportCooldown). Once the chain settles past its wrong result, the
// false reporter resyncs from a member's snapshot by itself, applies the
// writes that follow and agrees with the others.
func TestAccountabilityFalseReport(t *testing.T) {
	spec := punishSpec("")
	spec.config.SettleEveryTxs = 10
	spec.misbehave = map[int]string{3: fmt.Sprintf("falsereport:%d", tamperAt)}
	pc := newProcClusterSpec(t, 4, 0, spec)
	leader, accuser := pc.nodes[0], pc.nodes[3]
	if l := pc.leader(); l != leader {
		t.Fatalf("node %v leads, not the first", l)
	}
	honest := pc.nodes[:3]
	cl := pc.dialChain(accuser.key)
	ctx := context.Background()
	info0, before := pc.chainState(cl)
	if st, err := leader.status(pc.id); err != nil || st.Height+2 >= tamperAt {
		t.Fatalf("leader's status %+v (%v): the channel is past the height of the wrong execution", st, err)
	}
	var keys []*protocol.Key
	for _, nd := range honest {
		keys = append(keys, nd.key)
	}
	l := pc.startLoadVia(keys, 0, nil, honest)

	var p *settlement.ProposalInfo
	testutil.WaitFor(t, 90*time.Second, func() error {
		cases := pc.proposals(cl, protocol.ProposalPunish)
		if len(cases) != 1 {
			return fmt.Errorf("%d punish cases", len(cases))
		}
		p = cases[0]
		if p.Proposer != accuser.key.Address() {
			t.Fatalf("case filed by %s, not the member with the wrong execution", p.Proposer)
		}
		if p.Status != contract.ProposalFailed {
			return fmt.Errorf("case is %s (%d for, %d against)", p.Status, p.For, p.Against)
		}
		return nil
	})
	if p.For != 1 || p.Against != 2 {
		t.Fatalf("case votes: %d for, %d against; want the accuser's alone for", p.For, p.Against)
	}
	var pu protocol.Punish
	if err := protocol.Unmarshal(p.Data, &pu); err != nil || pu.Height != tamperAt || pu.Target != leader.key.Address() {
		t.Fatalf("case %+v (%v)", pu, err)
	}
	t.Logf("false case %d filed at block %d, failed with %d against", p.ID, p.CreatedHeight, p.Against)
	// The cost on chain: no second report for a while.
	pu.Height--
	if _, err := cl.CreateProposal(ctx, pc.id, protocol.ProposalPunish, protocol.Marshal(&pu)); !errors.Is(err, contract.ErrReportCooldown) {
		t.Fatalf("second report: %v, want ErrReportCooldown", err)
	}
	// The others go on under the same leader, the chain settles past the
	// wrong result, and the accuser resyncs with no operator's help.
	testutil.WaitFor(t, 60*time.Second, func() error {
		st, err := accuser.status(pc.id)
		if err != nil || st.Diverged || st.Holding || st.Height <= tamperAt {
			return fmt.Errorf("accuser: %+v %v, want resynced past height %d", st, err, tamperAt)
		}
		return nil
	})
	acked := l.count()
	testutil.Eventually(t, 30*time.Second, "writes after the resync", func() bool { return l.count() >= acked+10 })
	// Settlement prunes the acknowledged heights: every member reaches
	// the last one, and they agree there.
	var top uint64
	for _, a := range l.end() {
		top = max(top, a.height)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		for _, nd := range pc.nodes {
			if st, err := nd.status(pc.id); err != nil || st.Height < top {
				return fmt.Errorf("node %s: %+v %v, want height %d", nd.addr, st, err, top)
			}
		}
		return nil
	})
	checkDigestsAgree(t, pc, pc.nodes, 30*time.Second)
	if n := len(pc.proposals(cl, protocol.ProposalPunish)); n != 1 {
		t.Errorf("%d punish cases, want the one", n)
	}
	info, _ := pc.chainState(cl)
	if info.Leader != leader.key.Address() || info.Epoch != info0.Epoch || len(info.Members) != 4 {
		t.Fatalf("leader %s epoch %d, %d members; was %s epoch %d", info.Leader, info.Epoch, len(info.Members), info0.Leader, info0.Epoch)
	}
	pc.checkStakesKept(cl, before)
}

// TestAccountabilityElection: the leader's node is cut off from the other
// members' (isolate: Raft and the peer API, both ways) but keeps its
// chain link, so it keeps heartbeating and stays valid on chain. The
// others refuse to attest (noattest, as members with a long AttestAfter):
// no fast claim can pass, and only the election proposal moves the lead.
// It passes, a member among the others leads, and writes go on through
// it; once the old leader's node is reachable again it follows.
func TestAccountabilityElection(t *testing.T) {
	spec := clusterSpec{contract: "chat", config: contract.ChannelConfig{SettleEveryTxs: 1 << 62},
		misbehave: map[int]string{0: "isolate", 1: "noattest", 2: "noattest"}}
	pc := newProcClusterSpec(t, 3, 0, spec)
	old := pc.nodes[0]
	if l := pc.leader(); l != old {
		t.Fatalf("node %v leads, not the first", l)
	}
	others := pc.nodes[1:]
	cl := pc.dialChain(others[0].key)
	ctx := context.Background()
	info0, _ := pc.chainState(cl)
	keys := []*protocol.Key{others[0].key, others[1].key}
	l := pc.startLoadVia(keys, 0, nil, others)
	testutil.Eventually(t, 30*time.Second, "writes before the cut", func() bool { return l.count() >= 10 })

	old.p.signal(syscall.SIGUSR1)
	cut := time.Now()
	var nl *procNode
	var info *settlement.ChannelInfo
	testutil.WaitFor(t, 60*time.Second, func() error {
		var err error
		if info, err = cl.Channel(ctx, pc.id); err != nil {
			return err
		}
		if info.Epoch == info0.Epoch {
			return fmt.Errorf("still epoch %d", info.Epoch)
		}
		for _, nd := range others {
			if info.Leader == nd.key.Address() {
				if st, err := nd.status(pc.id); err == nil && st.Leading {
					nl = nd
					return nil
				}
			}
		}
		return fmt.Errorf("chain leader %s (epoch %d) is not leading on another node", info.Leader, info.Epoch)
	})
	if m, ok := info.Member(old.key.Address()); !ok || !m.Valid {
		t.Fatalf("the old leader is not a valid member on chain (%+v): the election was not needed", m)
	}
	elections := pc.proposals(cl, protocol.ProposalElection)
	if len(elections) != 1 || elections[0].Status != contract.ProposalExecuted {
		t.Fatalf("elections: %+v", elections)
	}
	el := elections[0]
	var e protocol.Election
	if err := protocol.Unmarshal(el.Data, &e); err != nil || e.Candidate != nl.key.Address() || e.Epoch != info0.Epoch {
		t.Fatalf("election %+v (%v), the new leader is %s", e, err, nl.key.Address())
	}
	t.Logf("election %d filed at block %d with %d for, executed at block %d; new leader leading %s after the cut",
		el.ID, el.CreatedHeight, el.For, el.ExecutedHeight, time.Since(cut).Round(time.Millisecond))
	acked := l.count()
	testutil.Eventually(t, 30*time.Second, "writes under the new leader", func() bool { return l.count() >= acked+10 })

	// Reachable again, the old leader's node follows the new leader.
	old.p.signal(syscall.SIGUSR2)
	acks := l.end()
	pc.checkAcked(acks, pc.nodes, 60*time.Second)
	pc.checkDigestsAgree(30 * time.Second)
	if st, err := old.status(pc.id); err != nil || st.Leading || st.Epoch != info.Epoch {
		t.Fatalf("old leader's node: %+v %v, want a follower in epoch %d", st, err, info.Epoch)
	}
}
