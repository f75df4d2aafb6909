// Package lint guards the architecture: the import edges between scraft's
// packages must follow the dependency direction of DESIGN §1, and what an
// application imports (the SDK) must not drag in the node.
package lint

import (
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Module is the module path of scraft.
const Module = "github.com/scraft/scraft"

// Allowed maps each package group to the groups its non-test code may
// import. A package belongs to the longest group that prefixes its path, so
// generated subpackages (transport/raftpb) belong to their parent. Importing
// inside one's own group is always allowed. "*" allows everything.
// delegate is the one policy the chain's rules and the nodes share, so it
// stands below both and imports nothing of scraft but protocol.
var Allowed = map[string][]string{
	"protocol":            {},
	"vm/meter":            {},
	"vm":                  {"protocol", "vm/meter"},
	"fsm":                 {"protocol"},
	"settlement":          {"protocol", "settlement/contract"},
	"settlement/contract": {"protocol", "delegate"},
	"settlement/devchain": {"protocol", "settlement", "settlement/contract", "delegate"},
	"cluster":             {"protocol", "fsm", "settlement", "settlement/contract", "delegate"},
	"delegate":            {"protocol"},
	"settlement/comet":    {"protocol", "settlement", "settlement/contract", "settlement/devchain", "delegate"},
	"transport":           {"protocol"},
	"clientapi":           {"protocol"},
	"client":              {"protocol", "clientapi"},
	"contracts":           {"protocol"},
	"console":             {"protocol", "client", "clientapi", "contracts"},
	"internal/testutil":   {},
	"internal/lint":       {},
	"internal/backoff":    {},
	"cmd/scraft":          {"*"},
	"integration":         {"*"},
}

// everywhere lists leaf helpers that any package may import: they import
// nothing of scraft's and hold no policy of their own.
var everywhere = []string{"internal/backoff"}

// testForbidden lists what even tests may not import: nothing imports the
// command or the integration suite.
var testForbidden = []string{"cmd/scraft", "integration"}

// Violation is one import edge that the rules refuse.
type Violation struct {
	File   string
	From   string // importing package, relative to the module
	To     string // imported package, relative to the module
	Reason string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: %s imports %s: %s", v.File, v.From, v.To, v.Reason)
}

// Group returns the rule group of a package path relative to the module, or
// "" when no group covers it.
func Group(rel string) string {
	best := ""
	for g := range Allowed {
		if (rel == g || strings.HasPrefix(rel, g+"/")) && len(g) > len(best) {
			best = g
		}
	}
	return best
}

// Check returns the violations of one import edge. test says whether the
// importing file is a _test.go file, which may import any package but the
// command and the integration suite.
func Check(file, from, to string, test bool) []Violation {
	fg, tg := Group(from), Group(to)
	bad := func(reason string) []Violation {
		return []Violation{{File: file, From: from, To: to, Reason: reason}}
	}
	switch {
	case fg == "":
		return bad("package " + from + " is not in the layout of DESIGN §1")
	case tg == "":
		return bad("package " + to + " is not in the layout of DESIGN §1")
	case fg == tg, slices.Contains(everywhere, tg):
		return nil
	case slices.Contains(testForbidden, tg) && fg != "cmd/scraft" && fg != "integration":
		return bad("nobody imports " + tg)
	case test:
		return nil
	}
	allowed := Allowed[fg]
	if slices.Contains(allowed, "*") || slices.Contains(allowed, tg) {
		return nil
	}
	return bad(fmt.Sprintf("%s may import only %v", fg, allowed))
}

// CheckTree walks the module rooted at root and checks every import of every
// Go file (vendor, testdata and node_modules folders skipped).
func CheckTree(root string) ([]Violation, error) {
	var out []Violation
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "vendor", "testdata", "node_modules", ".git", ".bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if p != Module && !strings.HasPrefix(p, Module+"/") {
				continue
			}
			to := strings.TrimPrefix(strings.TrimPrefix(p, Module), "/")
			fileRel, _ := filepath.Rel(root, path)
			out = append(out, Check(fileRel, rel, to, strings.HasSuffix(path, "_test.go"))...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ModuleRoot finds the folder holding go.mod, from dir upwards.
func ModuleRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("lint: no go.mod above %s", dir)
		}
		dir = parent
	}
}

// NodeOnly lists the modules that make a node and that an application
// using the SDK must not link: Raft, its bbolt store, the WASM runtime.
var NodeOnly = []string{
	"github.com/hashicorp/raft",
	"go.etcd.io/bbolt",
	"github.com/tetratelabs/wazero",
}

// LeanPackages are the packages whose whole dependency closure must stay
// free of NodeOnly: the Go SDK and the client API it speaks.
var LeanPackages = []string{"client", "clientapi"}

// ForbiddenDeps returns the packages in the dependency closure of pkg
// (relative to the module rooted at root; `go list -deps`) that belong to
// one of the forbidden module paths, with the path that forbids each.
func ForbiddenDeps(root, pkg string, forbidden []string) ([]string, error) {
	cmd := exec.Command("go", "list", "-deps", "./"+pkg)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("lint: go list -deps ./%s: %w: %s", pkg, err, stderr.String())
	}
	var bad []string
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				bad = append(bad, fmt.Sprintf("%s (%s)", dep, f))
			}
		}
	}
	return bad, nil
}
