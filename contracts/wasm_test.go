package contracts

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// A small WebAssembly reader for checks the build also makes: no float
// type or instruction anywhere, imports only from "scraft", exports only
// memory and functions. The vm makes the authoritative checks at deploy.

type wasmReader struct {
	b   []byte
	off int
	err error
}

func (r *wasmReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("at byte %d: %s", r.off, fmt.Sprintf(format, args...))
	}
}

func (r *wasmReader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *wasmReader) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 64 && r.err == nil; shift += 7 {
		c := r.byte()
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("bad LEB128")
	return 0
}

// sleb skips a signed LEB128.
func (r *wasmReader) sleb() {
	for i := 0; i < 10 && r.err == nil; i++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail("bad LEB128")
}

func (r *wasmReader) skip(n int) {
	if n < 0 || r.off+n > len(r.b) {
		r.fail("truncated")
		return
	}
	r.off += n
}

func (r *wasmReader) name() string {
	n := int(r.uleb())
	start := r.off
	r.skip(n)
	if r.err != nil {
		return ""
	}
	return string(r.b[start:r.off])
}

type wasmInfo struct {
	imports []string // "module.name"
	exports []string // "func:name" or "memory:name"...
	floats  []string // where a float appears
}

func isFloatType(t byte) bool { return t == 0x7d || t == 0x7c }

func isFloatOp(op byte) bool {
	switch {
	case op == 0x2a, op == 0x2b, op == 0x38, op == 0x39, op == 0x43, op == 0x44:
		return true
	case op >= 0x5b && op <= 0x66, op >= 0x8b && op <= 0xa6, op >= 0xa8 && op <= 0xab, op >= 0xae && op <= 0xbf:
		return true
	}
	return false
}

func scanWasm(b []byte) (*wasmInfo, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" || binary.LittleEndian.Uint32(b[4:]) != 1 {
		return nil, errors.New("not a wasm v1 module")
	}
	info := &wasmInfo{}
	r := &wasmReader{b: b, off: 8}
	for r.off < len(b) && r.err == nil {
		id := r.byte()
		size := int(r.uleb())
		end := r.off + size
		if r.err != nil || end > len(b) {
			return nil, fmt.Errorf("section %d: truncated", id)
		}
		s := &wasmReader{b: b[:end], off: r.off}
		switch id {
		case 1: // types
			for i, n := 0, int(s.uleb()); i < n && s.err == nil; i++ {
				if s.byte() != 0x60 {
					s.fail("bad func type")
				}
				for k := 0; k < 2; k++ {
					for j, m := 0, int(s.uleb()); j < m && s.err == nil; j++ {
						if isFloatType(s.byte()) {
							info.floats = append(info.floats, fmt.Sprintf("type %d", i))
						}
					}
				}
			}
		case 2: // imports
			for i, n := 0, int(s.uleb()); i < n && s.err == nil; i++ {
				mod, name := s.name(), s.name()
				info.imports = append(info.imports, mod+"."+name)
				switch kind := s.byte(); kind {
				case 0:
					s.uleb()
				case 2: // memory
					if s.byte()&1 == 1 {
						s.uleb()
					}
					s.uleb()
				default:
					s.fail("import kind %d", kind)
				}
			}
		case 6: // globals
			for i, n := 0, int(s.uleb()); i < n && s.err == nil; i++ {
				if isFloatType(s.byte()) {
					info.floats = append(info.floats, fmt.Sprintf("global %d", i))
				}
				s.byte() // mutability
				scanCode(s, info, fmt.Sprintf("global %d", i), true)
			}
		case 7: // exports
			kinds := map[byte]string{0: "func", 1: "table", 2: "memory", 3: "global"}
			for i, n := 0, int(s.uleb()); i < n && s.err == nil; i++ {
				name := s.name()
				info.exports = append(info.exports, kinds[s.byte()]+":"+name)
				s.uleb()
			}
		case 10: // code
			for i, n := 0, int(s.uleb()); i < n && s.err == nil; i++ {
				bodySize := int(s.uleb())
				bodyEnd := s.off + bodySize
				body := &wasmReader{b: b[:bodyEnd], off: s.off}
				for j, m := 0, int(body.uleb()); j < m && body.err == nil; j++ {
					body.uleb()
					if isFloatType(body.byte()) {
						info.floats = append(info.floats, fmt.Sprintf("function body %d locals", i))
					}
				}
				for body.off < bodyEnd && body.err == nil {
					scanCode(body, info, fmt.Sprintf("function body %d", i), false)
				}
				if body.err != nil {
					return nil, fmt.Errorf("function body %d: %w", i, body.err)
				}
				s.off = bodyEnd
			}
		}
		if s.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, s.err)
		}
		r.off = end
	}
	return info, r.err
}

// scanCode reads instructions: one if !untilEnd, else up to and including
// the next end opcode (a constant expression).
func scanCode(r *wasmReader, info *wasmInfo, where string, untilEnd bool) {
	for r.err == nil {
		at := r.off
		op := r.byte()
		if isFloatOp(op) {
			info.floats = append(info.floats, fmt.Sprintf("%s: opcode 0x%02x at byte %d", where, op, at))
		}
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04:
			c := r.b[r.off]
			if c == 0x40 || c >= 0x6f && c <= 0x7f {
				r.byte()
				if isFloatType(c) {
					info.floats = append(info.floats, where+": float block type")
				}
			} else {
				r.sleb()
			}
		case op == 0x0c || op == 0x0d || op == 0x10 || op >= 0x20 && op <= 0x26 || op == 0xd2:
			r.uleb()
		case op == 0x0e:
			for i, n := 0, int(r.uleb()); i <= n && r.err == nil; i++ {
				r.uleb()
			}
		case op == 0x11:
			r.uleb()
			r.uleb()
		case op == 0x1c:
			for i, n := 0, int(r.uleb()); i < n && r.err == nil; i++ {
				if isFloatType(r.byte()) {
					info.floats = append(info.floats, where+": float select")
				}
			}
		case op >= 0x28 && op <= 0x3e:
			r.uleb()
			r.uleb()
		case op == 0x3f || op == 0x40 || op == 0xd0:
			r.byte()
		case op == 0x41 || op == 0x42:
			r.sleb()
		case op == 0x43:
			r.skip(4)
		case op == 0x44:
			r.skip(8)
		case op == 0xfc:
			sub := r.uleb()
			switch {
			case sub <= 7:
				info.floats = append(info.floats, fmt.Sprintf("%s: saturating truncation at byte %d", where, at))
			case sub == 8:
				r.uleb()
				r.byte()
			case sub == 9:
				r.uleb()
			case sub == 10:
				r.byte()
				r.byte()
			case sub == 11:
				r.byte()
			default:
				r.fail("unsupported opcode 0xfc %d", sub)
			}
		case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
			op >= 0x45 && op <= 0xc4 || op == 0xd1:
			// no immediates
		default:
			r.fail("unsupported opcode 0x%02x", op)
		}
		if !untilEnd || op == 0x0b {
			return
		}
	}
}

func TestEmbeddedWasm(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	abiImports := map[string]string{
		"input_read": "i32:", "sender": "i32:", "height": ":i64", "timestamp_ms": ":i64",
		"res_get": "i32,i32,i32,i32,i32:i32", "res_put": "i32,i32,i32,i32,i32:", "res_del": "i32,i32,i32:i32",
		"emit": "i32,i32,i32,i32:", "output_write": "i32,i32:", "abort": "i32,i32,i32:",
	}
	sig := func(params, results []api.ValueType) string {
		s := ""
		for i, p := range params {
			if i > 0 {
				s += ","
			}
			s += api.ValueTypeName(p)
		}
		s += ":"
		for i, p := range results {
			if i > 0 {
				s += ","
			}
			s += api.ValueTypeName(p)
		}
		return s
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			c, err := Get(name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := scanWasm(c.Wasm)
			if err != nil {
				t.Fatal(err)
			}
			if len(info.floats) > 0 {
				t.Fatalf("floats in %s: %v", name, info.floats)
			}
			for _, imp := range info.imports {
				if len(imp) < 7 || imp[:7] != "scraft." {
					t.Errorf("import %s outside the scraft ABI", imp)
				}
			}
			var funcs []string
			for _, e := range info.exports {
				switch {
				case e == "memory:memory":
				case len(e) > 5 && e[:5] == "func:":
					funcs = append(funcs, e[5:])
				default:
					t.Errorf("unexpected export %s", e)
				}
			}
			if !slices.Contains(info.exports, "memory:memory") {
				t.Error("memory not exported")
			}
			slices.Sort(funcs)
			want := c.EntryNames()
			slices.Sort(want)
			if !slices.Equal(funcs, want) {
				t.Errorf("exported functions %v, ABI says %v", funcs, want)
			}

			m, err := rt.CompileModule(ctx, c.Wasm)
			if err != nil {
				t.Fatal(err)
			}
			for n, f := range m.ExportedFunctions() {
				if got := sig(f.ParamTypes(), f.ResultTypes()); got != "i32:i32" {
					t.Errorf("export %s has type %s, want (i32) -> i32", n, got)
				}
			}
			for _, f := range m.ImportedFunctions() {
				mod, n, _ := f.Import()
				want, ok := abiImports[n]
				if mod != "scraft" || !ok {
					t.Errorf("import %s.%s is not in ABI v1", mod, n)
				} else if got := sig(f.ParamTypes(), f.ResultTypes()); got != want {
					t.Errorf("import %s has type %s, want %s", n, got, want)
				}
			}
		})
	}
}

func TestScanWasmFindsFloats(t *testing.T) {
	// (module (func (result f64) f64.const 1))
	mod := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 5, 1, 0x60, 0, 1, 0x7c, // type section
		3, 2, 1, 0, // function section
		10, 13, 1, 11, 0, 0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x0b, // code
	}
	info, err := scanWasm(mod)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.floats) != 2 {
		t.Fatalf("floats = %v, want the type and the f64.const", info.floats)
	}
}
