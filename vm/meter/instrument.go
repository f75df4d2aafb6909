package meter

import (
	"fmt"
	"strconv"
	"strings"
)

// Output is an instrumented module and what its host needs to know about
// it.
type Output struct {
	// Wasm is the instrumented module.
	Wasm []byte
	// Globals names the export of every mutable global, in index order,
	// GasGlobal and DepthGlobal included: the state a host saves after
	// instantiation and sets back before it reuses an instance.
	Globals []string
	// StateOp is the first instruction, in function and code order, that
	// changes a table or drops a segment: state that a host restoring
	// memory and globals would not restore. Its Name is "" if there is
	// none.
	StateOp StateOp
	// FrameBytes is the largest native frame bound of a function of the
	// module, in bytes: at most Config.MaxFrameBytes.
	FrameBytes uint64
}

// StateOp is an instruction of the code section and its function index.
type StateOp struct {
	// Name is one of table.set, table.grow, table.fill, table.copy,
	// table.init, elem.drop and data.drop.
	Name string
	Func uint32
}

// Instrument decodes a module with Parse and returns it rewritten to meter
// its own gas and call depth: Parse followed by Module.Instrument.
func Instrument(wasm []byte, cfg Config) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := Parse(wasm)
	if err != nil {
		return nil, err
	}
	out, err := m.Instrument(cfg)
	if err != nil {
		return nil, err
	}
	return out.Wasm, nil
}

// rewriter is the state of one Module.Instrument call.
type rewriter struct {
	*Module
	cfg      Config
	gasIdx   uint32
	depthIdx uint32
	stateOp  StateOp
	frame    uint64 // largest frame bound so far
}

// Instrument returns the module rewritten to meter its own gas and call
// depth (see the package documentation), without its custom sections and
// with an export for every mutable global. It decodes the code section,
// which Parse left alone: an instruction is decoded once, while it is
// rewritten. The input should already have been validated by wazero;
// Instrument still returns an error, never panics or loops, on any bytes.
// The output is a deterministic function of the module and cfg.
func (m *Module) Instrument(cfg Config) (out *Output, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer func() {
		// Belt and braces: a decoder bug must not crash the node. The fuzz
		// targets fail on this message.
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%w: internal error: %v", ErrUnsupported, p)
		}
	}()
	if m.refusal != nil {
		return nil, m.refusal
	}
	if uint64(m.numGlobals)+2 > maxVec {
		return nil, fmt.Errorf("%w: %d globals", ErrTooLarge, m.numGlobals)
	}
	w := &rewriter{Module: m, cfg: cfg, gasIdx: m.numGlobals, depthIdx: m.numGlobals + 1}
	var newCode []byte
	if m.codeIdx >= 0 {
		if newCode, err = w.instrumentCode(); err != nil {
			return nil, err
		}
	}
	exports, globals := w.exportSection()

	wasm := make([]byte, 0, len(m.wasm)+len(m.wasm)/2+64)
	wasm = append(wasm, wasmHeader...)
	wroteGlobals, wroteExports := false, false
	flush := func(rank int) {
		if !wroteGlobals && rank > sectionRank[secGlobal] {
			wasm = appendSection(wasm, secGlobal, w.globalSection())
			wroteGlobals = true
		}
		if !wroteExports && rank > sectionRank[secExport] {
			wasm = appendSection(wasm, secExport, exports)
			wroteExports = true
		}
	}
	for _, s := range m.secs {
		flush(sectionRank[s.id])
		switch s.id {
		case secGlobal:
			wasm = appendSection(wasm, secGlobal, w.globalSection())
			wroteGlobals = true
		case secExport:
			wasm = appendSection(wasm, secExport, exports)
			wroteExports = true
		case secCode:
			wasm = appendSection(wasm, secCode, newCode)
		default:
			wasm = appendSection(wasm, s.id, s.payload)
		}
	}
	flush(len(sectionRank) + 1)
	if len(wasm) > MaxOutputSize {
		return nil, fmt.Errorf("%w: instrumented module of %d bytes (limit %d)", ErrTooLarge, len(wasm), MaxOutputSize)
	}
	return &Output{Wasm: wasm, Globals: globals, StateOp: w.stateOp, FrameBytes: w.frame}, nil
}

func appendSection(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(payload)))
	return append(out, payload...)
}

// globalSection is the global section with the gas and depth globals
// appended: appending shifts no existing index.
func (w *rewriter) globalSection() []byte {
	b := appendU32(nil, w.numDefined+2)
	b = append(b, w.definedGlobals...)
	b = append(b, valI64, 0x01, 0x42)
	b = appendS64(b, int64(w.cfg.StartGas))
	b = append(b, 0x0b)
	b = append(b, valI32, 0x01, 0x41, 0x00, 0x0b)
	return b
}

// exportSection is the export section with the gas and depth globals
// appended, then an export named GlobalExportPrefix + index for every other
// mutable global that has none, so that a host can save and restore them
// all. It also returns the export name of every mutable global in index
// order: its first export, or the one added.
func (w *rewriter) exportSection() ([]byte, []string) {
	exported := make(map[uint32]string)
	for _, ex := range w.Exports {
		if _, ok := exported[ex.Index]; ex.Kind == KindGlobal && !ok {
			exported[ex.Index] = ex.Name
		}
	}
	var names []string
	var added []byte
	nadded := 0
	for _, idx := range w.mutable {
		name, ok := exported[idx]
		if !ok {
			name = GlobalExportPrefix + strconv.FormatUint(uint64(idx), 10)
			added = appendExport(added, name, idx)
			nadded++
		}
		names = append(names, name)
	}
	names = append(names, GasGlobal, DepthGlobal)

	b := appendU32(nil, uint32(len(w.Exports)+2+nadded))
	b = append(b, w.exportPayload...)
	b = appendExport(b, GasGlobal, w.gasIdx)
	b = appendExport(b, DepthGlobal, w.depthIdx)
	return append(b, added...), names
}

func appendExport(b []byte, name string, global uint32) []byte {
	b = appendU32(b, uint32(len(name)))
	b = append(b, name...)
	b = append(b, 0x03) // global
	return appendU32(b, global)
}

// reservedExport reports whether an export name is one Instrument adds.
func reservedExport(name string) bool {
	return name == GasGlobal || name == DepthGlobal || strings.HasPrefix(name, GlobalExportPrefix)
}
