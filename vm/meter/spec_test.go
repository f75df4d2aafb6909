package meter

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// specModules returns the core v2 spec test modules shipped in wazero's
// module directory, or skips.
func specModules(t testing.TB) []string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		t.Skipf("locating wazero: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "internal", "integration_test", "spectest", "v2", "testdata")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.wasm"))
	if len(paths) == 0 {
		t.Skipf("no spec modules in %s", dir)
	}
	sort.Strings(paths)
	return paths
}

// TestSpecModules instruments every module of the WebAssembly core v2 spec
// tests: a module wazero accepts is never called malformed, its output
// validates, and its zero-argument integer functions behave as before.
func TestSpecModules(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().
		WithCoreFeatures(features).WithCloseOnContextDone(true))
	defer r.Close(ctx)
	var valid, instrumented, floats, simd, calls int
	for _, p := range specModules(t) {
		wasm, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out, ierr := Instrument(wasm, DefaultConfig())
		if ierr != nil && strings.Contains(ierr.Error(), "internal error") {
			t.Fatalf("%s: %v", filepath.Base(p), ierr)
		}
		cm, err := r.CompileModule(ctx, wasm)
		if err != nil {
			continue
		}
		valid++
		switch {
		case errors.Is(ierr, ErrFloat):
			floats++
			continue
		case errors.Is(ierr, ErrUnsupported) && strings.Contains(ierr.Error(), "v128"):
			simd++
			continue
		case ierr != nil:
			t.Errorf("%s: valid module rejected: %v", filepath.Base(p), ierr)
			continue
		}
		instrumented++
		if _, err := r.CompileModule(ctx, out); err != nil {
			t.Errorf("%s: output does not validate: %v", filepath.Base(p), err)
			continue
		}
		if len(cm.ImportedFunctions()) > 0 || len(cm.ImportedMemories()) > 0 {
			continue
		}
		calls += compareZeroArgCalls(t, r, filepath.Base(p), wasm, out)
	}
	t.Logf("%d valid modules: %d instrumented, %d rejected for floats, %d for SIMD; %d calls compared",
		valid, instrumented, floats, simd, calls)
}

func compareZeroArgCalls(t *testing.T, r wazero.Runtime, file string, wasm, out []byte) int {
	plain, err := tryInstantiate(r, wasm)
	if err != nil {
		return 0 // e.g. an imported global or table
	}
	defer plain.mod.Close(context.Background())
	var names []string
	for n, d := range plain.mod.ExportedFunctionDefinitions() {
		if len(d.ParamTypes()) == 0 && len(d.ResultTypes()) <= 1 &&
			(len(d.ResultTypes()) == 0 || d.ResultTypes()[0] == api.ValueTypeI32 || d.ResultTypes()[0] == api.ValueTypeI64) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	n := 0
	for _, name := range names {
		// Fresh instances each time: spec functions mutate state.
		p, err := tryInstantiate(r, wasm)
		if err != nil {
			return n
		}
		in, err := tryInstantiate(r, out)
		if err != nil {
			t.Errorf("%s: instrumented instance: %v", file, err)
			return n
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		want, werr := p.mod.ExportedFunction(name).Call(ctx)
		cancel()
		p.mod.Close(context.Background())
		if errors.Is(werr, context.DeadlineExceeded) || (werr != nil && strings.Contains(werr.Error(), "stack overflow")) {
			continue // runaway: the uninstrumented run has no bound to compare with
		}
		in.gas.Set(uint64(plenty))
		in.depth.Set(0)
		got, gerr := in.mod.ExportedFunction(name).Call(context.Background())
		in.mod.Close(context.Background())
		if (werr != nil) != (gerr != nil) || (werr == nil && len(want) > 0 && want[0] != got[0]) {
			t.Errorf("%s %s(): got %v %v, want %v %v", file, name, got, gerr, want, werr)
		}
		n++
	}
	return n
}
