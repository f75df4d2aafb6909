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

// ValueType is a WASM value type, by its binary encoding (the same bytes
// as wazero's api.ValueType).
type ValueType = byte

// Value types.
const (
	ValueTypeI32       ValueType = valI32
	ValueTypeI64       ValueType = valI64
	ValueTypeF32       ValueType = valF32
	ValueTypeF64       ValueType = valF64
	ValueTypeV128      ValueType = valV128
	ValueTypeFuncref   ValueType = valFuncref
	ValueTypeExternref ValueType = valExternref
)

const (
	valI32       = 0x7f
	valI64       = 0x7e
	valF32       = 0x7d
	valF64       = 0x7c
	valV128      = 0x7b
	valFuncref   = 0x70
	valExternref = 0x6f
)

// ExternKind is the kind of an import or export.
type ExternKind byte

// Import and export kinds.
const (
	KindFunc   ExternKind = 0x00
	KindTable  ExternKind = 0x01
	KindMemory ExternKind = 0x02
	KindGlobal ExternKind = 0x03
)

func (k ExternKind) String() string {
	switch k {
	case KindFunc:
		return "function"
	case KindTable:
		return "table"
	case KindMemory:
		return "memory"
	case KindGlobal:
		return "global"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// FuncType is a function signature.
type FuncType struct {
	Params, Results []ValueType
}

// Import is one entry of the import section.
type Import struct {
	Module, Name string
	Kind         ExternKind
	// Type is the signature of an imported function.
	Type FuncType
}

// Export is one entry of the export section.
type Export struct {
	Name  string
	Kind  ExternKind
	Index uint32
}

// Limits are the page limits of a memory.
type Limits struct {
	Min    uint32
	Max    uint32
	HasMax bool
}

var wasmHeader = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// Module is a decoded module: what a host needs to check it against its
// ABI, and what Instrument needs to rewrite it without decoding it again.
// Parse makes one; it is read-only afterwards and safe for concurrent use.
type Module struct {
	// Imports and Exports are the import and export sections, in order.
	Imports []Import
	Exports []Export
	// Memory is the module's memory, defined or imported; nil if it has
	// none.
	Memory *Limits

	wasm      []byte
	secs      []section // known sections, in order; custom sections dropped
	hasCustom bool

	types      []FuncType
	funcTypes  []uint32 // type index of every function, imports first
	numImports uint32   // imported functions
	numGlobals uint32   // imported + defined globals
	mutable    []uint32 // indices of the mutable globals

	definedGlobals []byte // global section payload without its count
	numDefined     uint32
	exportPayload  []byte // export section payload without its count
	bodies         []funcBody
	codeIdx        int // index of the code section in secs, -1 if none

	// refusal is the first reason outside the code section, in section
	// order, why the module cannot be instrumented (a float type or
	// constant, a reserved export name). Parse does not fail on it, so that
	// a host can first tell what else is wrong with the module; Instrument
	// returns it.
	refusal error
}

// funcBody is one entry of the code section: its local declarations, read
// by Parse, and its expression, read once by the rewrite.
type funcBody struct {
	localDecls []byte // the local groups as encoded, without their count
	groups     uint32
	nlocals    uint32
	refusal    error // a float or v128 local, reported in function order
	off        int   // absolute offset of the body, after its size
	expr       []byte
	exprOff    int // absolute offset of expr
}

type section struct {
	id      byte
	payload []byte
	offset  int    // absolute offset of payload
	raw     []byte // the whole section as encoded, header included
}

// Parse decodes every section of a module once and checks its structure.
// It bounds every count and length by the bytes present and by the
// decoding limits before allocating anything, so it is safe on any input
// and may be run before a decoder that trusts declared sizes. Custom
// sections are skipped unread: instrumenting drops them.
//
// Parse checks the structure only: errors are ErrMalformed, ErrTooLarge
// (a count beyond the decoding limits) or ErrUnsupported. Reasons not to
// instrument a well-formed module (ErrFloat, ErrReservedExport, a frame
// above Config.MaxFrameBytes) are reported by Instrument. Instructions are
// decoded by Instrument alone.
func Parse(wasm []byte) (m *Module, err error) {
	defer func() {
		// Belt and braces: a decoder bug must not crash the node. The fuzz
		// targets fail on this message.
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("%w: internal error: %v", ErrUnsupported, p)
		}
	}()
	if len(wasm) > MaxModuleSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(wasm), MaxModuleSize)
	}
	if len(wasm) < len(wasmHeader) || !bytes.Equal(wasm[:len(wasmHeader)], wasmHeader) {
		return nil, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	m = &Module{wasm: wasm, codeIdx: -1}
	if err := m.splitSections(); err != nil {
		return nil, err
	}
	for i := range m.secs {
		s := &m.secs[i]
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
			err = m.readTables(r)
		case secMemory:
			err = m.readMemories(r)
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
		case secCode:
			m.codeIdx = i
			err = m.readCode(r)
		}
		if err != nil {
			return nil, err
		}
	}
	if m.codeIdx < 0 && len(m.funcTypes) != int(m.numImports) {
		return nil, fmt.Errorf("%w: functions declared without a code section", ErrMalformed)
	}
	return m, nil
}

// Stripped returns the module without its custom sections, the other
// sections copied as they are: what Instrument works from. It is the input
// itself when there are none.
func (m *Module) Stripped() []byte {
	if !m.hasCustom {
		return m.wasm
	}
	out := make([]byte, 0, len(m.wasm))
	out = append(out, wasmHeader...)
	for _, s := range m.secs {
		out = append(out, s.raw...)
	}
	return out
}

// Func returns the signature of function idx (imports first), and false if
// there is no such function.
func (m *Module) Func(idx uint32) (FuncType, bool) {
	if idx >= uint32(len(m.funcTypes)) {
		return FuncType{}, false
	}
	return m.types[m.funcTypes[idx]], true
}

// refuse records the first reason not to instrument the module.
func (m *Module) refuse(err error) {
	if m.refusal == nil {
		m.refusal = err
	}
}

// splitSections walks the section headers, checking order and sizes.
func (m *Module) splitSections() error {
	r := &reader{b: m.wasm, pos: len(wasmHeader)}
	lastRank := 0
	for !r.done() {
		start := r.pos
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		off := r.off()
		payload, err := r.bytes(int(size))
		if err != nil {
			return err
		}
		if id == secCustom {
			m.hasCustom = true
			continue
		}
		if int(id) >= len(sectionRank) || sectionRank[id] == 0 {
			return fmt.Errorf("%w: section id %d at offset %#x", ErrUnsupported, id, off)
		}
		if sectionRank[id] <= lastRank {
			return fmt.Errorf("%w: section id %d out of order at offset %#x", ErrMalformed, id, off)
		}
		lastRank = sectionRank[id]
		m.secs = append(m.secs, section{id: id, payload: payload, offset: off, raw: m.wasm[start:r.pos]})
	}
	return nil
}

// place names what is being decoded, for error messages; formatted only
// when an error occurs.
type place struct {
	what string
	idx  int
}

func (p place) String() string { return fmt.Sprintf("%s %d", p.what, p.idx) }

// valType reads a value type allowed in a function signature, local or
// global: i32, i64, funcref, externref. A float or v128 is not malformed
// but refused: the error is returned as refusal, err is nil.
func valType(r *reader, where place) (t ValueType, refusal, err error) {
	at := r.off()
	if t, err = r.byte(); err != nil {
		return 0, nil, err
	}
	err = checkValType(t, where, at)
	if t == valF32 || t == valF64 || t == valV128 {
		return t, err, nil
	}
	return t, nil, err
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

func (m *Module) readTypes(r *reader) error {
	n, err := r.count("types", maxEntries)
	if err != nil {
		return err
	}
	m.types = make([]FuncType, 0, n)
	for i := 0; i < n; i++ {
		where := place{"type", i}
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return r.errorf("type %d: form %#x", i, form)
		}
		var ft FuncType
		for k := 0; k < 2; k++ {
			c, err := r.count("value types", maxEntries)
			if err != nil {
				return err
			}
			ts := make([]ValueType, c)
			for j := range ts {
				t, refusal, err := valType(r, where)
				if err != nil {
					return err
				}
				if refusal != nil {
					m.refuse(refusal)
				}
				ts[j] = t
			}
			if k == 0 {
				ft.Params = ts
			} else {
				ft.Results = ts
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

func limits(r *reader) (Limits, error) {
	var l Limits
	flag, err := r.byte()
	if err != nil {
		return l, err
	}
	switch flag {
	case 0x00:
		l.Min, err = r.u32()
	case 0x01:
		if l.Min, err = r.u32(); err == nil {
			l.Max, err = r.u32()
			l.HasMax = true
		}
	default:
		return l, fmt.Errorf("%w: limits flag %#x at offset %#x (shared or 64-bit memory)", ErrUnsupported, flag, r.off()-1)
	}
	return l, err
}

func (m *Module) readImports(r *reader) error {
	n, err := r.count("imports", maxEntries)
	if err != nil {
		return err
	}
	m.Imports = make([]Import, 0, n)
	for i := 0; i < n; i++ {
		mod, err := r.name()
		if err != nil {
			return err
		}
		name, err := r.name()
		if err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		im := Import{Module: string(mod), Name: string(name), Kind: ExternKind(kind)}
		switch im.Kind {
		case KindFunc:
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
			im.Type = m.types[idx]
			m.funcTypes = append(m.funcTypes, idx)
			m.numImports++
		case KindTable:
			if err := refType(r); err != nil {
				return err
			}
			if _, err := limits(r); err != nil {
				return err
			}
		case KindMemory:
			l, err := limits(r)
			if err != nil {
				return err
			}
			if m.Memory != nil {
				return fmt.Errorf("%w: more than one memory", ErrUnsupported)
			}
			m.Memory = &l
		case KindGlobal:
			_, refusal, err := valType(r, place{"imported global", int(m.numGlobals)})
			if err != nil {
				return err
			}
			if refusal != nil {
				m.refuse(refusal)
			}
			mut, err := r.byte()
			if err != nil {
				return err
			}
			if mut == 1 {
				m.mutable = append(m.mutable, m.numGlobals)
			}
			m.numGlobals++
		default:
			return fmt.Errorf("%w: import kind %#x at offset %#x", ErrUnsupported, kind, r.off()-1)
		}
		m.Imports = append(m.Imports, im)
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

func (m *Module) readFunctions(r *reader) error {
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

func (m *Module) readGlobals(r *reader) error {
	n, err := r.count("globals", maxEntries)
	if err != nil {
		return err
	}
	start := r.pos
	for i := 0; i < n; i++ {
		where := place{"global", int(m.numGlobals)}
		_, refusal, err := valType(r, where)
		if err != nil {
			return err
		}
		if refusal != nil {
			m.refuse(refusal)
		}
		mut, err := r.byte()
		if err != nil {
			return err
		}
		if mut == 1 {
			m.mutable = append(m.mutable, m.numGlobals)
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
// ref.func, global.get), refusing float constants. Indices are checked so
// that no expression can reach the globals Instrument appends.
func (m *Module) constExpr(r *reader, where place) error {
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
		case 0x43:
			m.refuse(fmt.Errorf("%w: %s at offset %#x: f32.const", ErrFloat, where, at))
			_, err = r.bytes(4)
		case 0x44:
			m.refuse(fmt.Errorf("%w: %s at offset %#x: f64.const", ErrFloat, where, at))
			_, err = r.bytes(8)
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

func (m *Module) readExports(r *reader) error {
	n, err := r.count("exports", maxEntries)
	if err != nil {
		return err
	}
	start := r.pos
	m.Exports = make([]Export, 0, n)
	for i := 0; i < n; i++ {
		name, err := r.name()
		if err != nil {
			return err
		}
		if reservedExport(string(name)) {
			m.refuse(fmt.Errorf("%w: %q", ErrReservedExport, name))
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
		m.Exports = append(m.Exports, Export{Name: string(name), Kind: ExternKind(kind), Index: idx})
	}
	if err := expectEnd(r, "export section"); err != nil {
		return err
	}
	m.exportPayload = r.b[start:]
	return nil
}

func (m *Module) readTables(r *reader) error {
	n, err := r.count("tables", maxEntries)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := refType(r); err != nil {
			return err
		}
		if _, err := limits(r); err != nil {
			return err
		}
	}
	return expectEnd(r, "table section")
}

func (m *Module) readMemories(r *reader) error {
	n, err := r.count("memories", maxEntries)
	if err != nil {
		return err
	}
	if n > 1 || n == 1 && m.Memory != nil {
		return fmt.Errorf("%w: more than one memory", ErrUnsupported)
	}
	for i := 0; i < n; i++ {
		l, err := limits(r)
		if err != nil {
			return err
		}
		m.Memory = &l
	}
	return expectEnd(r, "memory section")
}

func (m *Module) readStart(r *reader) error {
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
func (m *Module) readElements(r *reader) error {
	n, err := r.count("element segments", maxEntries)
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
		c, err := r.count("elements", maxEntries)
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
func (m *Module) readData(r *reader) error {
	n, err := r.count("data segments", maxEntries)
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

// readCode splits the code section into bodies and reads their local
// declarations, bounding them before anything else sees the module: a
// decoder that trusts declared counts would allocate by them. The
// expressions are left to the rewrite.
func (m *Module) readCode(r *reader) error {
	n, err := r.count("function bodies", MaxFunctions)
	if err != nil {
		return err
	}
	if int(m.numImports)+n != len(m.funcTypes) {
		return r.errorf("%d function bodies for %d functions", n, len(m.funcTypes)-int(m.numImports))
	}
	m.bodies = make([]funcBody, n)
	for i := range m.bodies {
		size, err := r.u32()
		if err != nil {
			return err
		}
		at := r.off()
		raw, err := r.bytes(int(size))
		if err != nil {
			return err
		}
		fn := m.numImports + uint32(i)
		if err := m.bodies[i].readLocals(&reader{b: raw, base: at}, fn); err != nil {
			return err
		}
	}
	return expectEnd(r, "code section")
}

func (fb *funcBody) readLocals(r *reader, fn uint32) error {
	groups, err := r.count("local groups", MaxLocals)
	if err != nil {
		return err
	}
	start := r.pos
	var nlocals uint64
	var refusal error
	for i := 0; i < groups; i++ {
		n, err := r.u32()
		if err != nil {
			return err
		}
		nlocals += uint64(n)
		if nlocals > MaxLocals {
			return fmt.Errorf("%w: function %d at offset %#x: more than %d locals", ErrTooLarge, fn, r.off(), MaxLocals)
		}
		_, ref, err := valType(r, place{"locals of function", int(fn)})
		if err != nil {
			return err
		}
		if refusal == nil {
			refusal = ref
		}
	}
	*fb = funcBody{
		localDecls: r.b[start:r.pos],
		groups:     uint32(groups),
		nlocals:    uint32(nlocals),
		refusal:    refusal,
		expr:       r.b[r.pos:],
		off:        r.base,
		exprOff:    r.off(),
	}
	return nil
}
