package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// TestHonestNeverAccused runs a MoveCraft channel of honest nodes (ticks
// and settlements on, stakes and fines set) through a seeded random
// schedule of leader and follower kills, stopped leaders, joins and
// leaves, under players' load, and checks what an honest channel must
// never show: evidence recorded by any node, a proposal other than a
// settlement, a vote against a settlement, a stake that changed, or two
// nodes with different digests at the same height.
//
// make test runs a few rounds; make chaos sets SCRAFT_HONEST_ROUNDS.
// SCRAFT_HONEST_SEED repeats a schedule.
func TestHonestNeverAccused(t *testing.T) {
	rounds := 5 // each kind of round once, in a seeded order
	if !testing.Short() {
		rounds = 10
	}
	if v, err := strconv.Atoi(os.Getenv("SCRAFT_HONEST_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("SCRAFT_HONEST_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (SCRAFT_HONEST_SEED repeats it), %d rounds", seed, rounds)
	rng := rand.New(rand.NewSource(seed))

	const minStake = 1000
	pc := newProcClusterSpec(t, 3, 0, clusterSpec{contract: "movecraft", config: contract.ChannelConfig{
		TickInterval: 200 * time.Millisecond, SettleEveryTxs: 300, SettleInterval: 2 * time.Second,
		MinStake: minStake, Fine: minStake / 2,
	}})
	// The first three nodes' members play and never leave; nodes that join
	// later may be chosen to leave.
	l := pc.startPlayers(pc.nodeKeys(), 60)
	progress := func(what string) {
		t.Helper()
		before := l.acked.Load()
		testutil.Eventually(t, 60*time.Second, what, func() bool { return l.acked.Load() >= before+20 })
	}
	progress("first writes")

	ctx := context.Background()
	var spares []*procNode // nodes that joined during the run
	order := rng.Perm(5)
	for r := 0; r < rounds; r++ {
		action := rng.Intn(5)
		if r < len(order) {
			action = order[r]
		}
		switch {
		case action == 0:
			victim := pc.waitLeader(30 * time.Second)
			t.Logf("round %d: SIGKILL the leader %s", r, victim.addr)
			victim.p.kill()
			progress("writes with the leader down")
			pc.restart(victim)
		case action == 1:
			victim := pc.others(pc.waitLeader(30 * time.Second))[rng.Intn(len(pc.nodes)-1)]
			t.Logf("round %d: SIGKILL the follower %s", r, victim.addr)
			victim.p.kill()
			progress("writes with a follower down")
			pc.restart(victim)
		case action == 2:
			victim := pc.waitLeader(30 * time.Second)
			t.Logf("round %d: SIGSTOP the leader %s", r, victim.addr)
			victim.p.signal(syscall.SIGSTOP)
			pc.waitOtherLeader(victim, 30*time.Second)
			progress("writes with the leader stopped")
			victim.p.signal(syscall.SIGCONT)
		case action == 3 || len(spares) == 0:
			nd := pc.newNode(mustKey(t))
			t.Logf("round %d: %s joins", r, nd.addr)
			if err := pc.joinOnChain(ctx, pc.dialChain(nd.key)); err != nil {
				t.Fatal(err)
			}
			var peers []string
			for _, o := range pc.nodes {
				peers = append(peers, o.addr)
			}
			pc.nodes = append(pc.nodes, nd)
			pc.startNode(nd, peers)
			spares = append(spares, nd)
		default:
			gone := spares[len(spares)-1]
			spares = spares[:len(spares)-1]
			t.Logf("round %d: %s leaves", r, gone.addr)
			pc.leaveNode(gone)
		}
		pc.waitVoters(len(pc.nodes), 60*time.Second)
		pc.checkNoEvidence()
		progress("writes after the round")
	}

	// At least one settlement executes with the schedule behind it.
	chain := pc.dialChain(pc.nodes[0].key)
	var info0 uint64
	testutil.WaitFor(t, 60*time.Second, func() error {
		info, err := chain.Channel(ctx, pc.id)
		if err != nil {
			return err
		}
		if info.SettledHeight == 0 {
			return errors.New("no settlement executed yet")
		}
		info0 = info.SettledHeight
		return nil
	})
	if n := l.end(); n == 0 {
		t.Fatal("no call was acknowledged")
	}
	pc.checkDigestsAgree(60 * time.Second)
	pc.checkNoEvidence()

	// The chain saw settlements only, none voted against, and no stake
	// moved.
	settlements := 0
	for n := uint64(1); ; n++ {
		p, err := chain.Proposal(ctx, pc.id, n)
		if errors.Is(err, contract.ErrNoProposal) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind != protocol.ProposalSettlement {
			t.Errorf("proposal %d is a %s by %s among honest nodes", p.ID, p.Kind, p.Proposer)
		}
		if p.Against > 0 {
			t.Errorf("settlement %d had %d votes against", p.ID, p.Against)
		}
		settlements++
	}
	info, err := chain.Channel(ctx, pc.id)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range info.Members {
		if m.Locked != minStake {
			t.Errorf("member %s has %d locked, staked %d", m.Address, m.Locked, minStake)
		}
	}
	t.Logf("%d proposals, all settlements; settled height %d (first seen %d); %d calls acknowledged, %d failed",
		settlements, info.SettledHeight, info0, l.acked.Load(), l.failed.Load())
}

// checkNoEvidence fails the test if a running node recorded evidence
// against a leader.
func (pc *procCluster) checkNoEvidence() {
	pc.t.Helper()
	for _, nd := range pc.nodes {
		st, err := nd.status(pc.id)
		if err != nil {
			pc.t.Fatalf("node %s: %v", nd.addr, err)
		}
		if st.Evidence != 0 {
			pc.t.Fatalf("node %s recorded %d pieces of evidence among honest nodes", nd.addr, st.Evidence)
		}
	}
}

// checkDigestsAgree waits until every node has the same digest at the
// lowest height they all applied.
func (pc *procCluster) checkDigestsAgree(timeout time.Duration) {
	pc.t.Helper()
	testutil.WaitFor(pc.t, timeout, func() error {
		var low uint64
		for i, nd := range pc.nodes {
			st, err := nd.status(pc.id)
			if err != nil {
				return err
			}
			if i == 0 || st.Height < low {
				low = st.Height
			}
		}
		var want protocol.Hash
		for i, nd := range pc.nodes {
			d, err := nd.digest(pc.id, low)
			if err != nil {
				return fmt.Errorf("node %s: height %d: %w", nd.addr, low, err)
			}
			if i == 0 {
				want = d
			} else if d != want {
				pc.t.Fatalf("height %d: node %s has digest %s, node %s has %s", low, nd.addr, d, pc.nodes[0].addr, want)
			}
		}
		return nil
	})
}

// leaveNode has nd's member leave with `scraft leave` through another
// node, waits until the chain has let it go, and stops nd.
func (pc *procCluster) leaveNode(nd *procNode) {
	pc.t.Helper()
	var via *procNode
	for _, o := range pc.nodes {
		if o != nd {
			via = o
			break
		}
	}
	out, err := exec.Command(scraftBin, "leave", "--node", via.addr, "--key", filepath.Join(nd.dir, "node.key"),
		"--channel", pc.id.String(), "--chain", pc.chainAddr, "--timeout", "1m").CombinedOutput()
	if err != nil {
		pc.t.Fatalf("scraft leave: %v: %s", err, out)
	}
	chain := pc.dialChain(nd.key)
	testutil.WaitFor(pc.t, 60*time.Second, func() error {
		info, err := chain.Channel(context.Background(), pc.id)
		if err != nil {
			return err
		}
		if _, ok := info.Member(nd.key.Address()); ok {
			return errors.New("still a member on chain")
		}
		return nil
	})
	nd.p.kill()
	for i, o := range pc.nodes {
		if o == nd {
			pc.nodes = append(pc.nodes[:i], pc.nodes[i+1:]...)
			break
		}
	}
}

// players is MoveCraft load: one client per key, spawning, then walking,
// placing and breaking blocks around the centre.
type players struct {
	acked, failed atomic.Int64
	stop          chan struct{}
	wg            sync.WaitGroup
}

// startPlayers starts one player per key, together sending about rate
// calls per second.
func (pc *procCluster) startPlayers(keys []*protocol.Key, rate int) *players {
	l := &players{stop: make(chan struct{})}
	cfg := client.DefaultConfig()
	cfg.NodeKeys = pc.nodeAddrs()
	var addrs []string
	for _, nd := range pc.nodes {
		addrs = append(addrs, nd.addr)
	}
	interval := time.Duration(len(keys)) * time.Second / time.Duration(rate)
	for i, k := range keys {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { <-l.stop; cancel() }()
			rng := rand.New(rand.NewSource(int64(i)))
			attempt := i
			cl, err := cfg.Dial(ctx, k, rotate(addrs, attempt)...)
			if err != nil {
				pc.t.Errorf("player %d: dial: %v", i, err)
				return
			}
			defer func() { cl.Close() }()
			send := func(fn, args string) {
				b, err := pc.abi.EncodeArgs(fn, []byte(args))
				if err != nil {
					pc.t.Errorf("encode %s: %v", fn, err)
					return
				}
				for ctx.Err() == nil {
					cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
					res, err := cl.Call(cctx, pc.id, "movecraft::"+fn, b)
					timedOut := cctx.Err() != nil
					ccancel()
					if res != nil {
						l.acked.Add(1) // ordered, with whatever status the world gave it
						return
					}
					if err != nil && ctx.Err() == nil {
						l.failed.Add(1)
					}
					if timedOut && ctx.Err() == nil {
						attempt++
						if ncl, derr := cfg.Dial(ctx, k, rotate(addrs, attempt)...); derr == nil {
							cl.Close()
							cl = ncl
						}
					}
				}
			}
			send("join", fmt.Sprintf(`{"name":"player%d"}`, i+1))
			for ctx.Err() == nil {
				x, y := 58+rng.Intn(12), 58+rng.Intn(12)
				switch rng.Intn(3) {
				case 0:
					send("move", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, 16))
				case 1:
					send("place", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d,"item":%d}`, x, y, 10+rng.Intn(8), 3+rng.Intn(4)))
				default:
					send("break_block", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, 8+rng.Intn(8)))
				}
				select {
				case <-ctx.Done():
				case <-time.After(interval):
				}
			}
		}()
	}
	return l
}

// end stops the players and returns how many calls were acknowledged.
func (l *players) end() int64 {
	close(l.stop)
	l.wg.Wait()
	return l.acked.Load()
}
