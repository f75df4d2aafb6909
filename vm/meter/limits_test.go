package meter

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameLimit(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxFrameSlots = 12
	// Frame = 1 param + locals + max stack height + 3 slots of slack.
	tests := []struct {
		name   string
		locals uint32
		height int // i32.const pushed before adding them up
		ok     bool
	}{
		{"fits", 6, 2, true},
		{"too many locals", 9, 1, false},
		{"stack too high", 1, 8, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var expr []byte
			for i := 0; i < tc.height; i++ {
				expr = append(expr, i32c(1)...)
			}
			for i := 1; i < tc.height; i++ {
				expr = append(expr, opI32Add)
			}
			expr = append(expr, opEnd)
			_, err := Instrument(simpleModule([][2]uint32{{tc.locals, valI32}}, expr), cfg)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want ErrTooLarge", err)
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
