package integration

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestDrillLocal runs `scraft drill failover --local`: its own chain and
// nodes, the leader crashed and restarted each round, every acknowledged
// write checked on every node. The drill's channel records its ABI on
// chain, and the writes are encoded with it.
func TestDrillLocal(t *testing.T) {
	out, err := exec.Command(scraftBin, "drill", "failover", "--local", "--rounds", "2", "--json").Output()
	if err != nil {
		t.Fatalf("scraft drill failover --local: %v\n%s", err, out)
	}
	checkDrillReport(t, out, 2)
	var rep struct {
		ABI string `json:"abi"`
	}
	if err := json.Unmarshal(out, &rep); err != nil || rep.ABI != "channel" {
		t.Fatalf("drill report: writes encoded with the %q ABI, want the channel's on chain (%v)", rep.ABI, err)
	}
}

// TestDrillRemote runs `scraft drill failover` against running node
// processes started with --allow-drills, with this test as their
// supervisor (it starts a crashed node again); a node without
// --allow-drills refuses the crash.
func TestDrillRemote(t *testing.T) {
	t.Setenv("SCRAFT_NODE_ARGS", "--allow-drills")
	pc := newProcCluster(t, 3, 0)
	// The supervisor: a node that exits is started again on its data.
	var mu sync.Mutex
	stopped := false
	t.Cleanup(func() { mu.Lock(); stopped = true; mu.Unlock() })
	for _, nd := range pc.nodes {
		go func() {
			for {
				mu.Lock()
				p := nd.p
				mu.Unlock()
				<-p.done
				mu.Lock()
				if stopped {
					mu.Unlock()
					return
				}
				p.start(t)
				mu.Unlock()
			}
		}()
	}
	var addrs, admins, keys []string
	for _, nd := range pc.nodes {
		addrs, admins = append(addrs, nd.addr), append(admins, nd.admin)
		keys = append(keys, filepath.Join(nd.dir, "node.key"))
	}
	for i, k := range keys {
		if out, err := exec.Command(scraftBin, "call", "--node", addrs[i], "--key", k, "--channel", pc.id.String(),
			"--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(), "--function", "chat::join",
			"--args", `{"nick":"drill`+string(rune('a'+i))+`"}`).CombinedOutput(); err != nil {
			t.Fatalf("chat::join: %v\n%s", err, out)
		}
	}
	out, err := exec.Command(scraftBin, "drill", "failover", "--node", strings.Join(addrs, ","), "--admin", strings.Join(admins, ","),
		"--key", strings.Join(keys, ","), "--channel", pc.id.String(), "--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(),
		"--rounds", "2", "--json").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("scraft drill failover: %v\n%s%s", err, out, stderr)
	}
	checkDrillReport(t, out, 2)
}

func checkDrillReport(t *testing.T, out []byte, rounds int) {
	t.Helper()
	var rep struct {
		Rounds []struct {
			LeaderBefore, LeaderAfter string  `json:"-"`
			GapMs                     float64 `json:"gap_ms"`
			Writes                    int     `json:"writes"`
		} `json:"rounds"`
		Acked        int  `json:"acked"`
		Lost         int  `json:"lost"`
		DigestsAgree bool `json:"digests_agree"`
		OK           bool `json:"ok"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("drill report: %v\n%s", err, out)
	}
	t.Logf("drill: %s", out)
	if len(rep.Rounds) != rounds || rep.Acked == 0 || rep.Lost != 0 || !rep.DigestsAgree || !rep.OK {
		t.Fatalf("drill report: %+v", rep)
	}
	for i, r := range rep.Rounds {
		if r.GapMs <= 0 || r.Writes == 0 {
			t.Fatalf("round %d: gap %.0f ms, %d writes", i+1, r.GapMs, r.Writes)
		}
	}
}

// TestDrillCrashNeedsAllowDrills: a node started without --allow-drills
// refuses POST /drill/crash and keeps running.
func TestDrillCrashNeedsAllowDrills(t *testing.T) {
	pc := newProcCluster(t, 1, 0)
	nd := pc.nodes[0]
	resp, err := http.Post("http://"+nd.admin+"/drill/crash", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST /drill/crash without --allow-drills: %s, want 403", resp.Status)
	}
	if _, err := nd.status(pc.id); err != nil {
		t.Fatalf("the node stopped answering: %v", err)
	}
}
