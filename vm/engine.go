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

// parse decodes a module for deploy; a variable so that tests can count
// the decodes.
var parse = meter.Parse

func (e *Engine) deploy(ctx context.Context, h protocol.Hash, wasm []byte) (m *Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, deployErr(ErrInvalidModule, "internal error while loading the module: %v", r)
		}
	}()
	if len(wasm) > meter.MaxModuleSize {
		return nil, deployErr(ErrInvalidModule, "module is %d bytes, more than the %d allowed", len(wasm), meter.MaxModuleSize)
	}
	// The one decode of the module: bounded, so it may run before wazero,
	// whose decoder trusts declared sizes.
	parsed, err := parse(wasm)
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "invalid WASM: %v", err)
	}
	// wazero validates the module next, so everything after works on a
	// valid module and a contract cannot refer to what we add later.
	raw, err := e.validator.CompileModule(ctx, parsed.Stripped())
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "invalid WASM: %s", firstLine(err.Error()))
	}
	raw.Close(ctx)
	entries, err := checkABI(parsed, e.cfg)
	if err != nil {
		return nil, err
	}
	metered, err := parsed.Instrument(e.cfg.Meter)
	if err != nil {
		return nil, &DeployError{Status: protocol.StatusInvalidModule, Msg: err.Error(), Err: err}
	}
	if op := metered.StateOp; op.Name != "" {
		return nil, deployErr(ErrNotDeterministic,
			"function %d uses %s: contracts may not change tables or drop segments, that state would outlive the call", op.Func, op.Name)
	}
	compiled, err := e.runtime.CompileModule(ctx, metered.Wasm)
	if err != nil {
		return nil, deployErr(ErrInvalidModule, "compile: %s", firstLine(err.Error()))
	}
	m = &Module{
		e:        e,
		hash:     h,
		compiled: compiled,
		names:    entries,
		index:    make(map[string]int, len(entries)),
		globals:  metered.Globals,
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

// checkABI checks a module against the scraft ABI v1 and returns its entry
// functions, sorted.
func checkABI(m *meter.Module, cfg Config) ([]string, error) {
	for _, im := range m.Imports {
		switch {
		case strings.HasPrefix(im.Module, "wasi"):
			return nil, deployErr(ErrABI, "imports %s.%s: WASI is not available to contracts; only the %q module may be imported",
				im.Module, im.Name, hostModule)
		case im.Module != hostModule:
			return nil, deployErr(ErrABI, "imports %s.%s: only the %q module may be imported", im.Module, im.Name, hostModule)
		case im.Kind != meter.KindFunc:
			return nil, deployErr(ErrABI, "imports %s.%s as a %s: only functions may be imported", im.Module, im.Name, im.Kind)
		}
	}
	for _, im := range m.Imports {
		hf := hostFunctionByName(im.Name)
		if hf == nil {
			return nil, deployErr(ErrABI, "imports %s.%s: no such function in ABI v1 (it has %s)",
				hostModule, im.Name, strings.Join(hostFunctionNames(), ", "))
		}
		params, results := valueTypes(im.Type.Params), valueTypes(im.Type.Results)
		if !slices.Equal(params, hf.params) || !slices.Equal(results, hf.results) {
			return nil, deployErr(ErrABI, "imports %s.%s with type %s, ABI v1 has %s",
				hostModule, im.Name, sig(params, results), sig(hf.params, hf.results))
		}
	}
	for _, ex := range m.Exports {
		if strings.HasPrefix(ex.Name, reservedPrefix) {
			return nil, deployErr(ErrABI, "exports %q: names starting with %q are reserved", ex.Name, reservedPrefix)
		}
	}
	hasMemory := false
	for _, ex := range m.Exports {
		hasMemory = hasMemory || ex.Kind == meter.KindMemory && ex.Name == "memory"
	}
	if !hasMemory || m.Memory == nil {
		return nil, deployErr(ErrABI, `does not export its memory as "memory"`)
	}
	if m.Memory.Min > cfg.MemoryLimitPages {
		return nil, deployErr(ErrABI, "memory starts at %d pages, more than the limit of %d pages", m.Memory.Min, cfg.MemoryLimitPages)
	}
	entries := make([]string, 0, len(m.Exports))
	for _, ex := range m.Exports {
		if ex.Kind != meter.KindFunc {
			continue
		}
		ft, _ := m.Func(ex.Index)
		params, results := valueTypes(ft.Params), valueTypes(ft.Results)
		if !slices.Equal(params, entryParams) || !slices.Equal(results, entryResults) {
			return nil, deployErr(ErrABI, "exports function %q with type %s: entry functions must be %s",
				ex.Name, sig(params, results), sig(entryParams, entryResults))
		}
		entries = append(entries, ex.Name)
	}
	slices.Sort(entries)
	return entries, nil
}

// valueTypes converts the meter's value types to wazero's: both are the
// types' binary encodings.
func valueTypes(ts []meter.ValueType) []api.ValueType {
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t)
	}
	return out
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

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, " (recovered by wazero)")
}
