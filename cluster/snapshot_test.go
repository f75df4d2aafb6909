package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// batchedMachine returns a machine of one member that applied batches of
// the given sizes (chat calls).
func batchedMachine(t *testing.T, sizes ...int) *fsm.Machine {
	t.Helper()
	k, _ := protocol.GenerateKey(nil)
	var id protocol.ChannelID
	id[0] = 7
	cfg := fsm.DefaultConfig()
	cfg.Channel, cfg.Contract = id, "chat"
	cfg.Genesis = fsm.Genesis{State: protocol.State{}, Members: []fsm.Member{{Address: k.Address(), PublicKey: k.Public(), JoinSeq: 1}}, HighestJoinSeq: 1}
	m, err := fsm.New(cfg, counterExec{})
	if err != nil {
		t.Fatal(err)
	}
	var nonce uint64
	for i, n := range sizes {
		var entries []protocol.Entry
		for range n {
			nonce++
			tx := protocol.SignTx(k, protocol.Tx{Channel: id, Nonce: nonce, Function: "chat::send", Args: []byte(fmt.Sprintf("m%d;", nonce))})
			entries = append(entries, protocol.Entry{Kind: protocol.EntryCall, Call: tx})
		}
		b, _, err := m.Propose(entries, 1, k, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Apply(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestSettlementEndsAtBatchEnd: the leader's settlement ends at a batch
// end whatever the cap, and a member votes against one that does not.
func TestSettlementEndsAtBatchEnd(t *testing.T) {
	// Batches end at heights 3, 4, 9, 10.
	m := batchedMachine(t, 3, 1, 5, 1)
	tests := []struct {
		name            string
		from, to, limit uint64
		want            uint64
	}{
		{"whole", 1, 10, 100, 10},
		{"capped inside a batch", 1, 10, 7, 4},
		{"capped at an end", 1, 10, 4, 4},
		{"first batch longer than the cap", 1, 10, 2, 3},
		{"to inside a batch", 5, 8, 100, 4 + 5}, // 5..8 is inside 5..9: the batch goes whole
		{"from mid range", 4, 10, 6, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := buildSettlement(m, tc.from, tc.to, tc.limit, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if s.From != tc.from || s.To != tc.want {
				t.Fatalf("settlement %d..%d, want %d..%d", s.From, s.To, tc.from, tc.want)
			}
			if m.InsideBatch(s.To) {
				t.Fatalf("settlement ends inside a batch at %d", s.To)
			}
		})
	}
	for h, inside := range map[uint64]bool{1: true, 3: false, 4: false, 5: true, 8: true, 9: false, 10: false} {
		if got := m.InsideBatch(h); got != inside {
			t.Errorf("InsideBatch(%d) = %v, want %v", h, got, inside)
		}
	}
}

// raftSnapshotOf returns the Raft snapshot nd's channel would send now.
func (tc *testCluster) raftSnapshotOf(nd *testNode) []byte {
	tc.t.Helper()
	fs, err := tc.channel(nd).fsm.Snapshot()
	if err != nil {
		tc.t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := fs.(*fsmSnapshot).writeTo(&buf); err != nil {
		tc.t.Fatal(err)
	}
	return buf.Bytes()
}

// forge replaces the first old in a Raft snapshot with new (of the same
// length) and fixes the fsm snapshot's checksum, as a liar would.
func forge(t *testing.T, raw []byte, old, new string) []byte {
	t.Helper()
	i := bytes.Index(raw, []byte(old))
	if i < 0 || len(old) != len(new) {
		t.Fatalf("%x not in the snapshot", old)
	}
	out := bytes.Clone(raw)
	copy(out[i:], new)
	n := int(out[1])<<24 | int(out[2])<<16 | int(out[3])<<8 | int(out[4])
	body := out[5+n : len(out)-sha256.Size]
	sum := sha256.Sum256(body)
	copy(out[len(out)-sha256.Size:], sum[:])
	return out
}

// waitSame waits until nd has applied the leader's height and both agree
// on its digest.
func (tc *testCluster) waitSame(nd, leader *testNode) {
	tc.t.Helper()
	testutil.WaitFor(tc.t, 30*time.Second, func() error {
		a, b := tc.channel(nd).Status(), tc.channel(leader).Status()
		if a.Height != b.Height || a.Digest != b.Digest {
			return fmt.Errorf("height %d digest %s, the leader's %d %s", a.Height, a.Digest, b.Height, b.Digest)
		}
		return nil
	})
}

// snapshotEvidence returns the snapshot evidence nd recorded.
func (tc *testCluster) snapshotEvidence(nd *testNode) []*fsm.Evidence {
	evs, _ := tc.channel(nd).fsm.refusedGeneses()
	var out []*fsm.Evidence
	for _, ev := range evs {
		if ev.Reason == fsm.ReasonBadSnapshot {
			out = append(out, ev)
		}
	}
	return out
}

// TestSnapshotForgedRefused: a snapshot whose settled state was made up,
// or whose batches were tampered with, is refused with evidence; the
// member fetches the state from an honest member, checks it the same way,
// and goes on applying.
func TestSnapshotForgedRefused(t *testing.T) {
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: 10}, nil)
	tc.submitN(12, "a")
	info := tc.waitSettled(10)
	// A tail after the settled height: fewer heights than the policy.
	tc.submitN(3, "b")
	leader := tc.waitLeader(10 * time.Second)
	follower := tc.others(leader)[0]
	honest := tc.raftSnapshotOf(leader)
	// The follower's member record in the settled state: address, key,
	// join seq, leave height (0).
	var mem fsm.Member
	tc.channel(leader).fsm.machine(func(m *fsm.Machine) { mem, _ = m.Member(follower.key.Address()) })
	rec := protocol.NewEncoder(96)
	rec.Fixed(mem.Address[:])
	rec.Fixed(mem.PublicKey)
	rec.U64(mem.JoinSeq)
	rec.U64(0)
	leaving := protocol.NewEncoder(96)
	leaving.Fixed(rec.Out()[:len(rec.Out())-8])
	leaving.U64(1)
	tests := []struct {
		name, old, new string
		detail         string
	}{
		// a0; is in the settled state (the first member's messages).
		{"made-up resource", "a0;", "a9;", "state hash of its base"},
		// A member that never asked to leave, made to have asked.
		{"made-up member", string(rec.Out()), string(leaving.Out()), "state hash of its base"},
		// b1; is only in a batch after the settled height.
		{"tampered batch", "b1;", "bX;", "bad leader signature"},
	}
	for i, tcase := range tests {
		t.Run(tcase.name, func(t *testing.T) {
			// The test restores outside Raft, so Raft will not replay
			// what the follower had applied: the member it fetches from
			// must not be behind it.
			for _, nd := range tc.others(leader) {
				tc.waitSame(nd, leader)
			}
			forged := forge(t, honest, tcase.old, tcase.new)
			c := tc.channel(follower)
			if err := c.fsm.Restore(io.NopCloser(bytes.NewReader(forged))); err != nil {
				t.Fatalf("restore of a forged snapshot did not fall back to a fetched one: %v", err)
			}
			evs := tc.snapshotEvidence(follower)
			if len(evs) != i+1 {
				t.Fatalf("%d pieces of snapshot evidence, want %d", len(evs), i+1)
			}
			if !strings.Contains(evs[i].Detail, tcase.detail) {
				t.Fatalf("evidence %q", evs[i].Detail)
			}
			t.Logf("refused: %s", evs[i].Detail)
			c.fsm.machine(func(m *fsm.Machine) {
				if m.SettledHeight() < info.SettledHeight {
					t.Errorf("restored settled height %d, the chain's %d", m.SettledHeight(), info.SettledHeight)
				}
			})
			tc.waitSame(follower, leader)
			// It goes on applying.
			tc.submitVia(follower, 2, fmt.Sprintf("c%d-", i))
			tc.waitSame(follower, leader)
		})
	}
}

// TestSnapshotInstallAfterSettlement: a member far behind, after the
// others compacted their logs past the chain's settled height, installs
// the leader's snapshot (the settled state and the batches since, checked
// against the chain) and agrees with the others.
func TestSnapshotInstallAfterSettlement(t *testing.T) {
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: 20}, func(c *Config) {
		c.SnapshotThreshold = 32
		c.SnapshotInterval = 50 * time.Millisecond
		c.TrailingLogs = 8
	})
	leader := tc.waitLeader(10 * time.Second)
	off := tc.others(leader)[0]
	tc.stopNode(off)
	tc.submitVia(leader, 90, "s")
	info := tc.waitSettled(40)
	tc.restartNode(off)
	tc.waitSame(off, leader)
	c := tc.channel(off)
	c.fsm.machine(func(m *fsm.Machine) {
		if m.SettledHeight() < info.SettledHeight {
			t.Errorf("settled height %d after the install, the chain's was %d", m.SettledHeight(), info.SettledHeight)
		}
	})
	if evs := tc.snapshotEvidence(off); len(evs) > 0 {
		t.Fatalf("honest snapshot refused: %s", evs[0].Detail)
	}
	tc.submitVia(off, 3, "t")
	tc.waitSame(off, leader)
}

// TestSnapshotPeerMembersOnly: the peer API's Snapshot answers members
// only, and a member's request below the callee's height.
func TestSnapshotPeerMembersOnly(t *testing.T) {
	tc := newTestCluster(t, 2, nil)
	tc.submitN(3, "p")
	k, _ := protocol.GenerateKey(nil)
	nd := &testNode{key: k, dir: t.TempDir()}
	tc.startNode(nd, nil)
	defer tc.stopNode(nd)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := nd.node.peers.snapshot(ctx, tc.nodes[0].addr, tc.id, 0); err == nil {
		t.Fatal("a non-member got the channel's snapshot")
	}
	data, err := tc.nodes[1].node.peers.snapshot(ctx, tc.nodes[0].addr, tc.id, 1)
	if err != nil {
		t.Fatalf("a member's request: %v", err)
	}
	rs, err := readRaftSnapshot(bytes.NewReader(data))
	if err != nil || rs.g == nil {
		t.Fatalf("fetched snapshot: %v", err)
	}
	if _, err := tc.nodes[1].node.peers.snapshot(ctx, tc.nodes[0].addr, tc.id, 1<<40); err == nil {
		t.Fatal("a snapshot below the height asked for")
	}
}

// TestSnapshotForgedByLeaderInstall: a leader whose stored snapshot was
// made up sends it to a member far behind (Raft's InstallSnapshot); the
// member refuses it with evidence, fetches the state from the other
// member, and follows the log from there.
func TestSnapshotForgedByLeaderInstall(t *testing.T) {
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: 10}, func(c *Config) {
		c.SnapshotThreshold = 1 << 20 // only the snapshot the test asks for
		c.SnapshotInterval = time.Hour
		c.TrailingLogs = 4
	})
	leader := tc.waitLeader(10 * time.Second)
	off := tc.others(leader)[0]
	tc.stopNode(off)
	tc.submitVia(leader, 12, "a")
	tc.waitSettled(10)
	tc.submitVia(leader, 3, "b")
	lc := tc.channel(leader)
	if err := lc.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	// Make up the stored snapshot, with its checksums fixed.
	snaps, err := filepath.Glob(filepath.Join(lc.dir, "snapshots", "*", "state.bin"))
	if err != nil || len(snaps) == 0 {
		t.Fatalf("no stored snapshot: %v", err)
	}
	slices.Sort(snaps)
	state := snaps[len(snaps)-1]
	raw, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	forged := forge(t, raw, "a0;", "a9;")
	if err := os.WriteFile(state, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(filepath.Dir(state), "meta.json")
	mb, err := os.ReadFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	if err := json.Unmarshal(mb, &meta); err != nil {
		t.Fatal(err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(forged)
	meta["CRC"] = h.Sum(nil)
	if mb, err = json.Marshal(meta); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(metaPath, mb, 0o600); err != nil {
		t.Fatal(err)
	}

	tc.restartNode(off)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if len(tc.snapshotEvidence(off)) == 0 {
			return fmt.Errorf("no snapshot evidence yet")
		}
		return nil
	})
	if ev := tc.snapshotEvidence(off)[0]; ev.Leader != leader.key.Address() || !strings.Contains(ev.Detail, "state hash of its base") {
		t.Fatalf("evidence against %s: %s", ev.Leader, ev.Detail)
	}
	tc.waitSame(off, leader)
	tc.submitVia(off, 3, "c")
	tc.waitSame(off, leader)
}

// TestSnapshotOwnRestoredAfterSettlement: a node restarts on its own
// snapshot after the chain settled past it while the node was down. The
// chain can no longer vouch for that snapshot's base, but the node wrote
// it (it is on its trust list): it restores it, re-executing its batches,
// and catches up.
func TestSnapshotOwnRestoredAfterSettlement(t *testing.T) {
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: 10}, func(c *Config) {
		c.SnapshotThreshold = 16
		c.SnapshotInterval = 50 * time.Millisecond
		c.TrailingLogs = 4
	})
	leader := tc.waitLeader(10 * time.Second)
	off := tc.others(leader)[0]
	tc.submitVia(leader, 40, "a")
	tc.waitSame(off, leader)
	dir := tc.channel(off).dir
	var height uint64
	testutil.WaitFor(t, 30*time.Second, func() error {
		snaps, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
		if len(snaps) == 0 {
			return fmt.Errorf("no snapshot of its own yet")
		}
		height = tc.channel(off).Status().Height
		return nil
	})
	tc.stopNode(off)
	tc.submitVia(leader, 40, "b")
	if info := tc.waitSettled(height + 20); info.SettledHeight <= height {
		t.Fatalf("settled %d", info.SettledHeight)
	}
	tc.restartNode(off)
	tc.waitSame(off, leader)
	if evs := tc.snapshotEvidence(off); len(evs) > 0 {
		t.Fatalf("own snapshot refused: %s", evs[0].Detail)
	}
}

// TestSnapshotWithoutGenesisRefused: a snapshot that carries no genesis
// would wipe a member's machine; once the member applied the genesis it
// refuses one, with evidence, and keeps (or fetches) the channel's state.
func TestSnapshotWithoutGenesisRefused(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.submitN(3, "g")
	leader := tc.waitLeader(10 * time.Second)
	follower := tc.others(leader)[0]
	// Restored outside Raft: the member it fetches from must not be
	// behind it, or Raft will not replay the difference.
	for _, nd := range tc.others(leader) {
		tc.waitSame(nd, leader)
	}
	c := tc.channel(follower)
	if err := c.fsm.Restore(io.NopCloser(bytes.NewReader([]byte{snapshotVersion, 0, 0, 0, 0}))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if evs := tc.snapshotEvidence(follower); len(evs) != 1 || !strings.Contains(evs[0].Detail, "no genesis") {
		t.Fatalf("evidence %v", evs)
	}
	tc.waitSame(follower, leader)
	tc.submitVia(follower, 2, "h")
	tc.waitSame(follower, leader)
}

// TestTrustList: the checksums of a node's own snapshots survive a
// restart, the latest maxTrusted of them; the writer keeps the last 32
// bytes written, however the writes are cut.
func TestTrustList(t *testing.T) {
	dir := t.TempDir()
	tl := loadTrustList(dir)
	var sums []protocol.Hash
	for i := range maxTrusted + 3 {
		h := sha256.Sum256([]byte{byte(i)})
		sums = append(sums, h)
		if err := tl.add(h); err != nil {
			t.Fatal(err)
		}
	}
	again := loadTrustList(dir)
	if again.has(sums[0]) || again.has(sums[2]) || !again.has(sums[3]) || !again.has(sums[len(sums)-1]) {
		t.Fatal("the trust list did not keep the latest checksums")
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 10)
	for _, cut := range []int{1, 5, 31, 32, 33, 100} {
		var buf bytes.Buffer
		w := &sumWriter{w: &buf}
		for i := 0; i < len(data); i += cut {
			w.Write(data[i:min(i+cut, len(data))])
		}
		if got, ok := w.sum(); !ok || !bytes.Equal(got[:], data[len(data)-32:]) || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("writes of %d: last 32 bytes %x", cut, got)
		}
	}
}

// TestSettlementsAtBatchEndsInCluster: with several senders at once the
// leader signs batches of several calls; every settlement the chain
// executes ends at the last height of one of them.
func TestSettlementsAtBatchEndsInCluster(t *testing.T) {
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: 7, SettleInterval: 200 * time.Millisecond}, func(c *Config) { c.SettleMaxHeights = 9 })
	feed, stop := tc.channel(tc.nodes[0]).Subscribe(1024)
	defer stop()
	// Batches applied before the subscription are not seen.
	before := tc.channel(tc.nodes[0]).Status().Height
	ends := map[uint64]bool{}
	var sizes []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for a := range feed {
			ends[a.Outcomes[len(a.Outcomes)-1].Height] = true
			sizes = append(sizes, len(a.Outcomes))
		}
	}()
	var wg sync.WaitGroup
	for _, u := range tc.users {
		wg.Go(func() {
			c := tc.channel(tc.nodes[0])
			for i := range 15 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, _ = c.Submit(ctx, tc.tx(u, fmt.Sprintf("%d;", i)))
				cancel()
			}
		})
	}
	wg.Wait()
	h := tc.channel(tc.nodes[0]).Status().Height
	info := tc.waitSettled(h)
	stop()
	<-done
	multi := false
	for _, n := range sizes {
		multi = multi || n > 1
	}
	if !multi {
		t.Skip("every batch held one call: nothing to snap")
	}
	cl := tc.chain.client(tc.nodes[0].key)
	for pid := uint64(1); pid <= info.LastProposal; pid++ {
		p, err := cl.Proposal(context.Background(), tc.id, pid)
		if err != nil {
			t.Fatal(err)
		}
		var s protocol.Settlement
		if p.Kind != protocol.ProposalSettlement || protocol.Unmarshal(p.Data, &s) != nil || p.Status != contract.ProposalExecuted {
			continue
		}
		if s.To > before && !ends[s.To] {
			t.Fatalf("settlement %d..%d does not end at a batch end (batch sizes %v)", s.From, s.To, sizes)
		}
	}
}
