package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchCLI runs `scraft bench` against three node processes with the
// nodes' member keys as clients, closed loop and paced, and checks what it
// reports against the nodes: calls committed, latencies ordered, no errors.
func TestBenchCLI(t *testing.T) {
	pc := newProcCluster(t, 3, 0)
	var addrs, keys []string
	for _, nd := range pc.nodes {
		addrs = append(addrs, nd.addr)
		keys = append(keys, filepath.Join(nd.dir, "node.key"))
	}
	// chat::send needs a nick: each client joins the chat first.
	for i, k := range keys {
		out, err := exec.Command(scraftBin, "call", "--node", addrs[i], "--key", k, "--channel", pc.id.String(),
			"--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(), "--function", "chat::join",
			"--args", fmt.Sprintf(`{"nick":"bench%d"}`, i)).CombinedOutput()
		if err != nil {
			t.Fatalf("scraft call chat::join: %v\n%s", err, out)
		}
	}
	before, err := pc.nodes[0].status(pc.id)
	if err != nil {
		t.Fatal(err)
	}
	bench := func(extra ...string) map[string]any {
		t.Helper()
		args := append([]string{"bench", "--node", strings.Join(addrs, ","), "--key", strings.Join(keys, ","),
			"--channel", pc.id.String(), "--chain", pc.chainAddr, "--chain-key", pc.chainKey.String(),
			"--function", "chat::send", "--args", `{"text":"bench {{n}} from {{client}}"}`, "--duration", "3s", "--json"}, extra...)
		out, err := exec.Command(scraftBin, args...).Output()
		if err != nil {
			t.Fatalf("scraft bench %v: %v\n%s", extra, err, out)
		}
		var rep map[string]any
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("scraft bench --json: %v\n%s", err, out)
		}
		t.Logf("scraft bench %v: %s", extra, out)
		if rep["committed"].(float64) == 0 || rep["failed"].(float64) != 0 || len(rep["errors"].(map[string]any)) != 0 {
			t.Fatalf("bench %v: %v", extra, rep)
		}
		if !(rep["p50_ms"].(float64) <= rep["p99_ms"].(float64) && rep["p99_ms"].(float64) <= rep["max_ms"].(float64)) {
			t.Fatalf("bench %v: latencies out of order: %v", extra, rep)
		}
		return rep
	}
	open := bench()
	paced := bench("--rate", "30", "--shared-conns")
	// Each committed call is a height on every node.
	total := uint64(open["committed"].(float64) + paced["committed"].(float64))
	pc.checkDigestsAgree(30 * time.Second)
	after, err := pc.nodes[0].status(pc.id)
	if err != nil {
		t.Fatal(err)
	}
	if after.Height-before.Height < total {
		t.Fatalf("bench reported %d committed calls, the channel grew by %d heights", total, after.Height-before.Height)
	}
	if r := paced["tx_per_second"].(float64); r > 45 {
		t.Fatalf("paced at 30 calls/s, bench reported %.1f tx/s", r)
	}
}
