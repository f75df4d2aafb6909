package integration

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
)

// TestTransferCLI hands the lead of three node processes (started without
// --allow-drills) to a named member with `scraft transfer` under a write
// load, checks the refusals an operator meets (asked of a follower, an
// address that is no member, a malformed one), then runs `scraft drill
// failover --mode transfer` against the same nodes: every acknowledged
// write is on every node, and the drill reports its gaps.
func TestTransferCLI(t *testing.T) {
	pc := newProcCluster(t, 3, 0)
	l := pc.startLoad(pc.nodeKeys())
	testutil.Eventually(t, 30*time.Second, "writes before the transfer", func() bool { return l.count() >= 40 })
	old := pc.waitLeader(10 * time.Second)
	to := pc.others(old)[0]

	transfer := func(args ...string) ([]byte, error) {
		return exec.Command(scraftBin, append([]string{"transfer"}, args...)...).CombinedOutput()
	}
	out, err := transfer("--node", old.admin, "--to", to.key.Address().String(), "--channel", pc.id.String(), "--json")
	if err != nil {
		t.Fatalf("scraft transfer: %v\n%s", err, out)
	}
	var tr struct {
		From, To string
		Epoch    uint64
		Took     int64 `json:"took_ns"`
	}
	if err := json.Unmarshal(out, &tr); err != nil {
		t.Fatalf("scraft transfer --json: %v\n%s", err, out)
	}
	if tr.To != to.key.Address().String() || tr.From != old.key.Address().String() {
		t.Fatalf("transfer %+v, want %s → %s", tr, old.key.Address(), to.key.Address())
	}
	t.Logf("transfer: %s", out)
	if nl := pc.waitOtherLeader(old, 20*time.Second); nl != to {
		t.Fatalf("leading after the transfer: %s, want %s", nl.addr, to.addr)
	}
	if st, err := to.status(pc.id); err != nil || st.Epoch != tr.Epoch {
		t.Fatalf("new leader's status %+v, %v; the transfer began epoch %d", st, err, tr.Epoch)
	}
	before := l.count()
	testutil.Eventually(t, 30*time.Second, "writes after the transfer", func() bool { return l.count() >= before+40 })

	// Refusals: each says why, and the nodes keep running.
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"asked of a follower", []string{"--node", old.admin, "--to", pc.others(to)[1].key.Address().String()},
			[]string{"not the leader", to.key.Address().String()}},
		{"not a member", []string{"--node", to.admin, "--to", mustKey(t).Address().String()},
			[]string{"not a server of the channel"}},
		{"malformed address", []string{"--node", to.admin, "--to", "0x12"}, []string{"--to"}},
		{"no node", []string{"--to", old.key.Address().String()}, []string{"--node"}},
	} {
		out, err := transfer(tc.args...)
		if err == nil {
			t.Fatalf("%s: scraft transfer succeeded:\n%s", tc.name, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Fatalf("%s: %q does not say %q", tc.name, out, w)
			}
		}
	}
	acks := l.end()
	pc.checkAcked(acks, pc.nodes, 30*time.Second)

	// The drill, by planned transfer, against the running nodes.
	var addrs, admins, keys []string
	for _, nd := range pc.nodes {
		addrs, admins = append(addrs, nd.addr), append(admins, nd.admin)
		keys = append(keys, filepath.Join(nd.dir, "node.key"))
	}
	out, err = exec.Command(scraftBin, "drill", "failover", "--mode", "transfer", "--node", strings.Join(addrs, ","), "--admin", strings.Join(admins, ","),
		"--key", strings.Join(keys, ","), "--channel", pc.id.String(), "--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(),
		"--rounds", "3", "--json").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scraft drill failover --mode transfer: %v\n%s%s", err, out, stderr)
	}
	checkDrillReport(t, out, 3)
	var rep struct {
		Rounds []struct {
			Fault        string `json:"fault"`
			LeaderBefore string `json:"leader_before"`
			LeaderAfter  string `json:"leader_after"`
		} `json:"rounds"`
	}
	json.Unmarshal(out, &rep)
	for i, r := range rep.Rounds {
		if r.Fault != "transfer-leader" || r.LeaderBefore == r.LeaderAfter {
			t.Fatalf("round %d: %+v", i+1, r)
		}
	}
}
