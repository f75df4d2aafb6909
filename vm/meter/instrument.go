package meter

import (
	"bytes"
	"fmt"
)

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// sectionRank is the order in which known sections must appear; 0 for
// unknown ids.
var sectionRank = [...]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5,
	secGlobal: 6, secExport: 7, secStart: 8, secElement: 9, secDataCount: 10,
	secCode: 11, secData: 12,
}

// Value types.
const (
	valI32       = 0x7f
	valI64       = 0x7e
	valF32       = 0x7d
	valF64       = 0x7c
	valV128      = 0x7b
	valFuncref   = 0x70
	valExternref = 0x6f
)

var wasmHeader = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

type funcType struct {
	params, results uint32
}

// module holds what the code rewrite needs to know about the module.
type module struct {
	cfg Config

	types      []funcType
	funcTypes  []uint32 // type index of every function, imports first
	numImports uint32   // imported functions
	numGlobals uint32   // imported + defined globals, before ours
	gasIdx     uint32
	depthIdx   uint32

	definedGlobals []byte // global section payload without its count
	numDefined     uint32
	exports        []byte // export section payload without its count
	numExports     uint32
}

type section struct {
	id      byte
	payload []byte
	offset  int // absolute offset of payload
}

// Instrument returns the module rewritten to meter its own gas and call
// depth (see the package documentation). The input should already have been
// validated by wazero; Instrument still returns an error, never panics or
// loops, on any bytes. The output is a deterministic function of the input
// and cfg.
func Instrument(wasm []byte, cfg Config) (out []byte, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	defer func() {
		// Belt and braces: a decoder bug must not crash the node. The fuzz
		// target fails on this message.
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%w: internal error: %v", ErrUnsupported, p)
		}
	}()
	if len(wasm) > MaxModuleSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(wasm), MaxModuleSize)
	}
	if len(wasm) < len(wasmHeader) || !bytes.Equal(wasm[:len(wasmHeader)], wasmHeader) {
		return nil, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	secs, err := splitSections(wasm)
	if err != nil {
		return nil, err
	}
	m := &module{cfg: cfg}
	var code *section
	for i := range secs {
		s := &secs[i]
		r := &reader{b: s.payload, base: s.offset}
		switch s.id {
		case secType:
			err = m.readTypes(r)
		case secImport:
			err = m.readImports(r)
		case secFunction:
			err = m.readFunctions(r)
		case secGlobal:
			err = m.readGlobals(r)
		case secExport:
			err = m.readExports(r)
		case secTable:
			err = readTables(r)
		case secMemory:
			err = readMemories(r)
		case secStart:
			err = m.readStart(r)
		case secElement:
			err = m.readElements(r)
		case secDataCount:
			if _, err = r.u32(); err == nil {
				err = expectEnd(r, "data count section")
			}
		case secData:
			err = m.readData(r)
		case secCustom:
			if _, err = r.name(); err != nil {
				err = fmt.Errorf("custom section at offset %#x: %w", s.offset, err)
			}
		case secCode:
			code = s
		}
		if err != nil {
			return nil, err
		}
	}
	if uint64(m.numGlobals)+2 > maxVec {
		return nil, fmt.Errorf("%w: %d globals", ErrTooLarge, m.numGlobals)
	}
	m.gasIdx = m.numGlobals
	m.depthIdx = m.numGlobals + 1

	var newCode []byte
	if code != nil {
		if newCode, err = m.instrumentCode(&reader{b: code.payload, base: code.offset}); err != nil {
			return nil, err
		}
	} else if len(m.funcTypes) != int(m.numImports) {
		return nil, fmt.Errorf("%w: functions declared without a code section", ErrMalformed)
	}

	out = make([]byte, 0, len(wasm)+len(wasm)/2+64)
	out = append(out, wasmHeader...)
	wroteGlobals, wroteExports := false, false
	flush := func(rank int) {
		if !wroteGlobals && rank > sectionRank[secGlobal] {
			out = appendSection(out, secGlobal, m.globalSection())
			wroteGlobals = true
		}
		if !wroteExports && rank > sectionRank[secExport] {
			out = appendSection(out, secExport, m.exportSection())
			wroteExports = true
		}
	}
	for _, s := range secs {
		if s.id != secCustom {
			flush(sectionRank[s.id])
		}
		switch s.id {
		case secGlobal:
			out = appendSection(out, secGlobal, m.globalSection())
			wroteGlobals = true
		case secExport:
			out = appendSection(out, secExport, m.exportSection())
			wroteExports = true
		case secCode:
			out = appendSection(out, secCode, newCode)
		default:
			out = appendSection(out, s.id, s.payload)
		}
	}
	flush(len(sectionRank) + 1)
	if len(out) > MaxOutputSize {
		return nil, fmt.Errorf("%w: instrumented module of %d bytes (limit %d)", ErrTooLarge, len(out), MaxOutputSize)
	}
	return out, nil
}

// splitSections walks the section headers, checking order and sizes.
func splitSections(wasm []byte) ([]section, error) {
	r := &reader{b: wasm, pos: len(wasmHeader)}
	var secs []section
	lastRank := 0
	for !r.done() {
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, err
		}
		off := r.off()
		payload, err := r.bytes(int(size))
		if err != nil {
			return nil, err
		}
		if id != secCustom {
			if int(id) >= len(sectionRank) || sectionRank[id] == 0 {
				return nil, fmt.Errorf("%w: section id %d at offset %#x", ErrUnsupported, id, off)
			}
			if sectionRank[id] <= lastRank {
				return nil, fmt.Errorf("%w: section id %d out of order at offset %#x", ErrMalformed, id, off)
			}
			lastRank = sectionRank[id]
		}
		if len(secs) >= 10_000 {
			return nil, fmt.Errorf("%w: too many sections", ErrTooLarge)
		}
		secs = append(secs, section{id: id, payload: payload, offset: off})
	}
	return secs, nil
}

func appendSection(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(payload)))
	return append(out, payload...)
}

// place names what is being decoded, for error messages; formatted only
// when an error occurs.
type place struct {
	what string
	idx  int
}

func (p place) String() string { return fmt.Sprintf("%s %d", p.what, p.idx) }

// valType reads a value type allowed in a function signature, local or
// global: i32, i64, funcref, externref.
func valType(r *reader, where place) error {
	at := r.off()
	t, err := r.byte()
	if err != nil {
		return err
	}
	return checkValType(t, where, at)
}

func checkValType(t byte, where place, at int) error {
	switch t {
	case valI32, valI64, valFuncref, valExternref:
		return nil
	case valF32, valF64:
		return fmt.Errorf("%w: %s at offset %#x: %s", ErrFloat, where, at, valTypeName(t))
	case valV128:
		return fmt.Errorf("%w: v128 in %s at offset %#x", ErrUnsupported, where, at)
	default:
		return fmt.Errorf("%w: %s at offset %#x: value type %#x", ErrMalformed, where, at, t)
	}
}

func valTypeName(t byte) string {
	switch t {
	case valF32:
		return "f32"
	case valF64:
		return "f64"
	}
	return fmt.Sprintf("%#x", t)
}

func (m *module) readTypes(r *reader) error {
	n, err := r.count("types", maxVec)
	if err != nil {
		return err
	}
	m.types = make([]funcType, 0, n)
	for i := 0; i < n; i++ {
		where := place{"type", i}
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return r.errorf("type %d: form %#x", i, form)
		}
		var ft funcType
		for k := 0; k < 2; k++ {
			c, err := r.count("value types", maxVec)
			if err != nil {
				return err
			}
			for j := 0; j < c; j++ {
				if err := valType(r, where); err != nil {
					return err
				}
			}
			if k == 0 {
				ft.params = uint32(c)
			} else {
				ft.results = uint32(c)
			}
		}
		m.types = append(m.types, ft)
	}
	return expectEnd(r, "type section")
}

func expectEnd(r *reader, what string) error {
	if !r.done() {
		return r.errorf("%d trailing bytes in %s", r.remaining(), what)
	}
	return nil
}

func limits(r *reader) error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	switch flag {
	case 0x00:
		_, err = r.u32()
	case 0x01:
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	default:
		return fmt.Errorf("%w: limits flag %#x at offset %#x (shared or 64-bit memory)", ErrUnsupported, flag, r.off()-1)
	}
	return err
}

func (m *module) readImports(r *reader) error {
	n, err := r.count("imports", maxVec)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if _, err := r.name(); err != nil {
			return err
		}
		if _, err := r.name(); err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0x00: // function
			idx, err := r.u32()
			if err != nil {
				return err
			}
			if int(idx) >= len(m.types) {
				return r.errorf("import %d: type index %d out of range", i, idx)
			}
			if len(m.funcTypes) >= MaxFunctions {
				return fmt.Errorf("%w: more than %d functions", ErrTooLarge, MaxFunctions)
			}
			m.funcTypes = append(m.funcTypes, idx)
			m.numImports++
		case 0x01: // table
			if err := refType(r); err != nil {
				return err
			}
			if err := limits(r); err != nil {
				return err
			}
		case 0x02: // memory
			if err := limits(r); err != nil {
				return err
			}
		case 0x03: // global
			if err := valType(r, place{"imported global", int(m.numGlobals)}); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil { // mutability
				return err
			}
			m.numGlobals++
		default:
			return fmt.Errorf("%w: import kind %#x at offset %#x", ErrUnsupported, kind, r.off()-1)
		}
	}
	return expectEnd(r, "import section")
}

func refType(r *reader) error {
	t, err := r.byte()
	if err != nil {
		return err
	}
	if t != valFuncref && t != valExternref {
		return r.errorf("reference type %#x", t)
	}
	return nil
}

func (m *module) readFunctions(r *reader) error {
	n, err := r.count("functions", MaxFunctions)
	if err != nil {
		return err
	}
	if len(m.funcTypes)+n > MaxFunctions {
		return fmt.Errorf("%w: more than %d functions", ErrTooLarge, MaxFunctions)
	}
	for i := 0; i < n; i++ {
		idx, err := r.u32()
		if err != nil {
			return err
		}
		if int(idx) >= len(m.types) {
			return r.errorf("function %d: type index %d out of range", len(m.funcTypes), idx)
		}
		m.funcTypes = append(m.funcTypes, idx)
	}
	return expectEnd(r, "function section")
}

func (m *module) readGlobals(r *reader) error {
	n, err := r.count("globals", maxVec)
	if err != nil {
		return err
	}
	start := r.pos
	for i := 0; i < n; i++ {
		where := place{"global", int(m.numGlobals)}
		if err := valType(r, where); err != nil {
			return err
		}
		if _, err := r.byte(); err != nil { // mutability
			return err
		}
		if err := m.constExpr(r, where); err != nil {
			return err
		}
		m.numGlobals++
	}
	if err := expectEnd(r, "global section"); err != nil {
		return err
	}
	m.definedGlobals = r.b[start:]
	m.numDefined = uint32(n)
	return nil
}

// constExpr skips a constant expression (v2: i32/i64.const, ref.null,
// ref.func, global.get), rejecting float constants. Indices are checked so
// that no expression can reach the globals Instrument appends.
func (m *module) constExpr(r *reader, where place) error {
	for {
		at := r.off()
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41:
			_, err = r.sleb(32)
		case 0x42:
			_, err = r.sleb(64)
		case 0x43, 0x44:
			return fmt.Errorf("%w: %s at offset %#x: %s.const", ErrFloat, where, at, map[byte]string{0x43: "f32", 0x44: "f64"}[op])
		case 0xd0:
			err = refType(r)
		case 0xd2, 0x23:
			var idx uint32
			if idx, err = r.u32(); err == nil && (op == 0x23 && idx >= m.numGlobals || op == 0xd2 && int(idx) >= len(m.funcTypes)) {
				return fmt.Errorf("%w: %s at offset %#x: index %d out of range", ErrMalformed, where, at, idx)
			}
		default:
			return fmt.Errorf("%w: %s at offset %#x: opcode %#x in constant expression", ErrUnsupported, where, at, op)
		}
		if err != nil {
			return err
		}
	}
}

func (m *module) readExports(r *reader) error {
	n, err := r.count("exports", maxVec)
	if err != nil {
		return err
	}
	start := r.pos
	for i := 0; i < n; i++ {
		name, err := r.name()
		if err != nil {
			return err
		}
		if string(name) == GasGlobal || string(name) == DepthGlobal {
			return fmt.Errorf("%w: %q", ErrReservedExport, name)
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		idx, err := r.u32()
		if err != nil {
			return err
		}
		// The appended globals must stay reachable only through our
		// exports.
		if kind == 0x03 && idx >= m.numGlobals || kind == 0x00 && int(idx) >= len(m.funcTypes) {
			return r.errorf("export %q: index %d out of range", name, idx)
		}
	}
	if err := expectEnd(r, "export section"); err != nil {
		return err
	}
	m.exports = r.b[start:]
	m.numExports = uint32(n)
	return nil
}

// globalSection is the global section with the gas and depth globals
// appended: appending shifts no existing index.
func (m *module) globalSection() []byte {
	b := appendU32(nil, m.numDefined+2)
	b = append(b, m.definedGlobals...)
	b = append(b, valI64, 0x01, 0x42)
	b = appendS64(b, int64(m.cfg.StartGas))
	b = append(b, 0x0b)
	b = append(b, valI32, 0x01, 0x41, 0x00, 0x0b)
	return b
}

func (m *module) exportSection() []byte {
	b := appendU32(nil, m.numExports+2)
	b = append(b, m.exports...)
	for _, e := range []struct {
		name string
		idx  uint32
	}{{GasGlobal, m.gasIdx}, {DepthGlobal, m.depthIdx}} {
		b = appendU32(b, uint32(len(e.name)))
		b = append(b, e.name...)
		b = append(b, 0x03) // global
		b = appendU32(b, e.idx)
	}
	return b
}

func readTables(r *reader) error {
	n, err := r.count("tables", maxVec)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := refType(r); err != nil {
			return err
		}
		if err := limits(r); err != nil {
			return err
		}
	}
	return expectEnd(r, "table section")
}

func readMemories(r *reader) error {
	n, err := r.count("memories", maxVec)
	if err != nil {
		return err
	}
	if n > 1 {
		return fmt.Errorf("%w: %d memories", ErrUnsupported, n)
	}
	for i := 0; i < n; i++ {
		if err := limits(r); err != nil {
			return err
		}
	}
	return expectEnd(r, "memory section")
}

func (m *module) readStart(r *reader) error {
	idx, err := r.u32()
	if err != nil {
		return err
	}
	if int(idx) >= len(m.funcTypes) {
		return r.errorf("start function %d out of range", idx)
	}
	return expectEnd(r, "start section")
}

// readElements checks the structure of the element section, which is
// copied unchanged.
func (m *module) readElements(r *reader) error {
	n, err := r.count("element segments", maxVec)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		where := place{"element segment", i}
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return r.errorf("%s: flags %d", where, flags)
		}
		if flags == 2 || flags == 6 { // explicit table index
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		if flags&1 == 0 { // active: offset expression
			if err := m.constExpr(r, where); err != nil {
				return err
			}
		}
		if flags&3 != 0 { // element kind or reference type
			if flags&4 == 0 {
				if k, err := r.byte(); err != nil {
					return err
				} else if k != 0x00 {
					return r.errorf("%s: element kind %#x", where, k)
				}
			} else if err := refType(r); err != nil {
				return err
			}
		}
		c, err := r.count("elements", maxVec)
		if err != nil {
			return err
		}
		for j := 0; j < c; j++ {
			if flags&4 == 0 {
				var idx uint32
				if idx, err = r.u32(); err == nil && int(idx) >= len(m.funcTypes) {
					return r.errorf("%s: function %d out of range", where, idx)
				}
			} else {
				err = m.constExpr(r, where)
			}
			if err != nil {
				return err
			}
		}
	}
	return expectEnd(r, "element section")
}

// readData checks the structure of the data section, copied unchanged.
func (m *module) readData(r *reader) error {
	n, err := r.count("data segments", maxVec)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		switch flags {
		case 0:
			err = m.constExpr(r, place{"data segment", i})
		case 1:
		case 2:
			if _, err = r.u32(); err == nil {
				err = m.constExpr(r, place{"data segment", i})
			}
		default:
			return r.errorf("data segment %d: flags %d", i, flags)
		}
		if err != nil {
			return err
		}
		if _, err := r.name(); err != nil { // the bytes
			return err
		}
	}
	return expectEnd(r, "data section")
}
