package vm

import (
	"errors"
	"fmt"
	"strconv"
)

// A small reader of the WASM binary format: just what Deploy needs beyond
// wazero's public API (non-function imports, mutable globals, the export
// section, and a scan of the code for instructions that change state which
// would outlive a call). It runs on modules wazero has already validated,
// and still returns an error, never panics, on any bytes.

const (
	secImport = 2
	secGlobal = 6
	secExport = 7
	secCode   = 10

	kindFunc   = 0
	kindTable  = 1
	kindMemory = 2
	kindGlobal = 3
)

var errShort = errors.New("unexpected end of module")

type wreader struct {
	b   []byte
	off int
}

func (r *wreader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errShort
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *wreader) u32() (uint32, error) {
	var v uint64
	for shift := uint(0); shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > 0xffffffff {
				return 0, errors.New("u32 out of range")
			}
			return uint32(v), nil
		}
	}
	return 0, errors.New("u32 too long")
}

// sleb skips a signed LEB128 of at most maxBytes bytes.
func (r *wreader) sleb(maxBytes int) error {
	for i := 0; i < maxBytes; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errors.New("integer too long")
}

func (r *wreader) skip(n int) error {
	if n < 0 || len(r.b)-r.off < n {
		return errShort
	}
	r.off += n
	return nil
}

func (r *wreader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	start := r.off
	if err := r.skip(int(n)); err != nil {
		return "", err
	}
	return string(r.b[start:r.off]), nil
}

type wsection struct {
	id            byte
	start, end    int // payload
	headerStarted int // offset of the id byte
}

type wimport struct {
	module, name string
	kind         byte
}

type wexport struct {
	name  string
	kind  byte
	index uint32
}

// wmodule is what the reader learned about one module.
type wmodule struct {
	sections        []wsection
	imports         []wimport
	importedGlobals uint32
	importedFuncs   uint32
	mutableGlobals  []uint32 // indices (imports included) of mutable globals
	exports         []wexport
	exportSection   int // index into sections, -1 if none
}

func parseModule(b []byte) (*wmodule, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, errors.New("not a WASM module")
	}
	m := &wmodule{exportSection: -1}
	r := &wreader{b: b, off: 8}
	for r.off < len(b) {
		hdr := r.off
		id, err := r.byte()
		if err != nil {
			return nil, err
		}
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		start := r.off
		if err := r.skip(int(n)); err != nil {
			return nil, err
		}
		s := wsection{id: id, start: start, end: r.off, headerStarted: hdr}
		sr := &wreader{b: b[:s.end], off: s.start}
		switch id {
		case secImport:
			err = m.readImports(sr)
		case secGlobal:
			err = m.readGlobals(sr)
		case secExport:
			m.exportSection = len(m.sections)
			err = m.readExports(sr)
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		m.sections = append(m.sections, s)
	}
	return m, nil
}

func (m *wmodule) readImports(r *wreader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		var im wimport
		if im.module, err = r.name(); err != nil {
			return err
		}
		if im.name, err = r.name(); err != nil {
			return err
		}
		if im.kind, err = r.byte(); err != nil {
			return err
		}
		switch im.kind {
		case kindFunc:
			_, err = r.u32()
			m.importedFuncs++
		case kindTable:
			if _, err = r.byte(); err == nil {
				err = skipLimits(r)
			}
		case kindMemory:
			err = skipLimits(r)
		case kindGlobal:
			var mut byte
			if _, err = r.byte(); err == nil {
				mut, err = r.byte()
			}
			if mut == 1 {
				m.mutableGlobals = append(m.mutableGlobals, m.importedGlobals)
			}
			m.importedGlobals++
		default:
			return fmt.Errorf("import kind %d", im.kind)
		}
		if err != nil {
			return err
		}
		m.imports = append(m.imports, im)
	}
	return nil
}

func skipLimits(r *wreader) error {
	flag, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flag&1 != 0 {
		_, err = r.u32()
	}
	return err
}

func (m *wmodule) readGlobals(r *wreader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.byte(); err != nil { // value type
			return err
		}
		mut, err := r.byte()
		if err != nil {
			return err
		}
		if mut == 1 {
			m.mutableGlobals = append(m.mutableGlobals, m.importedGlobals+i)
		}
		if err := skipConstExpr(r); err != nil {
			return err
		}
	}
	return nil
}

func skipConstExpr(r *wreader) error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b: // end
			return nil
		case 0x41:
			err = r.sleb(5)
		case 0x42:
			err = r.sleb(10)
		case 0x43:
			err = r.skip(4)
		case 0x44:
			err = r.skip(8)
		case 0x23, 0xd2: // global.get, ref.func
			_, err = r.u32()
		case 0xd0: // ref.null
			_, err = r.byte()
		default:
			return fmt.Errorf("constant expression opcode 0x%02x", op)
		}
		if err != nil {
			return err
		}
	}
}

func (m *wmodule) readExports(r *wreader) error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		var ex wexport
		if ex.name, err = r.name(); err != nil {
			return err
		}
		if ex.kind, err = r.byte(); err != nil {
			return err
		}
		if ex.index, err = r.u32(); err != nil {
			return err
		}
		m.exports = append(m.exports, ex)
	}
	return nil
}

// globalExportPrefix names the exports Deploy adds so the host can snapshot
// and restore every mutable global.
const globalExportPrefix = "scraft_global_"

// exportMutableGlobals returns b with an export added for every mutable
// global that has none, and the export name of every mutable global in
// index order.
func exportMutableGlobals(b []byte) ([]byte, []string, error) {
	m, err := parseModule(b)
	if err != nil {
		return nil, nil, err
	}
	if m.exportSection < 0 {
		return nil, nil, errors.New("no export section")
	}
	exported := map[uint32]string{}
	for _, ex := range m.exports {
		if ex.kind == kindGlobal {
			if _, ok := exported[ex.index]; !ok {
				exported[ex.index] = ex.name
			}
		}
	}
	var names []string
	var added []byte
	count := uint32(len(m.exports))
	for _, idx := range m.mutableGlobals {
		name, ok := exported[idx]
		if !ok {
			name = globalExportPrefix + strconv.FormatUint(uint64(idx), 10)
			added = appendName(added, name)
			added = append(added, kindGlobal)
			added = appendU32(added, idx)
			count++
		}
		names = append(names, name)
	}
	if len(added) == 0 {
		return b, names, nil
	}
	s := m.sections[m.exportSection]
	sr := &wreader{b: b[:s.end], off: s.start}
	if _, err := sr.u32(); err != nil { // old count
		return nil, nil, err
	}
	payload := appendU32(nil, count)
	payload = append(payload, b[sr.off:s.end]...)
	payload = append(payload, added...)

	out := make([]byte, 0, len(b)+len(added)+8)
	out = append(out, b[:s.headerStarted]...)
	out = append(out, secExport)
	out = appendU32(out, uint32(len(payload)))
	out = append(out, payload...)
	out = append(out, b[s.end:]...)
	return out, names, nil
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// findStatefulOp scans the code section for an instruction that changes a
// table or drops a segment. Instances are reused between calls with their
// memory and globals restored; tables and segments cannot be restored
// through wazero's API, so such instructions would let one call see
// another's effects. It returns the instruction's name and the function's
// index, or "" if there is none.
func findStatefulOp(b []byte) (string, uint32, error) {
	m, err := parseModule(b)
	if err != nil {
		return "", 0, err
	}
	for _, s := range m.sections {
		if s.id != secCode {
			continue
		}
		r := &wreader{b: b[:s.end], off: s.start}
		n, err := r.u32()
		if err != nil {
			return "", 0, err
		}
		for i := uint32(0); i < n; i++ {
			size, err := r.u32()
			if err != nil {
				return "", 0, err
			}
			end := r.off + int(size)
			if size > uint32(len(b)) || end > s.end {
				return "", 0, errShort
			}
			body := &wreader{b: b[:end], off: r.off}
			op, err := scanBody(body)
			if err != nil {
				return "", 0, fmt.Errorf("function %d: %w", m.importedFuncs+i, err)
			}
			if op != "" {
				return op, m.importedFuncs + i, nil
			}
			r.off = end
		}
	}
	return "", 0, nil
}

func scanBody(r *wreader) (string, error) {
	groups, err := r.u32()
	if err != nil {
		return "", err
	}
	for i := uint32(0); i < groups; i++ {
		if _, err := r.u32(); err != nil {
			return "", err
		}
		if _, err := r.byte(); err != nil {
			return "", err
		}
	}
	for r.off < len(r.b) {
		op, _ := r.byte()
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			t, err := r.byte()
			if err != nil {
				return "", err
			}
			if t != 0x40 && (t < 0x6f || t > 0x7f) { // a type index: s33
				r.off--
				err = r.sleb(5)
			}
			if err != nil {
				return "", err
			}
		case op == 0x0c || op == 0x0d || op == 0x10 || (op >= 0x20 && op <= 0x25) || op == 0xd2:
			if _, err := r.u32(); err != nil {
				return "", err
			}
		case op == 0x26:
			return "table.set", nil
		case op == 0x0e: // br_table
			n, err := r.u32()
			if err != nil {
				return "", err
			}
			for j := uint64(0); j <= uint64(n); j++ {
				if _, err := r.u32(); err != nil {
					return "", err
				}
			}
		case op == 0x11: // call_indirect
			if _, err := r.u32(); err != nil {
				return "", err
			}
			if _, err := r.u32(); err != nil {
				return "", err
			}
		case op == 0x1c: // select t*
			n, err := r.u32()
			if err == nil {
				err = r.skip(int(n))
			}
			if err != nil {
				return "", err
			}
		case op >= 0x28 && op <= 0x3e: // memarg
			if _, err := r.u32(); err != nil {
				return "", err
			}
			if _, err := r.u32(); err != nil {
				return "", err
			}
		case op == 0x3f || op == 0x40 || op == 0xd0:
			if _, err := r.byte(); err != nil {
				return "", err
			}
		case op == 0x41:
			if err := r.sleb(5); err != nil {
				return "", err
			}
		case op == 0x42:
			if err := r.sleb(10); err != nil {
				return "", err
			}
		case op == 0x43:
			if err := r.skip(4); err != nil {
				return "", err
			}
		case op == 0x44:
			if err := r.skip(8); err != nil {
				return "", err
			}
		case op == 0xfc:
			sub, err := r.u32()
			if err != nil {
				return "", err
			}
			switch sub {
			case 0, 1, 2, 3, 4, 5, 6, 7: // trunc_sat
			case 8: // memory.init
				if _, err := r.u32(); err != nil {
					return "", err
				}
				if _, err := r.byte(); err != nil {
					return "", err
				}
			case 9:
				return "data.drop", nil
			case 10:
				if err := r.skip(2); err != nil {
					return "", err
				}
			case 11:
				if err := r.skip(1); err != nil {
					return "", err
				}
			case 12:
				return "table.init", nil
			case 13:
				return "elem.drop", nil
			case 14:
				return "table.copy", nil
			case 15:
				return "table.grow", nil
			case 16: // table.size
				if _, err := r.u32(); err != nil {
					return "", err
				}
			case 17:
				return "table.fill", nil
			default:
				return "", fmt.Errorf("unknown instruction 0xfc %d", sub)
			}
		case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
			(op >= 0x45 && op <= 0xc4) || op == 0xd1:
			// no immediates
		default:
			return "", fmt.Errorf("unknown instruction 0x%02x", op)
		}
	}
	return "", nil
}

// Bounds of preflight. wazero's decoder allocates by the counts and lengths
// a module declares before it reads the elements (a 70-byte module can ask
// it for a 1 GiB name), so Deploy checks every declared size against the
// bytes present, and counts against these caps, first.
const (
	maxItems  = 100_000 // entries of any one section, functions in all
	maxLocals = 50_000  // declared locals of one function
)

var sectionNames = [...]string{"custom", "type", "import", "function", "table", "memory", "global",
	"export", "start", "element", "code", "data", "data count"}

// preflight checks the structure of b without interpreting it and returns
// b without its custom sections (names and debug data change nothing a
// contract does, and wazero decodes the name section without bounds).
func preflight(b []byte) ([]byte, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, errors.New("not a WASM module (bad magic number)")
	}
	if string(b[4:8]) != "\x01\x00\x00\x00" {
		return nil, errors.New("unsupported WASM binary version")
	}
	out := make([]byte, 0, len(b))
	out = append(out, b[:8]...)
	r := &wreader{b: b, off: 8}
	funcs := 0
	for r.off < len(b) {
		hdr := r.off
		id, _ := r.byte()
		n, err := r.u32()
		if err != nil {
			return nil, fmt.Errorf("section header at %d: %w", hdr, err)
		}
		if int(n) > len(b)-r.off {
			return nil, fmt.Errorf("section %d at %d: size %d runs past the end of the module", id, hdr, n)
		}
		sr := &wreader{b: b[:r.off+int(n)], off: r.off}
		r.off += int(n)
		if id == 0 {
			continue
		}
		if int(id) >= len(sectionNames) {
			return nil, fmt.Errorf("unknown section id %d at %d", id, hdr)
		}
		cnt, err := checkSection(id, sr)
		if err == nil && sr.off != len(sr.b) {
			err = errors.New("trailing bytes")
		}
		if err != nil {
			return nil, fmt.Errorf("%s section: %w", sectionNames[id], err)
		}
		if id == 3 || id == 2 {
			funcs += cnt
			if funcs > maxItems {
				return nil, fmt.Errorf("more than %d functions", maxItems)
			}
		}
		out = append(out, b[hdr:r.off]...)
	}
	return out, nil
}

// count reads a vector length and checks it against the bytes left (every
// entry takes at least one) and maxItems.
func (r *wreader) count(what string) (int, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if int(n) > len(r.b)-r.off || n > maxItems {
		return 0, fmt.Errorf("%d %s declared, more than the bytes present or the limit of %d", n, what, maxItems)
	}
	return int(n), nil
}

// bytesVec skips a length-prefixed byte string.
func (r *wreader) bytesVec() error {
	n, err := r.u32()
	if err != nil {
		return err
	}
	return r.skip(int(n))
}

// checkSection walks one section's entries; for import sections it returns
// the number of imported functions, for function sections their count.
func checkSection(id byte, r *wreader) (int, error) {
	if id == 8 || id == 12 { // start, data count: one index
		_, err := r.u32()
		return 0, err
	}
	n, err := r.count("entries")
	if err != nil {
		return 0, err
	}
	funcs := 0
	for i := 0; i < n; i++ {
		switch id {
		case 1: // type
			if form, err := r.byte(); err != nil || form != 0x60 {
				return 0, fmt.Errorf("type %d is not a function type", i)
			}
			for j := 0; j < 2; j++ {
				k, err := r.count("value types")
				if err == nil {
					err = r.skip(k)
				}
				if err != nil {
					return 0, err
				}
			}
		case 2: // import
			if err := r.bytesVec(); err != nil {
				return 0, err
			}
			if err := r.bytesVec(); err != nil {
				return 0, err
			}
			kind, err := r.byte()
			if err != nil {
				return 0, err
			}
			switch kind {
			case kindFunc:
				_, err = r.u32()
				funcs++
			case kindTable:
				if _, err = r.byte(); err == nil {
					err = skipLimits(r)
				}
			case kindMemory:
				err = skipLimits(r)
			case kindGlobal:
				err = r.skip(2)
			default:
				err = fmt.Errorf("import kind %d", kind)
			}
			if err != nil {
				return 0, err
			}
		case 3: // function
			if _, err := r.u32(); err != nil {
				return 0, err
			}
			funcs++
		case 4: // table
			if _, err := r.byte(); err != nil {
				return 0, err
			}
			if err := skipLimits(r); err != nil {
				return 0, err
			}
		case 5: // memory
			if err := skipLimits(r); err != nil {
				return 0, err
			}
		case 6: // global
			if err := r.skip(2); err != nil {
				return 0, err
			}
			if err := skipConstExpr(r); err != nil {
				return 0, err
			}
		case 7: // export
			if err := r.bytesVec(); err != nil {
				return 0, err
			}
			if err := r.skip(1); err != nil {
				return 0, err
			}
			if _, err := r.u32(); err != nil {
				return 0, err
			}
		case 9: // element
			if err := checkElement(r); err != nil {
				return 0, err
			}
		case 10: // code
			size, err := r.u32()
			if err != nil {
				return 0, err
			}
			if int(size) > len(r.b)-r.off {
				return 0, fmt.Errorf("body %d: size %d runs past the section", i, size)
			}
			body := &wreader{b: r.b[:r.off+int(size)], off: r.off}
			groups, err := body.count("local groups")
			if err != nil {
				return 0, fmt.Errorf("body %d: %w", i, err)
			}
			locals := uint64(0)
			for g := 0; g < groups; g++ {
				k, err := body.u32()
				if err == nil {
					_, err = body.byte()
				}
				if err != nil {
					return 0, fmt.Errorf("body %d: %w", i, err)
				}
				if locals += uint64(k); locals > maxLocals {
					return 0, fmt.Errorf("body %d declares more than %d locals", i, maxLocals)
				}
			}
			r.off += int(size)
		case 11: // data
			flag, err := r.u32()
			if err != nil {
				return 0, err
			}
			switch flag {
			case 0:
				err = skipConstExpr(r)
			case 1:
			case 2:
				if _, err = r.u32(); err == nil {
					err = skipConstExpr(r)
				}
			default:
				err = fmt.Errorf("data segment %d: flags %d", i, flag)
			}
			if err == nil {
				err = r.bytesVec()
			}
			if err != nil {
				return 0, err
			}
		}
	}
	return funcs, nil
}

func checkElement(r *wreader) error {
	flag, err := r.u32()
	if err != nil {
		return err
	}
	if flag > 7 {
		return fmt.Errorf("element segment flags %d", flag)
	}
	if flag&2 != 0 && flag&1 == 0 { // explicit table index
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	if flag&1 == 0 { // active: offset
		if err := skipConstExpr(r); err != nil {
			return err
		}
	}
	if flag&3 != 0 { // elemkind or reftype
		if _, err := r.byte(); err != nil {
			return err
		}
	}
	n, err := r.count("elements")
	if err != nil {
		return err
	}
	for j := 0; j < n; j++ {
		if flag&4 != 0 {
			err = skipConstExpr(r)
		} else {
			_, err = r.u32()
		}
		if err != nil {
			return err
		}
	}
	return nil
}
