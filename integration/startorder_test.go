package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// TestStartInAnyOrder starts three `scraft node` processes of a new channel
// back to back, as the README's walkthrough does, and checks that they end
// up in one channel whatever the order: one Raft configuration of three
// voters, one leader, a call that commits on every node, and every node's
// address on chain. In the walkthrough the first node is given no --peer
// and the others --peer it; a node given --peer must never bootstrap a
// group of its own, even when it starts first. Without --peer at all, the
// nodes race for the first claim and the losers join the winner at the
// address it published on chain.
func TestStartInAnyOrder(t *testing.T) {
	chainAddr := testutil.FreePort(t)
	_, chainKey := startChain(t, chainAddr)

	walkthrough := func(i int, first string) []string {
		if i == 0 {
			return nil
		}
		return []string{first}
	}
	noPeer := func(int, string) []string { return nil }
	type tcase struct {
		name  string
		order []int
		peers func(i int, first string) []string
	}
	var cases []tcase
	for _, order := range [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		cases = append(cases, tcase{fmt.Sprintf("walkthrough/%d%d%d", order[0], order[1], order[2]), order, walkthrough})
	}
	rounds := 2
	if !testing.Short() {
		rounds = 6
	}
	for r := range rounds {
		cases = append(cases, tcase{fmt.Sprintf("no-peer/%d", r), []int{r % 3, (r + 1) % 3, (r + 2) % 3}, noPeer})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pc := newUnstartedProcCluster(t, chainAddr, chainKey, 3)
			for _, i := range tc.order {
				pc.startNode(pc.nodes[i], tc.peers(i, pc.nodes[0].addr))
			}
			for _, i := range tc.order {
				pc.rebindIfTaken(pc.nodes[i], tc.peers(i, pc.nodes[0].addr))
			}
			pc.checkOneChannel(30 * time.Second)
		})
	}
}

// rebindIfTaken waits until the node's process listens (its admin
// endpoint answers) and, if it ended because a port FreePort handed out
// was taken before the node bound it, starts it again on new ports; the
// other nodes find it there by the address it publishes on chain.
func (pc *procCluster) rebindIfTaken(nd *procNode, peers []string) {
	t := pc.t
	hc := http.Client{Timeout: time.Second}
	for attempt := 0; ; attempt++ {
		var exited bool
		testutil.WaitFor(t, 20*time.Second, func() error {
			select {
			case <-nd.p.done:
				exited = true
				return nil
			default:
			}
			resp, err := hc.Get("http://" + nd.admin + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
		if !exited {
			return
		}
		b, _ := os.ReadFile(nd.p.log.Name())
		if !bytes.Contains(b, []byte("address already in use")) || attempt == 3 {
			t.Fatalf("node %s ended: %s", nd.addr, b)
		}
		t.Logf("node %s lost its port before binding it: %s; starting it on new ports", nd.addr, bytes.TrimSpace(b))
		nd.addr, nd.admin = testutil.FreePort(t), testutil.FreePort(t)
		pc.startNode(nd, peers)
	}
}

// newUnstartedProcCluster creates a chat channel on the chain at chainAddr
// (its key chainKey) with n members and their node folders and keys, and
// starts no node.
func newUnstartedProcCluster(t *testing.T, chainAddr string, chainKey protocol.Address, n int) *procCluster {
	t.Helper()
	pc := &procCluster{t: t, chainAddr: chainAddr, chainKey: chainKey}
	pc.createChat(contract.ChannelConfig{SettleEveryTxs: 1 << 62}, n)
	return pc
}

// createChat creates a chat channel with cfg on pc's chain, once it
// answers, and joins n new members to it on chain, in order, each with
// its node folder and key; it starts no node.
func (pc *procCluster) createChat(cfg contract.ChannelConfig, n int) {
	t := pc.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	chat, err := contracts.Get("chat")
	if err != nil {
		t.Fatal(err)
	}
	pc.abi = chat
	cl := pc.dialChain(mustKey(t))
	testutil.WaitFor(t, 20*time.Second, func() error {
		_, err := cl.Head(ctx)
		return err
	})
	pc.id, err = cl.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: chat.Wasm,
		InitialState: initialState(t, chat.Wasm), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		k := mustKey(t)
		if err := pc.joinOnChain(ctx, pc.dialChain(k)); err != nil {
			t.Fatal(err)
		}
		pc.nodes = append(pc.nodes, pc.newNode(k))
	}
}

// checkOneChannel waits until the nodes form one channel: the leader has
// them all as voters and each is ready, exactly one leads and all name the
// same Raft leader and count the same voters; then a call through the last
// node commits on every node, and the chain lists every node's address.
func (pc *procCluster) checkOneChannel(timeout time.Duration) {
	t := pc.t
	pc.waitVoters(len(pc.nodes), timeout)
	testutil.WaitFor(t, timeout, func() error {
		leading, raftLeader := 0, ""
		for _, nd := range pc.nodes {
			st, err := nd.fullStatus(pc.id)
			if err != nil {
				return err
			}
			if st.Leading {
				leading++
			}
			switch {
			case st.Voters != len(pc.nodes) || st.NonVoters != 0:
				return fmt.Errorf("node %s counts %d voters, %d non-voters", nd.addr, st.Voters, st.NonVoters)
			case st.RaftLeader == "" || (raftLeader != "" && st.RaftLeader != raftLeader):
				return fmt.Errorf("node %s names Raft leader %q, another %q", nd.addr, st.RaftLeader, raftLeader)
			}
			raftLeader = st.RaftLeader
		}
		if leading != 1 {
			return fmt.Errorf("%d nodes lead", leading)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := pc.nodes[len(pc.nodes)-1]
	cl, err := client.Dial(ctx, last.key, []protocol.Address{last.key.Address()}, last.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	args, err := pc.abi.EncodeArgs("join", []byte(`{"nick":"last"}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.Call(ctx, pc.id, "chat::join", args)
	if err != nil {
		t.Fatal(err)
	}
	pc.checkAcked([]acked{{height: res.Height, digest: res.Digest}}, pc.nodes, timeout)

	info, err := pc.dialChain(last.key).Channel(ctx, pc.id)
	if err != nil {
		t.Fatal(err)
	}
	for _, nd := range pc.nodes {
		if m, ok := info.Member(nd.key.Address()); !ok || m.NodeAddress != nd.addr {
			t.Fatalf("chain lists node address %q for the node at %s", m.NodeAddress, nd.addr)
		}
	}
	// And so does `scraft chain show`, next to each member.
	out, err := exec.CommandContext(ctx, scraftBin, "chain", "show", "--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(), pc.id.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("chain show: %v: %s", err, out)
	}
	for _, nd := range pc.nodes {
		if !regexp.MustCompile(nd.key.Address().String() + `\s+` + regexp.QuoteMeta(nd.addr) + `\s`).Match(out) {
			t.Fatalf("chain show does not list %s at %s:\n%s", nd.key.Address(), nd.addr, out)
		}
	}
}

// fullStatus is nodeStatus with the Raft view.
type fullStatus struct {
	nodeStatus
	RaftLeader string `json:"raft_leader"`
	NonVoters  int    `json:"non_voters"`
}

func (nd *procNode) fullStatus(id protocol.ChannelID) (*fullStatus, error) {
	hc := http.Client{Timeout: time.Second}
	resp, err := hc.Get("http://" + nd.admin + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var sts []fullStatus
	if err := json.NewDecoder(resp.Body).Decode(&sts); err != nil {
		return nil, err
	}
	for i := range sts {
		if sts[i].Channel == id {
			return &sts[i], nil
		}
	}
	return nil, fmt.Errorf("node %s does not host the channel", nd.addr)
}
