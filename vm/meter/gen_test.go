package meter

import (
	"encoding/binary"
	"fmt"
)

// progGen turns fuzz bytes into a valid, terminating module: nfuncs
// functions of type (i32) -> i32, exported as f0..fn-1, that compute with
// integers, locals, a global, memory, bounded loops, blocks, if/else,
// br_table, multi-value blocks and forward calls (direct and through a
// table). Traps (division by zero, out-of-bounds access) are allowed: they
// are outcomes too.
type progGen struct {
	data      []byte
	pos       int
	nfuncs    int
	fn        int
	depth     int
	loopDepth int
	calls     int
}

const (
	genFuncs    = 3
	genMaxDepth = 6
	genMaxLoop  = 3
	genGeneral  = 4 // locals 1..4
	genCounter  = 1 + genGeneral
	genAcc      = genCounter + genMaxLoop
	genLocals   = genGeneral + 2*genMaxLoop
)

func (g *progGen) next() byte {
	if g.pos >= len(g.data) {
		return 0
	}
	c := g.data[g.pos]
	g.pos++
	return c
}

func (g *progGen) exhausted() bool { return g.pos >= len(g.data) }

func generate(data []byte) []byte { return generateN(data, genFuncs) }

// generateN makes a module of n functions.
func generateN(data []byte, n int) []byte {
	g := &progGen{data: data, nfuncs: n}
	var bodies, funcs, exports, elems [][]byte
	for g.fn = 0; g.fn < g.nfuncs; g.fn++ {
		g.calls = 0
		var e []byte
		for i := int(g.next() % 4); i > 0; i-- {
			e = g.stmt(e)
		}
		e = g.expr(e)
		e = append(e, opEnd)
		bodies = append(bodies, codeBody([][2]uint32{{genLocals, valI32}}, e))
		funcs = append(funcs, u32(0))
		exports = append(exports, exportFunc(fmt.Sprintf("f%d", g.fn), uint32(g.fn)))
		elems = append(elems, u32(uint32(g.fn)))
	}
	return wasmModule(
		sec(secType,
			encFuncType([]byte{valI32}, []byte{valI32}),
			encFuncType([]byte{valI32, valI32}, []byte{valI32, valI32})),
		sec(secFunction, funcs...),
		sec(secTable, cat([]byte{valFuncref, 0x00}, u32(uint32(g.nfuncs)))),
		sec(secMemory, []byte{0x01, 1, 4}),
		sec(secGlobal, cat([]byte{valI32, 0x01}, i32c(3), []byte{opEnd})),
		sec(secExport, exports...),
		sec(secElement, cat([]byte{0x00}, i32c(0), []byte{opEnd}, vec(elems...))),
		sec(secCode, bodies...),
	)
}

func (g *progGen) leaf(b []byte) []byte {
	if g.next()%2 == 0 {
		return append(b, opLocalGet, g.next()%(1+genGeneral))
	}
	return append(b, i32c(int32(int8(g.next())))...)
}

var (
	genBinops = []byte{0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78}
	genCmps   = []byte{0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f}
	genUnops  = []byte{0x45, 0x67, 0x68, 0x69, 0xc0, 0xc1}
	genI64ops = []byte{0x7c, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a}
	genLoads  = []byte{0x28, 0x2c, 0x2d, 0x2e, 0x2f}
)

func pick(b byte, from []byte) byte { return from[int(b)%len(from)] }

// addr pushes e & mask.
func (g *progGen) masked(b []byte, mask int32) []byte {
	b = g.expr(b)
	b = append(b, i32c(mask)...)
	return append(b, 0x71) // i32.and
}

// expr appends code that pushes one i32.
func (g *progGen) expr(b []byte) []byte {
	if g.depth >= genMaxDepth || g.exhausted() {
		return g.leaf(b)
	}
	g.depth++
	defer func() { g.depth-- }()
	switch g.next() % 17 {
	case 0:
		var v [4]byte
		for i := range v {
			v[i] = g.next()
		}
		return append(b, i32c(int32(binary.LittleEndian.Uint32(v[:])))...)
	case 1:
		return g.leaf(b)
	case 2:
		op := pick(g.next(), genBinops)
		return append(g.expr(g.expr(b)), op)
	case 3:
		op := pick(g.next(), genCmps)
		return append(g.expr(g.expr(b)), op)
	case 4:
		op := pick(g.next(), genUnops)
		return append(g.expr(b), op)
	case 5: // through i64
		op := pick(g.next(), genI64ops)
		b = append(g.expr(b), 0xac) // i64.extend_i32_s
		b = append(g.expr(b), 0xad) // i64.extend_i32_u
		b = append(b, op)
		if g.next()%2 == 0 {
			b = append(b, 0xc4) // i64.extend32_s
		}
		return append(b, 0xa7) // i32.wrap_i64
	case 6: // if/else with a result
		b = g.expr(b)
		b = append(b, opIf, valI32)
		b = g.expr(b)
		b = append(b, opElse)
		b = g.expr(b)
		return append(b, opEnd)
	case 7: // block (result i32): e1 e2 br_if 0 drop e3
		b = append(b, opBlock, valI32)
		b = g.expr(g.expr(b))
		b = append(b, opBrIf, 0, 0x1a)
		b = g.expr(b)
		return append(b, opEnd)
	case 8:
		return g.loop(b)
	case 9:
		op := pick(g.next(), genLoads)
		b = g.masked(b, 0xffff)
		return append(b, op, 0, g.next()%8) // align 0, small offset
	case 10, 11:
		if g.fn+1 >= g.nfuncs || g.loopDepth > 0 || g.calls >= 2 {
			return g.leaf(b)
		}
		g.calls++
		target := g.fn + 1 + int(g.next())%(g.nfuncs-g.fn-1)
		b = g.expr(b)
		if g.next()%2 == 0 {
			return append(append(b, opCall), u32(uint32(target))...)
		}
		b = append(b, i32c(int32(target))...)
		return append(b, opCallIndirect, 0, 0)
	case 12:
		return g.expr(g.stmt(b))
	case 13:
		return append(b, opGlobalGet, 0)
	case 14: // select
		b = g.expr(g.expr(g.expr(b)))
		return append(b, 0x1b)
	case 15: // br_table with a value: inner block falls through to +1
		b = append(b, opBlock, valI32, opBlock, valI32)
		b = g.expr(b)
		b = g.masked(b, 3)
		b = append(b, opBrTable, 2, 0, 1, 0, opEnd)
		b = append(b, i32c(1)...)
		return append(b, opI32Add, opEnd)
	default: // a multi-value block of type 1: (i32 i32) -> (i32 i32)
		b = g.expr(g.expr(b))
		b = append(b, opBlock, 1)
		b = append(b, opLocalSet, 1, opLocalSet, 2, opLocalGet, 1, opLocalGet, 2)
		return append(b, opEnd, pick(g.next(), genBinops))
	}
}

// loop appends a loop that runs (e & 7) times, summing another expression.
func (g *progGen) loop(b []byte) []byte {
	if g.loopDepth >= genMaxLoop {
		return g.leaf(b)
	}
	c, acc := byte(genCounter+g.loopDepth), byte(genAcc+g.loopDepth)
	b = g.masked(b, 7)
	b = append(b, opLocalSet, c)
	b = append(b, i32c(0)...)
	b = append(b, opLocalSet, acc)
	b = append(b, opBlock, blockEmpty, opLoop, blockEmpty)
	b = append(b, opLocalGet, c, 0x45, opBrIf, 1)
	g.loopDepth++
	b = append(b, opLocalGet, acc)
	b = g.expr(b)
	b = append(b, 0x6a, opLocalSet, acc)
	g.loopDepth--
	b = append(b, opLocalGet, c)
	b = append(b, i32c(1)...)
	b = append(b, opI32Sub, opLocalSet, c, opBr, 0, opEnd, opEnd)
	return append(b, opLocalGet, acc)
}

// stmt appends code with no net stack effect.
func (g *progGen) stmt(b []byte) []byte {
	switch g.next() % 7 {
	case 0:
		return append(g.expr(b), opLocalSet, 1+g.next()%genGeneral)
	case 1:
		b = g.masked(b, 0xfff)
		b = g.expr(b)
		return append(b, 0x36, 2, 0) // i32.store
	case 2: // memory.fill
		b = g.masked(b, 0xfff)
		b = g.expr(b)
		b = g.masked(b, 0xff)
		return append(b, opPrefixFC, 11, 0)
	case 3: // memory.copy
		b = g.masked(b, 0xfff)
		b = g.masked(b, 0xfff)
		b = g.masked(b, 0xff)
		return append(b, opPrefixFC, 10, 0, 0)
	case 4:
		return append(g.expr(b), opGlobalSet, 0)
	case 5: // memory.grow by 0 or 1 page
		b = g.masked(b, 1)
		return append(b, opMemoryGrow, 0, 0x1a)
	default:
		return append(g.expr(b), 0x1a)
	}
}
