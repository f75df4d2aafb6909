package vm

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm/meter"
)

// features are the WASM features contracts may use: WASM 2.0 without SIMD
// (floats, including the float SIMD lanes, are rejected by the meter
// anyway). One fixed set, so every node validates alike.
const features = api.CoreFeaturesV2 &^ api.CoreFeatureSIMD

// DomainCode is the hashing domain of contract code.
const DomainCode = "scraft/code/v1"

// CodeHash identifies contract code: the hash of its original bytes, before
// instrumentation.
func CodeHash(wasm []byte) protocol.Hash { return protocol.HashOf(DomainCode, wasm) }

// Engine compiles and runs contracts. It owns one wazero runtime with the
// compiler engine and the scraft host module; modules deployed on it share
// both. Deploy and Module.Call are safe for concurrent use; Close waits for
// running calls.
type Engine struct {
	cfg       Config
	runtime   wazero.Runtime // compiler: runs contracts
	validator wazero.Runtime // interpreter: validates raw modules only
	cache     wazero.CompilationCache

	// life is held for reading by every call and deploy, for writing by
	// Close, so Close never pulls a runtime from under a running call.
	life   sync.RWMutex
	closed bool

	mu      sync.Mutex
	modules map[protocol.Hash]*deployment
}

// deployment is one code hash being or having been deployed; concurrent
// Deploys of the same code wait on done instead of compiling twice.
type deployment struct {
	done chan struct{}
	mod  *Module
	err  error
}

// NewEngine starts an engine. It refuses platforms without the wazero
// compiler: the interpreter is not bit-for-bit interchangeable with it (NaN
// bits, stack depth), so mixing engines across nodes is not allowed.
func NewEngine(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	switch runtime.GOARCH {
	case "amd64", "arm64":
	default:
		return nil, fmt.Errorf("%w: %s/%s", ErrUnsupportedPlatform, runtime.GOOS, runtime.GOARCH)
	}
	rc := wazero.NewRuntimeConfigCompiler().
		WithCoreFeatures(features).
		// The page limit is enforced by our memory allocator (see
		// memory.go) so that reaching it can be told apart from other traps.
		WithMemoryLimitPages(MaxMemoryPages).
		WithCloseOnContextDone(false).
		WithDebugInfoEnabled(false)
	e := &Engine{cfg: cfg, modules: map[protocol.Hash]*deployment{}}
	if cfg.CompilationCacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CompilationCacheDir)
		if err != nil {
			return nil, fmt.Errorf("vm: compilation cache %s: %w", cfg.CompilationCacheDir, err)
		}
		e.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	e.runtime = wazero.NewRuntimeWithConfig(ctx, rc)
	e.validator = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().
		WithCoreFeatures(features).
		WithMemoryLimitPages(MaxMemoryPages))
	if err := instantiateHost(ctx, e.runtime); err != nil {
		_ = e.Close(ctx)
		return nil, fmt.Errorf("vm: host module: %w", err)
	}
	return e, nil
}

// Config returns the engine's configuration with defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Close releases the runtime and every module deployed on it. It waits for
// running calls; calls after Close fail. Safe to call twice.
func (e *Engine) Close(ctx context.Context) error {
	e.life.Lock()
	defer e.life.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	err := e.runtime.Close(ctx)
	if verr := e.validator.Close(ctx); err == nil {
		err = verr
	}
	if e.cache != nil {
		if cerr := e.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// Deploy validates, checks, instruments and compiles a contract, and
// prepares its first instance. Deploying code that is already deployed
// returns the same *Module at once. A refused module gives a *DeployError
// saying exactly what is wrong.
func (e *Engine) Deploy(ctx context.Context, wasm []byte) (*Module, error) {
	e.life.RLock()
	defer e.life.RUnlock()
	if e.closed {
		return nil, ErrClosed
	}
	h := CodeHash(wasm)
	e.mu.Lock()
	if d, ok := e.modules[h]; ok {
		e.mu.Unlock()
		select {
		case <-d.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if d.err != nil {
			return nil, d.err
		}
		return d.mod, nil
	}
	d := &deployment{done: make(chan struct{})}
	e.modules[h] = d
	e.mu.Unlock()

	d.mod, d.err = e.deploy(ctx, h, wasm)
	if d.err != nil {
		// Refusals are not kept: garbage must not fill the map.
		e.mu.Lock()
		delete(e.modules, h)
		e.mu.Unlock()
	}
	close(d.done)
	return d.mod, d.err
}

func (e *Engine) deploy(ctx context.Context, h protocol.Hash, wasm []byte) (m *Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, deployErr(ErrInvalidModule, "internal error while loading the module: %v", r)
		}
	}()
	if len(wasm) > meter.MaxModuleSize {
		return nil, deployErr(ErrInvalidModule, "module is %d bytes, more than the %d allowed", len(wasm), meter.MaxModuleSize)
	}
	// Our own bounded walk first: wazero's decoder trusts declared sizes.
	wasm, err = preflight(wasm)
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "invalid WASM: %v", err)
	}
	// wazero validates the module next, so everything after works on a
	// valid module and a contract cannot refer to what we add later.
	raw, err := e.validator.CompileModule(ctx, wasm)
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "invalid WASM: %s", firstLine(err.Error()))
	}
	defer raw.Close(ctx)
	entries, err := checkABI(raw, wasm, e.cfg)
	if err != nil {
		return nil, err
	}
	if op, fn, err := findStatefulOp(wasm); err != nil {
		return nil, deployErr(ErrInvalidModule, "reading code: %v", err)
	} else if op != "" {
		return nil, deployErr(ErrNotDeterministic,
			"function %d uses %s: contracts may not change tables or drop segments, that state would outlive the call", fn, op)
	}
	metered, err := meter.Instrument(wasm, e.cfg.Meter)
	if err != nil {
		return nil, &DeployError{Status: protocol.StatusInvalidModule, Msg: err.Error(), Err: err}
	}
	code, globals, err := exportMutableGlobals(metered)
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "exporting globals: %v", err)
	}
	compiled, err := e.runtime.CompileModule(ctx, code)
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "compile: %s", firstLine(err.Error()))
	}
	m = &Module{
		e:        e,
		hash:     h,
		compiled: compiled,
		names:    entries,
		index:    make(map[string]int, len(entries)),
		globals:  globals,
	}
	for i, n := range entries {
		m.index[n] = i
	}
	inst, err := m.newInstance(ctx)
	if err != nil {
		compiled.Close(ctx)
		return nil, deployErr(ErrStart, "%v", err)
	}
	m.snap = inst.snapshot()
	m.idle = append(m.idle, inst)
	return m, nil
}

// reservedPrefix starts every export name the vm or the meter adds.
const reservedPrefix = "scraft_"

// checkABI checks a validated module against the scraft ABI v1 and returns
// its entry functions, sorted.
func checkABI(raw wazero.CompiledModule, wasm []byte, cfg Config) ([]string, error) {
	wm, err := parseModule(wasm)
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "reading module: %v", err)
	}
	for _, im := range wm.imports {
		switch {
		case strings.HasPrefix(im.module, "wasi"):
			return nil, deployErr(ErrABI, "imports %s.%s: WASI is not available to contracts; only the %q module may be imported",
				im.module, im.name, hostModule)
		case im.module != hostModule:
			return nil, deployErr(ErrABI, "imports %s.%s: only the %q module may be imported", im.module, im.name, hostModule)
		case im.kind != kindFunc:
			return nil, deployErr(ErrABI, "imports %s.%s as a %s: only functions may be imported", im.module, im.name, kindName(im.kind))
		}
	}
	for _, f := range raw.ImportedFunctions() {
		_, name, _ := f.Import()
		hf := hostFunctionByName(name)
		if hf == nil {
			return nil, deployErr(ErrABI, "imports %s.%s: no such function in ABI v1 (it has %s)",
				hostModule, name, strings.Join(hostFunctionNames(), ", "))
		}
		if !slices.Equal(f.ParamTypes(), hf.params) || !slices.Equal(f.ResultTypes(), hf.results) {
			return nil, deployErr(ErrABI, "imports %s.%s with type %s, ABI v1 has %s",
				hostModule, name, sig(f.ParamTypes(), f.ResultTypes()), sig(hf.params, hf.results))
		}
	}
	for _, ex := range wm.exports {
		if strings.HasPrefix(ex.name, reservedPrefix) {
			return nil, deployErr(ErrABI, "exports %q: names starting with %q are reserved", ex.name, reservedPrefix)
		}
	}
	mem, ok := raw.ExportedMemories()["memory"]
	if !ok {
		return nil, deployErr(ErrABI, `does not export its memory as "memory"`)
	}
	if mem.Min() > cfg.MemoryLimitPages {
		return nil, deployErr(ErrABI, "memory starts at %d pages, more than the limit of %d pages", mem.Min(), cfg.MemoryLimitPages)
	}
	fns := raw.ExportedFunctions()
	entries := make([]string, 0, len(fns))
	for name, f := range fns {
		if !slices.Equal(f.ParamTypes(), entryParams) || !slices.Equal(f.ResultTypes(), entryResults) {
			return nil, deployErr(ErrABI, "exports function %q with type %s: entry functions must be %s",
				name, sig(f.ParamTypes(), f.ResultTypes()), sig(entryParams, entryResults))
		}
		entries = append(entries, name)
	}
	slices.Sort(entries)
	return entries, nil
}

var (
	entryParams  = []api.ValueType{api.ValueTypeI32}
	entryResults = []api.ValueType{api.ValueTypeI32}
)

func sig(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(params) + ") -> (" + names(results) + ")"
}

func kindName(k byte) string {
	switch k {
	case kindFunc:
		return "function"
	case kindTable:
		return "table"
	case kindMemory:
		return "memory"
	case kindGlobal:
		return "global"
	}
	return fmt.Sprintf("kind %d", k)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, " (recovered by wazero)")
}
