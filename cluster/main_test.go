package cluster

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/devchain"
)

// chainChildEnv makes the test binary serve a devchain in the folder it
// names instead of running tests (startChainChild).
const chainChildEnv = "SCRAFT_CLUSTER_CHAIN_CHILD"

// TestMain fails the package's tests when goroutines outlive them: every
// node, channel, loop and chain feed the tests start must be stopped.
func TestMain(m *testing.M) {
	if dir := os.Getenv(chainChildEnv); dir != "" {
		if err := runChainChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "chain child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// runChainChild serves a devchain (default config: 200 ms blocks) in dir
// over gRPC and TLS with a new chain key, and writes its address and the
// key's address to dir/addr. It runs until killed.
func runChainChild(dir string) error {
	cfg := devchain.DefaultConfig(dir)
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "chain", Level: hclog.Info, Output: os.Stderr})
	c, err := devchain.Open(cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	key, err := protocol.GenerateKey(nil)
	if err != nil {
		return err
	}
	g, err := devchain.NewGRPCServer(c, key)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "addr.tmp")
	if err := os.WriteFile(tmp, []byte(l.Addr().String()+"\n"+key.Address().String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "addr")); err != nil {
		return err
	}
	return g.Serve(l)
}

// startChainChild runs a devchain in its own process and returns the
// process, the chain's address and its key's.
func startChainChild(t testing.TB) (*exec.Cmd, string, protocol.Address) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), chainChildEnv+"="+dir)
	logf, err := os.Create(filepath.Join(dir, "chain.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var addr string
	var key protocol.Address
	testutil.WaitFor(t, 20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(dir, "addr"))
		if err != nil {
			return err
		}
		a, k, ok := strings.Cut(string(b), "\n")
		if !ok {
			return fmt.Errorf("chain child's addr file %q", b)
		}
		addr = a
		key, err = protocol.ParseAddress(k)
		return err
	})
	return cmd, addr, key
}
