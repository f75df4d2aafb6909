package contracts

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestAssemblyScriptVersion: the version a new project pins is the one
// package.json, package-lock.json and build.sh build the demos with.
func TestAssemblyScriptVersion(t *testing.T) {
	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	raw, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pkg); err != nil {
		t.Fatal(err)
	}
	if v := pkg.DevDependencies["assemblyscript"]; v != AssemblyScriptVersion {
		t.Fatalf("package.json pins assemblyscript %q, AssemblyScriptVersion is %q", v, AssemblyScriptVersion)
	}
	build, err := os.ReadFile("build.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(build), "ASC_VERSION="+AssemblyScriptVersion+"\n") {
		t.Fatalf("build.sh does not build with assemblyscript %s", AssemblyScriptVersion)
	}
	lock, err := PackageLock("mine")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Name     string `json:"name"`
		Packages map[string]struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(lock, &l); err != nil {
		t.Fatal(err)
	}
	if l.Name != "mine" || l.Packages[""].Name != "mine" || l.Packages["node_modules/assemblyscript"].Version != AssemblyScriptVersion {
		t.Fatalf("lock for mine: %+v", l)
	}
}
