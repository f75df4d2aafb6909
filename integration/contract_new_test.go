package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/settlement/contract"
)

// TestContractNewWalkthrough follows the contract author's path of the
// README with the project `scraft contract new` writes: npm ci, its
// test.sh (build, then calls through scraft contract run), a channel
// running the module on three nodes, created the same way `scraft chain
// create-channel --contract counter.wasm` creates one, and `scraft call`
// with JSON arguments encoded with its abi.json. It needs npm and the
// registry (or npm's cache): not under -short.
func TestContractNewWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("npm ci and a cluster: long")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("no npm")
	}
	dir := filepath.Join(t.TempDir(), "counter")
	sh := func(cwd string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = cwd
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(scraftBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	sh(".", scraftBin, "contract", "new", "counter", "--dir", dir)
	sh(dir, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	if out := sh(dir, "./test.sh"); !strings.Contains(out, "test.sh: ok") {
		t.Fatalf("test.sh:\n%s", out)
	}

	wasm, err := os.ReadFile(filepath.Join(dir, "counter.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "abi.json"))
	if err != nil {
		t.Fatal(err)
	}
	abi, err := contracts.ParseABI(raw)
	if err != nil {
		t.Fatal(err)
	}
	pc := newProcClusterSpec(t, 3, 0, clusterSpec{contract: "counter", code: &contracts.Contract{Name: "counter", Wasm: wasm, ABI: abi},
		config: contract.ChannelConfig{SettleEveryTxs: 1 << 62}})
	key := filepath.Join(pc.nodes[0].dir, "node.key")
	chainArgs := []string{"--chain", pc.chainAddr, "--chain-key", pc.chainKey.String()}
	call := func(amount string) uint64 {
		t.Helper()
		out := sh(dir, scraftBin, append([]string{"call", "--node", pc.nodes[1].addr, "--key", key, "--channel", pc.id.String(),
			"--abi", "abi.json", "--function", "counter::add", "--args", `{"amount":` + amount + `}`}, chainArgs...)...)
		var res struct {
			Function string `json:"function"`
			Status   string `json:"status"`
			Output   uint64 `json:"output"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Status != "ok" || res.Function != "counter::add" {
			t.Fatalf("call: %v\n%s", err, out)
		}
		return res.Output
	}
	if got := call("2"); got != 2 {
		t.Fatalf("add 2 output %d", got)
	}
	if got := call("3"); got != 5 {
		t.Fatalf("add 3 after add 2 output %d", got)
	}

	// The CLI deploys the module under its file's name.
	ch := strings.TrimSpace(sh(dir, scraftBin, append([]string{"chain", "create-channel", "--key", key, "--contract", "counter.wasm"}, chainArgs...)...))
	if out := sh(dir, scraftBin, append([]string{"chain", "show", "--json", ch}, chainArgs...)...); !strings.Contains(out, `"contract": "counter"`) {
		t.Fatalf("chain show of the channel created from counter.wasm:\n%s", out)
	}
}
