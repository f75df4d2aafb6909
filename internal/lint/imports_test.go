package lint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLayoutImports(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := ModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := CheckTree(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
}

func TestCheckCatchesViolations(t *testing.T) {
	cases := []struct {
		name     string
		from, to string
		test     bool
		bad      bool
	}{
		{"fsm may not import cluster", "fsm", "cluster", false, true},
		{"protocol imports nothing", "protocol", "vm", false, true},
		{"vm uses protocol", "vm", "protocol", false, false},
		{"vm uses its meter", "vm", "vm/meter", false, false},
		{"generated subpackage is its parent's", "transport/raftpb", "protocol", false, false},
		{"cluster may not import transport", "cluster", "transport", false, true},
		{"tests may import more", "cluster", "transport", true, false},
		{"even tests never import cmd", "cluster", "cmd/scraft", true, true},
		{"unknown package", "stuff", "protocol", false, true},
		{"cmd imports anything", "cmd/scraft", "cluster", false, false},
		{"the SDK speaks the client API", "client", "clientapi/clientpb", false, false},
		{"the SDK never imports transport", "client", "transport", false, true},
		{"the client API never imports transport", "clientapi", "transport", false, true},
		{"rpcerr is protocol's", "protocol/rpcerr", "protocol", false, false},
		{"the delegate policy uses protocol", "delegate", "protocol", false, false},
		{"the delegate policy never imports the chain's rules", "delegate", "settlement/contract", false, true},
		{"the delegate policy never imports fsm", "delegate", "fsm", false, true},
		{"the delegate policy never imports cluster", "delegate", "cluster", false, true},
		{"the chain's rules share the delegate policy", "settlement/contract", "delegate", false, false},
		{"nodes share the delegate policy", "cluster", "delegate", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Check("x.go", tc.from, tc.to, tc.test)
			if (len(got) > 0) != tc.bad {
				t.Fatalf("Check(%s → %s) = %v, want bad=%v", tc.from, tc.to, got, tc.bad)
			}
		})
	}
}

// TestSDKStaysLean: an application that imports the SDK links no Raft, no
// bbolt and no wazero, directly or through any package of the closure.
func TestSDKStaysLean(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := ModuleRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range LeanPackages {
		bad, err := ForbiddenDeps(root, pkg, NodeOnly)
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) > 0 {
			t.Errorf("./%s depends on node-only packages: %v", pkg, bad)
		}
	}
	// The check itself sees them where they are.
	bad, err := ForbiddenDeps(root, "cluster", NodeOnly)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) == 0 {
		t.Fatal("./cluster links raft, yet ForbiddenDeps found nothing")
	}
}

// A real file with a forbidden import in a scratch module is reported.
func TestCheckTreeFindsBadFile(t *testing.T) {
	root := t.TempDir()
	must := func(path, body string) {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must("go.mod", "module "+Module+"\n")
	must("fsm/bad.go", "package fsm\nimport _ \""+Module+"/cluster\"\n")
	must("cluster/ok.go", "package cluster\nimport _ \""+Module+"/fsm\"\n")
	vs, err := CheckTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || !strings.Contains(vs[0].String(), "fsm imports cluster") {
		t.Fatalf("violations %v", vs)
	}
}
