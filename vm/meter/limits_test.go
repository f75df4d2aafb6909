package meter

import (
	"bytes"
	"errors"
	"testing"
)

// TestFrameLimit: the frame bound grows with each thing that can take
// native stack, and Instrument refuses a function one byte above
// MaxFrameBytes.
func TestFrameLimit(t *testing.T) {
	add := func(expr []byte) []byte { return append(expr, opI32Add) }
	consts := func(n int) []byte {
		var e []byte
		for i := 0; i < n; i++ {
			e = append(e, i32c(1)...)
		}
		for i := 1; i < n; i++ {
			e = add(e)
		}
		return append(e, opEnd)
	}
	sets := func(n int) []byte {
		var e []byte
		for i := 1; i <= n; i++ {
			e = append(e, opBlock, blockEmpty, opLocalGet, 0, opLocalSet, byte(i), opEnd)
		}
		return append(e, opLocalGet, 0, opEnd)
	}
	tests := []struct {
		name       string
		small, big []byte // the same function, with one more of the thing
	}{
		{"locals", simpleModule([][2]uint32{{4, valI32}}, consts(1)), simpleModule([][2]uint32{{5, valI32}}, consts(1))},
		{"stack height", simpleModule(nil, consts(4)), simpleModule(nil, consts(5))},
		{"locals set across blocks", simpleModule([][2]uint32{{8, valI32}}, sets(3)), simpleModule([][2]uint32{{8, valI32}}, sets(4))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := func(wasm []byte) uint64 {
				m, err := Parse(wasm)
				if err != nil {
					t.Fatal(err)
				}
				out, err := m.Instrument(Config{MaxCallDepth: 1})
				if err != nil {
					t.Fatal(err)
				}
				return out.FrameBytes
			}
			small, big := frame(tc.small), frame(tc.big)
			if big < small+slotBytes {
				t.Fatalf("frame bound %d, then %d with one more: want at least %d more", small, big, slotBytes)
			}
			cfg := Config{MaxCallDepth: 1, MaxFrameBytes: uint32(big)}
			if _, err := Instrument(tc.big, cfg); err != nil {
				t.Fatalf("frame at the limit refused: %v", err)
			}
			cfg.MaxFrameBytes--
			if _, err := Instrument(tc.big, cfg); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("frame one byte above the limit: got %v, want ErrTooLarge", err)
			}
		})
	}
}

func TestDecodingLimits(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
		want error
	}{
		{"module too large", append(bytes.Clone(wasmHeader), make([]byte, MaxModuleSize)...), ErrTooLarge},
		{"too many locals", simpleModule([][2]uint32{{MaxLocals, valI32}, {1, valI64}}, []byte{opEnd}), ErrTooLarge},
		{"local count overflow", simpleModule([][2]uint32{{0xffffffff, valI32}, {0xffffffff, valI32}}, []byte{opEnd}), ErrTooLarge},
		{"too many functions", wasmModule(sec(secType, encFuncType(nil, nil)), rawSec(secFunction, cat(u32(MaxFunctions+1), make([]byte, MaxFunctions+1)))), ErrTooLarge},
		{"count beyond end", wasmModule(rawSec(secType, u32(1000))), ErrMalformed},
		{"bad header", []byte("\x00asm\x02\x00\x00\x00"), ErrMalformed},
		{"section out of order", wasmModule(sec(secFunction), sec(secType)), ErrMalformed},
		{"unknown section", wasmModule(sec(13)), ErrUnsupported},
		{"overlong leb", wasmModule([]byte{secType, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), ErrMalformed},
		{"code without function section", wasmModule(sec(secCode, codeBody(nil, []byte{opEnd}))), ErrMalformed},
		{"missing end", simpleModule(nil, []byte{opNop()}), ErrMalformed},
		{"trailing bytes after end", simpleModule(nil, []byte{opEnd, opEnd}), ErrMalformed},
		{"branch out of range", simpleModule(nil, []byte{opBr, 5, opEnd}), ErrMalformed},
		{"call out of range", simpleModule(nil, []byte{opCall, 9, opEnd}), ErrMalformed},
		{"tail call", simpleModule(nil, []byte{0x12, 0, opEnd}), ErrUnsupported},
		{"threads", simpleModule(nil, []byte{0xfe, 0, opEnd}), ErrUnsupported},
		{"multi-memory", simpleModule(nil, []byte{0x3f, 1, opEnd}), ErrUnsupported},
		{"float block type", simpleModule(nil, []byte{opBlock, valF64, opUnreachable, opEnd, opEnd}), ErrFloat},
		// Invalid modules that would reach the appended globals or the
		// scratch local after the rewrite.
		{"global.get of the gas global", simpleModule(nil, []byte{opGlobalGet, 0, opI32Const, 0, opEnd}), ErrMalformed},
		{"local beyond the declared ones", simpleModule(nil, []byte{opLocalGet, 1, opEnd}), ErrMalformed},
		{"export of the gas global", wasmModule(rawSec(secExport, cat(u32(1), name("g"), []byte{0x03, 0}))), ErrMalformed},
		{"float select type", simpleModule(nil, []byte{0x1c, 1, valF32, opEnd}), ErrFloat},
		{"export named like an added one", wasmModule(sec(secType, encFuncType(nil, nil)), sec(secFunction, u32(0)),
			sec(secExport, exportFunc(GlobalExportPrefix+"0", 0)), sec(secCode, codeBody(nil, []byte{opEnd}))), ErrReservedExport},
		{"two memories", wasmModule(rawSec(secImport, cat(u32(1), name("env"), name("m"), []byte{0x02, 0, 1})),
			sec(secMemory, []byte{0, 1})), ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Instrument(tc.wasm, DefaultConfig()); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func opNop() byte { return 0x01 }
