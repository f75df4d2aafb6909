package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// The soak: a kv channel on three node processes and a devchain, with
// clients calling put, get and cas on a few keys while, round after round,
// one member is crashed (SIGKILL, then started again), frozen (SIGSTOP,
// then SIGCONT), cut off from its peers (the scraft_misbehave build's
// isolate: SIGUSR1, then SIGUSR2) or restarted (SIGTERM), the leader or a
// follower in turn; or one link is cut, between the leader and one
// follower while every other link stays, or every member's messages are
// delayed (the isolate build's fault file, read on SIGHUP). Afterwards the clients' history is checked for
// linearizability, key by key, with porcupine; every acknowledged call is
// found at its height with its digest on a member (looked up as the run
// goes, before a settlement prunes the journals) and the members' digests
// agree above them, so every member holds every acknowledged call; and no
// member recorded evidence.
//
// A member's data disk fills up too: its data folder is moved onto a
// small tmpfs (root only; without it those rounds are left out, saying
// so) that a round shrinks to leave 1 MiB of room and grows again.
//
// SCRAFT_SOAK_ROUNDS sets the rounds (default 100; 6 under -short, one of
// each of the first six kinds),
// SCRAFT_SOAK_SEED the seed that picks followers and calls.

// soakFault is one kind of fault a round injects.
type soakFault struct {
	name   string
	leader bool // the leader is the victim, else a follower
	// inject does the fault to nd; heal undoes it.
	inject, heal func(pc *procCluster, nd *procNode)
	// writes is how many acknowledged writes the round waits for under
	// the fault before it heals (0: 5): a fault the cluster works around
	// rather than through is held long enough for its election timeouts.
	writes int
}

var soakFaults = []soakFault{
	{name: "kill leader", leader: true, inject: soakKill, heal: soakStart},
	{name: "stop follower", inject: soakStop, heal: soakCont},
	{name: "isolate leader", leader: true, inject: soakIsolate, heal: soakRejoin},
	{name: "kill follower", inject: soakKill, heal: soakStart},
	{name: "cut leader link", inject: soakCutLink, heal: soakHealLinks, writes: 100},
	{name: "delay links", inject: soakDelayLinks, heal: soakHealLinks, writes: 40},
	{name: "stop leader", leader: true, inject: soakStop, heal: soakCont},
	{name: "isolate follower", inject: soakIsolate, heal: soakRejoin},
	{name: "restart leader", leader: true, inject: soakTerm, heal: soakStart},
	{name: "restart follower", inject: soakTerm, heal: soakStart},
	{name: "fill leader disk", leader: true, inject: soakFillDisk, heal: soakGrowDisk, writes: 50},
	{name: "fill follower disk", inject: soakFillDisk, heal: soakGrowDisk, writes: 50},
}

// soakDiskFaults are the kinds that need a tmpfs: the soak leaves them
// out, saying so, where it cannot mount one.
var soakDiskFaults = map[string]bool{"fill leader disk": true, "fill follower disk": true}

// soakDisks are the small disks the soak mounted over nodes' data
// folders, by node: a node's first disk-full round stops it, moves its
// data onto a tmpfs and starts it again; later rounds shrink that tmpfs.
var soakDisks sync.Map // *procNode → *smallDisk

// soakDiskSpare is the room a disk-full round leaves on the victim's
// disk: a thousand or so writes fill it.
const soakDiskSpare = 1 << 20

// soakFillDisk leaves nd's data folder soakDiskSpare bytes of room and
// waits until nd reports that it cannot write its Raft log.
func soakFillDisk(pc *procCluster, nd *procNode) {
	if d, ok := soakDisks.Load(nd); ok {
		d.(*smallDisk).shrink(soakDiskSpare)
	} else {
		soakTerm(pc, nd)
		d, err := tryMountSmallDisk(pc.t, filepath.Join(nd.dir, "data"), soakDiskSpare)
		if err != nil {
			pc.t.Fatal(err)
		}
		soakDisks.Store(nd, d)
		pc.restart(nd)
	}
	testutil.WaitFor(pc.t, 2*time.Minute, func() error {
		st, err := diskStatus(nd, pc.id)
		if err != nil {
			return err
		}
		if st.StoreError == "" {
			return fmt.Errorf("node %s: its disk is not full yet", nd.addr)
		}
		return nil
	})
}

// soakGrowDisk gives nd's data folder room again.
func soakGrowDisk(_ *procCluster, nd *procNode) {
	if d, ok := soakDisks.Load(nd); ok {
		d.(*smallDisk).grow(64 << 20)
	}
}

func soakKill(_ *procCluster, nd *procNode)    { nd.p.kill() }
func soakStart(pc *procCluster, nd *procNode)  { pc.restart(nd) }
func soakStop(_ *procCluster, nd *procNode)    { nd.p.signal(syscall.SIGSTOP) }
func soakCont(_ *procCluster, nd *procNode)    { nd.p.signal(syscall.SIGCONT) }
func soakIsolate(_ *procCluster, nd *procNode) { nd.p.signal(syscall.SIGUSR1) }
func soakRejoin(_ *procCluster, nd *procNode)  { nd.p.signal(syscall.SIGUSR2) }

// soakDelay is what "delay links" adds to every message a member sends
// to another: a round trip 2 × soakDelay longer, against a Raft heartbeat
// timeout of 300 ms.
const soakDelay = 60 * time.Millisecond

// soakCutLink cuts the link between the leader and the follower nd, both
// ways, and no other: each side cuts what it sends to the other.
func soakCutLink(pc *procCluster, nd *procNode) {
	leader := pc.waitLeader(30 * time.Second)
	if leader == nd {
		pc.t.Errorf("cut leader link: %s leads, it is no follower", nd.addr)
		return
	}
	soakSetFaults(pc, leader, "cut "+nd.addr)
	soakSetFaults(pc, nd, "cut "+leader.addr)
}

// soakDelayLinks delays every message every member sends by soakDelay.
func soakDelayLinks(pc *procCluster, _ *procNode) {
	for _, n := range pc.nodes {
		soakSetFaults(pc, n, "delay "+soakDelay.String())
	}
}

// soakHealLinks lifts every member's cuts and delays.
func soakHealLinks(pc *procCluster, _ *procNode) {
	for _, n := range pc.nodes {
		soakSetFaults(pc, n, "")
	}
}

// soakSetFaults writes nd's fault file (isolate:PATH) and has nd read it.
func soakSetFaults(pc *procCluster, nd *procNode, spec string) {
	path, ok := strings.CutPrefix(nd.misbehave, "isolate:")
	if !ok {
		pc.t.Fatalf("node %s runs %q, not isolate:PATH", nd.addr, nd.misbehave)
	}
	if err := os.WriteFile(path, []byte(spec+"\n"), 0o644); err != nil {
		pc.t.Fatal(err)
	}
	nd.p.signal(syscall.SIGHUP)
}

// soakTerm stops nd's process with SIGTERM and waits until it has exited.
func soakTerm(pc *procCluster, nd *procNode) {
	nd.p.signal(syscall.SIGTERM)
	select {
	case <-nd.p.done:
	case <-time.After(30 * time.Second):
		pc.t.Errorf("node %s did not exit within 30s of SIGTERM", nd.addr)
		nd.p.kill()
	}
}

// kvIn is a call to the kv test contract: put key value, get key, or cas
// key expect value.
type kvIn struct {
	fn            string
	key           uint32
	value, expect string
}

// kvOut is a call's outcome: what get read, whether cas swapped. unknown
// means the client never learnt the outcome (a deadline, a lost link,
// "maybe committed"): the call is pending for ever in the history.
type kvOut struct {
	value   string
	swapped bool
	unknown bool
}

// kvModel is the sequential specification of one key: a string register,
// "" before the first write.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[uint32][]porcupine.Operation{}
		var keys []uint32
		for _, op := range history {
			k := op.Input.(kvIn).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(kvIn), output.(kvOut)
		switch in.fn {
		case "put":
			return true, in.value
		case "get":
			return out.unknown || out.value == st, st
		case "cas":
			if out.unknown {
				// Placed here it ran; placed after everything else it is
				// the call that never committed.
				if st == in.expect {
					return true, in.value
				}
				return true, st
			}
			if out.swapped {
				return st == in.expect, in.value
			}
			return st != in.expect, st
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvIn), output.(kvOut)
		res := ""
		switch {
		case out.unknown:
			res = " -> ?"
		case in.fn == "get":
			res = fmt.Sprintf(" -> %q", out.value)
		case in.fn == "cas":
			res = fmt.Sprintf(" -> %v", out.swapped)
		}
		switch in.fn {
		case "put":
			return fmt.Sprintf("put(%d, %q)%s", in.key, in.value, res)
		case "get":
			return fmt.Sprintf("get(%d)%s", in.key, res)
		}
		return fmt.Sprintf("cas(%d, %q, %q)%s", in.key, in.expect, in.value, res)
	},
}

// TestKVModel checks the checker: a history where a read misses an
// acknowledged write is refused, a pending write may or may not have
// happened, and a pending cas is allowed to have swapped or not.
func TestKVModel(t *testing.T) {
	pending := int64(math.MaxInt64)
	put := func(c int, k uint32, v string, call, ret int64) porcupine.Operation {
		out := kvOut{unknown: ret == pending}
		return porcupine.Operation{ClientId: c, Input: kvIn{fn: "put", key: k, value: v}, Call: call, Output: out, Return: ret}
	}
	get := func(c int, k uint32, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvIn{fn: "get", key: k}, Call: call, Output: kvOut{value: v}, Return: ret}
	}
	cas := func(c int, k uint32, expect, v string, swapped bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvIn{fn: "cas", key: k, expect: expect, value: v}, Call: call,
			Output: kvOut{swapped: swapped, unknown: ret == pending}, Return: ret}
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"read your write", []porcupine.Operation{put(0, 1, "a", 0, 10), get(1, 1, "a", 20, 30)}, true},
		{"stale read", []porcupine.Operation{put(0, 1, "a", 0, 10), put(0, 1, "b", 11, 15), get(1, 1, "a", 20, 30)}, false},
		{"lost write", []porcupine.Operation{put(0, 1, "a", 0, 10), get(1, 1, "", 20, 30)}, false},
		{"other key untouched", []porcupine.Operation{put(0, 1, "a", 0, 10), get(1, 2, "", 20, 30)}, true},
		{"pending write seen", []porcupine.Operation{put(0, 1, "a", 0, pending), get(1, 1, "a", 20, 30)}, true},
		{"pending write unseen", []porcupine.Operation{put(0, 1, "a", 0, pending), get(1, 1, "", 20, 30)}, true},
		{"pending write unseen after seen", []porcupine.Operation{put(0, 1, "a", 0, pending), get(1, 1, "a", 20, 30), get(1, 1, "", 40, 50)}, false},
		{"cas swapped", []porcupine.Operation{put(0, 1, "a", 0, 10), cas(1, 1, "a", "b", true, 20, 30), get(0, 1, "b", 40, 50)}, true},
		{"cas swapped wrongly", []porcupine.Operation{put(0, 1, "a", 0, 10), cas(1, 1, "x", "b", true, 20, 30)}, false},
		{"cas refused wrongly", []porcupine.Operation{put(0, 1, "a", 0, 10), cas(1, 1, "a", "b", false, 20, 30)}, false},
		{"pending cas ran", []porcupine.Operation{put(0, 1, "a", 0, 10), cas(1, 1, "a", "b", false, 20, pending), get(0, 1, "b", 40, 50)}, true},
		{"pending cas did not run", []porcupine.Operation{put(0, 1, "a", 0, 10), cas(1, 1, "a", "b", false, 20, pending), get(0, 1, "a", 40, 50)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(kvModel, tc.ops); got != tc.ok {
				t.Fatalf("linearizable: %v, want %v", got, tc.ok)
			}
		})
	}
}

// kvContract reads the kv test contract, built by contracts/build.sh.
func kvContract(t testing.TB) *contracts.Contract {
	t.Helper()
	wasm, err := os.ReadFile("../contracts/kv/kv.wasm")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../contracts/kv/abi.json")
	if err != nil {
		t.Fatal(err)
	}
	abi, err := contracts.ParseABI(raw)
	if err != nil {
		t.Fatal(err)
	}
	return &contracts.Contract{Name: "kv", Wasm: wasm, ABI: abi}
}

// soakOp is one call of the history.
type soakOp struct {
	client       int
	in           kvIn
	out          kvOut
	call, ret    time.Time
	round        int // the round it was called in
	acked        bool
	height       uint64
	digest       protocol.Hash
	write        bool // an acknowledged put or cas that swapped
	refused      bool // refused before ordering: never ran
	failedStatus bool // committed with a failure status
}

// soakRound is what one round did.
type soakRound struct {
	fault         *soakFault
	victim        *procNode
	faultAt, end  time.Time
	gap           time.Duration
	unknown, lost int
}

// soakHistory is the clients' shared record.
type soakHistory struct {
	mu    sync.Mutex
	ops   []*soakOp
	round atomic.Int64
}

func (h *soakHistory) add(op *soakOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// writesSince counts acknowledged writes that returned after t.
func (h *soakHistory) writesSince(t time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, op := range h.ops {
		if op.write && op.ret.After(t) {
			n++
		}
	}
	return n
}

func soakEnv(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// soakKeys is how many keys the clients share: few, so that calls on a
// key overlap.
const soakKeys = 6

func TestSoak(t *testing.T) {
	rounds := int(soakEnv("SCRAFT_SOAK_ROUNDS", 100))
	if testing.Short() && os.Getenv("SCRAFT_SOAK_ROUNDS") == "" {
		rounds = 6
	}
	seed := soakEnv("SCRAFT_SOAK_SEED", time.Now().UnixNano())
	t.Logf("soak: %d rounds, SCRAFT_SOAK_SEED=%d", rounds, seed)
	rng := rand.New(rand.NewSource(seed))

	spec := clusterSpec{contract: "kv", code: kvContract(t), config: contract.ChannelConfig{SettleEveryTxs: 1 << 62},
		misbehave: map[int]string{}}
	faultDir := t.TempDir()
	for i := range 3 {
		spec.misbehave[i] = "isolate:" + filepath.Join(faultDir, fmt.Sprintf("node%d.faults", i))
	}
	pc := newProcClusterSpec(t, 3, 0, spec)

	h := &soakHistory{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, k := range pc.nodeKeys() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc.soakClient(h, i, k, rand.New(rand.NewSource(seed+int64(i)+1)), stop)
		}()
	}
	t0 := time.Now()

	// Look acknowledged calls up while the run goes on: a forced
	// settlement (every 10,000 heights) prunes the journals below it.
	ver := &soakVerifier{pc: pc, h: h}
	verStop, verDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(verDone)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-verStop:
				return
			case <-tick.C:
				ver.pass()
			}
		}
	}()
	faults := soakFaults
	if ok, why := canMountTmpfs(t); !ok {
		t.Logf("soak: no disk-full rounds: %s", why)
		faults = slices.DeleteFunc(slices.Clone(faults), func(f soakFault) bool { return soakDiskFaults[f.name] })
	}
	var done []*soakRound
	for r := 0; r < rounds && !t.Failed(); r++ {
		h.round.Store(int64(r))
		f := &faults[r%len(faults)]
		since := time.Now()
		testutil.Eventually(t, 60*time.Second, "writes before the fault", func() bool { return h.writesSince(since) >= 5 })
		leader := pc.waitLeader(30 * time.Second)
		victim := leader
		if !f.leader {
			fs := pc.others(leader)
			victim = fs[rng.Intn(len(fs))]
		}
		rd := &soakRound{fault: f, victim: victim, faultAt: time.Now()}
		f.inject(pc, victim)
		testutil.Eventually(t, 60*time.Second, "writes under the fault ("+f.name+")", func() bool {
			return h.writesSince(rd.faultAt) >= max(f.writes, 5)
		})
		f.heal(pc, victim)
		pc.waitVoters(3, 60*time.Second)
		rd.end = time.Now()
		done = append(done, rd)
		if (r+1)%10 == 0 || r+1 == rounds {
			t.Logf("soak: round %d of %d done (%s)", r+1, rounds, time.Since(t0).Round(time.Second))
		}
	}
	close(stop)
	wg.Wait()
	close(verStop)
	<-verDone
	if t.Failed() {
		return
	}
	h.mu.Lock()
	ops := h.ops
	h.mu.Unlock()

	// Every acknowledged call on a node, with its digest. The digests
	// chain (D(h) covers D(h-1)), so members that agree at a height share
	// every acknowledged call below it that one of them was seen to hold.
	err := testutil.Poll(60*time.Second, func() error {
		ver.pass()
		if n := len(ver.waiting); n > 0 {
			return fmt.Errorf("%d acknowledged calls not found on any node (first: height %d)", n, ver.waiting[0].height)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%v: a node lacks them, or every journal had pruned them before they were looked up", err)
	}
	lost := ver.lost
	var top uint64
	for _, op := range ops {
		if op.acked {
			top = max(top, op.height)
		}
	}
	testutil.WaitFor(t, 60*time.Second, func() error {
		for _, nd := range pc.nodes {
			st, err := nd.status(pc.id)
			if err != nil {
				return err
			}
			if st.Height < top {
				return fmt.Errorf("node %s at height %d, the highest acknowledged is %d", nd.addr, st.Height, top)
			}
		}
		return nil
	})
	pc.checkDigestsAgree(30 * time.Second)
	for _, nd := range pc.nodes {
		st, err := nd.status(pc.id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Evidence != 0 {
			t.Errorf("node %s recorded %d pieces of evidence", nd.addr, st.Evidence)
		}
	}
	soakSummary(t, done, ops, lost)
	soakLinearizable(t, ops, t0)
}

// soakClient calls put, get and cas on random keys through the nodes until
// stop is closed, recording each call in h. A call whose outcome it never
// learns enters the history as pending, and the client dials again,
// starting with the next node.
func (pc *procCluster) soakClient(h *soakHistory, id int, key *protocol.Key, rng *rand.Rand, stop chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-stop; cancel() }()
	cfg := client.DefaultConfig()
	var addrs []string
	for _, nd := range pc.nodes {
		addrs = append(addrs, nd.addr)
		cfg.NodeKeys = append(cfg.NodeKeys, nd.key.Address())
	}
	attempt := id
	cl, err := cfg.Dial(ctx, key, rotate(addrs, attempt)...)
	if err != nil {
		pc.t.Errorf("client %d: dial: %v", id, err)
		return
	}
	defer func() { cl.Close() }()
	last := map[uint32]string{} // what this client last saw at a key
	for seq := 0; ctx.Err() == nil; seq++ {
		in := kvIn{key: uint32(rng.Intn(soakKeys)), value: fmt.Sprintf("c%d.%d", id, seq)}
		switch n := rng.Intn(10); {
		case n < 4:
			in.fn = "put"
		case n < 7:
			in.fn = "get"
		default:
			in.fn = "cas"
			in.expect = last[in.key]
		}
		var args string
		switch in.fn {
		case "put":
			args = fmt.Sprintf(`{"key":%d,"value":%q}`, in.key, in.value)
		case "get":
			args = fmt.Sprintf(`{"key":%d}`, in.key)
		case "cas":
			args = fmt.Sprintf(`{"key":%d,"expect":%q,"value":%q}`, in.key, in.expect, in.value)
		}
		b, err := pc.abi.EncodeArgs(in.fn, []byte(args))
		if err != nil {
			pc.t.Errorf("encode %s: %v", args, err)
			return
		}
		op := &soakOp{client: id, in: in, round: int(h.round.Load()), call: time.Now()}
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := cl.Call(cctx, pc.id, "kv::"+in.fn, b)
		ccancel()
		op.ret = time.Now()
		if ctx.Err() != nil && res == nil {
			// Stopped: the call was cut short by the end of the run; it
			// may have committed all the same.
			op.out.unknown = true
			h.add(op)
			return
		}
		switch {
		case res != nil && err == nil:
			op.acked, op.height, op.digest = true, res.Height, res.Digest
			if err := soakDecode(pc.abi, op, res.Output); err != nil {
				pc.t.Errorf("client %d: %s: %v", id, args, err)
				return
			}
			op.write = in.fn == "put" || op.out.swapped
			switch {
			case in.fn == "get":
				last[in.key] = op.out.value
			case op.write:
				last[in.key] = in.value
			}
		case res != nil:
			// Committed with a failure status: it changed nothing.
			op.acked, op.height, op.digest, op.failedStatus = true, res.Height, res.Digest, true
		case soakRefused(err):
			op.refused = true
		default:
			op.out.unknown = true
			attempt++
			if ncl, derr := cfg.Dial(ctx, key, rotate(addrs, attempt)...); derr == nil {
				cl.Close()
				cl = ncl
			}
		}
		h.add(op)
	}
}

// soakRefused reports whether err means the node refused the call before
// ordering it, so it never ran.
func soakRefused(err error) bool {
	var e *protocol.Error
	if !errors.As(err, &e) || errors.Is(err, client.ErrMaybeCommitted) {
		return false
	}
	switch e.Code {
	case protocol.CodeBusy, protocol.CodeBadRequest, protocol.CodeTooLarge, protocol.CodeNoChannel, protocol.CodeStaleNonce,
		protocol.CodeNotMember, protocol.CodeBadSignature, protocol.CodeWrongSender:
		return true
	}
	return false
}

func soakDecode(abi *contracts.Contract, op *soakOp, out []byte) error {
	if op.in.fn == "put" {
		return nil
	}
	j, err := abi.DecodeOutput(op.in.fn, out)
	if err != nil {
		return err
	}
	if op.in.fn == "get" {
		return json.Unmarshal(j, &op.out.value)
	}
	return json.Unmarshal(j, &op.out.swapped)
}

// soakVerifier looks the acknowledged calls of a history up on the nodes
// as they are recorded: each must be found, at its height with its
// digest, on a node that answers.
type soakVerifier struct {
	pc      *procCluster
	h       *soakHistory
	next    int       // h.ops[:next] were taken
	waiting []*soakOp // acknowledged, not found on a node yet
	lost    []*soakOp // found at another digest
}

// pass takes the newly recorded calls and looks every waiting one up on
// the nodes that answer now (a stopped node would hold each look-up for
// its timeout).
func (v *soakVerifier) pass() {
	v.h.mu.Lock()
	for _, op := range v.h.ops[v.next:] {
		if op.acked {
			v.waiting = append(v.waiting, op)
		}
	}
	v.next = len(v.h.ops)
	v.h.mu.Unlock()
	var up []*procNode
	for _, nd := range v.pc.nodes {
		if _, err := nd.status(v.pc.id); err == nil {
			up = append(up, nd)
		}
	}
	if len(up) == 0 {
		return
	}
	still := v.waiting[:0]
	for _, op := range v.waiting {
		found := false
		for i := range up {
			nd := up[(int(op.height)+i)%len(up)] // spread the look-ups
			d, err := nd.digest(v.pc.id, op.height)
			if err != nil {
				continue // not applied yet, pruned, or gone meanwhile
			}
			if d != op.digest {
				v.pc.t.Errorf("node %s: acknowledged %s at height %d has digest %s, the node %s", nd.addr, op.in.fn, op.height, op.digest, d)
				v.lost = append(v.lost, op)
			}
			found = true
			break
		}
		if !found {
			still = append(still, op)
		}
	}
	v.waiting = still
}

// soakSummary prints, per fault kind, the rounds, the gap in acknowledged
// writes from the fault to the round's end (median, worst), the
// acknowledged calls lost and the calls whose outcome stayed unknown.
func soakSummary(t *testing.T, rounds []*soakRound, ops, lost []*soakOp) {
	for _, op := range ops {
		if op.out.unknown && op.round < len(rounds) {
			rounds[op.round].unknown++
		}
	}
	for _, op := range lost {
		if op.round < len(rounds) {
			rounds[op.round].lost++
		}
	}
	// Write acknowledgements in time order, for the gaps.
	var acks []time.Time
	for _, op := range ops {
		if op.write {
			acks = append(acks, op.ret)
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	for _, rd := range rounds {
		prev := rd.faultAt
		for _, a := range acks {
			if a.Before(rd.faultAt) {
				continue
			}
			if a.After(rd.end) {
				break
			}
			rd.gap = max(rd.gap, a.Sub(prev))
			prev = a
		}
		rd.gap = max(rd.gap, rd.end.Sub(prev))
	}
	acked, unknown, refused, failed := 0, 0, 0, 0
	for _, op := range ops {
		switch {
		case op.acked && !op.failedStatus:
			acked++
		case op.failedStatus:
			failed++
		case op.refused:
			refused++
		case op.out.unknown:
			unknown++
		}
	}
	t.Logf("soak: %d calls: %d acknowledged, %d unknown outcome, %d refused before ordering, %d committed with a failure status; %d lost",
		len(ops), acked, unknown, refused, failed, len(lost))
	t.Logf("soak: %-18s %6s %10s %10s %5s %8s", "fault", "rounds", "gap p50", "gap worst", "lost", "unknown")
	for i := range soakFaults {
		f := &soakFaults[i]
		var gaps []time.Duration
		lostN, unknownN := 0, 0
		for _, rd := range rounds {
			if rd.fault == f {
				gaps = append(gaps, rd.gap)
				lostN += rd.lost
				unknownN += rd.unknown
			}
		}
		if len(gaps) == 0 {
			continue
		}
		slices.Sort(gaps)
		t.Logf("soak: %-18s %6d %10s %10s %5d %8d", f.name, len(gaps), gaps[len(gaps)/2].Round(time.Millisecond),
			gaps[len(gaps)-1].Round(time.Millisecond), lostN, unknownN)
	}
}

// soakLinearizable checks the history with porcupine, key by key; calls
// refused before ordering or committed with a failure status changed
// nothing and are left out, and calls with an unknown outcome are pending
// for ever. On failure it writes porcupine's visualization next to the
// test's logs.
func soakLinearizable(t *testing.T, ops []*soakOp, t0 time.Time) {
	var hist []porcupine.Operation
	for _, op := range ops {
		if op.refused || op.failedStatus {
			continue
		}
		ret := op.ret.Sub(t0).Nanoseconds()
		if op.out.unknown {
			if op.in.fn == "get" {
				continue // a read nobody saw changes nothing
			}
			ret = math.MaxInt64
		}
		hist = append(hist, porcupine.Operation{ClientId: op.client, Input: op.in, Call: op.call.Sub(t0).Nanoseconds(),
			Output: op.out, Return: ret})
	}
	res, info := porcupine.CheckOperationsVerbose(kvModel, hist, 5*time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("soak: %d calls linearizable", len(hist))
	case porcupine.Unknown:
		t.Fatalf("soak: the linearizability check of %d calls did not finish", len(hist))
	default:
		dir := os.Getenv("SCRAFT_TEST_LOGS")
		if dir == "" {
			dir = t.TempDir()
		}
		file := filepath.Join(dir, "soak-history.html")
		if err := porcupine.VisualizePath(kvModel, info, file); err != nil {
			t.Logf("visualize: %v", err)
		}
		t.Fatalf("soak: the history of %d calls is not linearizable (see %s)", len(hist), file)
	}
}
