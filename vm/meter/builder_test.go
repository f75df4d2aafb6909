package meter

// A tiny WASM encoder for tests: just enough to assemble modules from
// instruction bytes.

func u32(v uint32) []byte { return appendU32(nil, v) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func vec(items ...[]byte) []byte {
	return cat(u32(uint32(len(items))), cat(items...))
}

func name(s string) []byte { return cat(u32(uint32(len(s))), []byte(s)) }

func sec(id byte, items ...[]byte) []byte {
	p := vec(items...)
	return cat([]byte{id}, u32(uint32(len(p))), p)
}

func rawSec(id byte, payload []byte) []byte {
	return cat([]byte{id}, u32(uint32(len(payload))), payload)
}

func wasmModule(sections ...[]byte) []byte {
	return cat(wasmHeader, cat(sections...))
}

func encFuncType(params, results []byte) []byte {
	return cat([]byte{0x60}, vec(splitBytes(params)...), vec(splitBytes(results)...))
}

func splitBytes(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// codeBody encodes a function body: locals as (count, type) pairs, then the
// expression, which must end with end (0x0b).
func codeBody(locals [][2]uint32, expr []byte) []byte {
	var ls [][]byte
	for _, l := range locals {
		ls = append(ls, cat(u32(l[0]), []byte{byte(l[1])}))
	}
	b := cat(vec(ls...), expr)
	return cat(u32(uint32(len(b))), b)
}

func exportFunc(n string, idx uint32) []byte { return cat(name(n), []byte{0x00}, u32(idx)) }

func i32c(v int32) []byte { return cat([]byte{opI32Const}, appendS64(nil, int64(v))) }

// simpleModule has one function of type (i32) -> i32 exported as "f".
func simpleModule(locals [][2]uint32, expr []byte) []byte {
	return wasmModule(
		sec(secType, encFuncType([]byte{valI32}, []byte{valI32})),
		sec(secFunction, u32(0)),
		sec(secExport, exportFunc("f", 0)),
		sec(secCode, codeBody(locals, expr)),
	)
}
