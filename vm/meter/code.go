package meter

import "fmt"

// Opcodes the rewrite emits or inspects.
const (
	opUnreachable  = 0x00
	opBlock        = 0x02
	opLoop         = 0x03
	opIf           = 0x04
	opElse         = 0x05
	opEnd          = 0x0b
	opBr           = 0x0c
	opBrIf         = 0x0d
	opBrTable      = 0x0e
	opReturn       = 0x0f
	opCall         = 0x10
	opCallIndirect = 0x11
	opLocalGet     = 0x20
	opLocalSet     = 0x21
	opLocalTee     = 0x22
	opGlobalGet    = 0x23
	opGlobalSet    = 0x24
	opMemoryGrow   = 0x40
	opI32Const     = 0x41
	opI64Const     = 0x42
	opI32GtU       = 0x4b
	opI64LtS       = 0x53
	opI32Add       = 0x6a
	opI32Sub       = 0x6b
	opI64Sub       = 0x7d
	opI64Mul       = 0x7e
	opI64ExtendU   = 0xad
	opPrefixFC     = 0xfc
	blockEmpty     = 0x40
)

// meterSlack is the most operand slots the inserted code pushes on top of
// the function's own stack (a dynamic charge: count, gas, count, weight).
const meterSlack = 3

// ctrl is one entry of the control stack.
type ctrl struct {
	height      int // operand height below the block's parameters
	params      uint32
	results     uint32
	isIf        bool
	unreachable bool
}

// body rewrites one function body.
type body struct {
	m   *rewriter
	fn  uint32 // function index
	r   *reader
	out []byte // finished output
	seg []byte // the current metered segment, not yet charged
	// segCost is the static cost of the instructions in seg.
	segCost uint64
	// segDead is set when seg follows br, br_table, return or unreachable:
	// it is dead code up to the block's end or else and is not charged.
	segDead bool

	ctrls     []ctrl
	height    int
	maxHeight int

	scratch     uint32 // index of the scratch i32 local
	needScratch bool

	// What the native frame bound counts (see frameBytes).
	values   uint64 // instructions, inserted ones included
	merges   uint64 // blocks, loops and ifs of the original code
	arity    uint64 // block parameters and results, summed
	maxCall  uint64 // most parameters + results of one call
	assigned uint64 // distinct locals and parameters set or teed
	isSet    []bool // by local index: set or teed
}

func (w *rewriter) instrumentCode() ([]byte, error) {
	code := w.secs[w.codeIdx].payload
	out := appendU32(make([]byte, 0, len(code)*2), uint32(len(w.bodies)))
	b := &body{m: w}
	for i := range w.bodies {
		var err error
		if out, err = b.rewrite(out, w.numImports+uint32(i), &w.bodies[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (b *body) errorf(err error, at int, format string, args ...any) error {
	return fmt.Errorf("%w: function %d at offset %#x: %s", err, b.fn, at, fmt.Sprintf(format, args...))
}

// rewrite appends the instrumented body of function fn (its size, locals
// and expression) to out.
func (b *body) rewrite(out []byte, fn uint32, fb *funcBody) ([]byte, error) {
	if fb.refusal != nil {
		return nil, fb.refusal
	}
	r := &reader{b: fb.expr, base: fb.exprOff}
	*b = body{m: b.m, fn: fn, r: r, out: b.out[:0], seg: b.seg[:0], ctrls: b.ctrls[:0], isSet: b.isSet[:0]}
	ft := b.m.types[b.m.funcTypes[fn]]
	params, results := uint32(len(ft.Params)), uint32(len(ft.Results))
	b.scratch = params + fb.nlocals
	if n := int(b.scratch); cap(b.isSet) >= n {
		b.isSet = b.isSet[:n]
		clear(b.isSet)
	} else {
		b.isSet = make([]bool, n)
	}

	// Expression.
	b.ctrls = append(b.ctrls, ctrl{results: results})
	for len(b.ctrls) > 0 {
		if err := b.instr(); err != nil {
			return nil, err
		}
	}
	if !r.done() {
		return nil, r.errorf("function %d: %d bytes after the final end", fn, r.remaining())
	}

	slots := uint64(params) + uint64(fb.nlocals) + uint64(b.maxHeight) + meterSlack
	if b.needScratch {
		slots++
	}
	frame := b.frameBytes(slots)
	b.m.frame = max(b.m.frame, frame)
	if frame > uint64(b.m.cfg.MaxFrameBytes) {
		return nil, b.errorf(ErrTooLarge, fb.off, "native frame bound of %d bytes exceeds %d (%d slots for params, locals and operands; %d instructions; %d locals set; %d blocks)",
			frame, b.m.cfg.MaxFrameBytes, slots, b.values, b.assigned, b.merges)
	}

	groupCount := fb.groups
	if b.needScratch {
		groupCount++
	}
	size := ulebLen(groupCount) + len(fb.localDecls) + len(b.out)
	if b.needScratch {
		size += 2
	}
	out = appendU32(out, uint32(size))
	out = appendU32(out, groupCount)
	out = append(out, fb.localDecls...)
	if b.needScratch {
		out = append(out, 1, valI32)
	}
	return append(out, b.out...), nil
}

// Native frame bound. wazero's compiler (wazevo, v1.12) gives a function a
// frame of: return address and frame pointer, a stack-check slot, the
// callee-saved registers it clobbers (16 bytes each), the stack part of
// the arguments and results of its largest call, and one spill slot (4
// bytes for an i32, 8 for an i64 or a reference) for every SSA value the
// register allocator ever spills: slots are not shared between values.
// SSA values come from instructions (at most one each) and from block
// parameters, which the SSA builder places at merge points for the
// variables set on more than one path: locals, and also every global and
// the memory's base and length, which wazevo keeps in SSA variables. The
// bound counts all of them as spilled, at 8 bytes each. DESIGN.md has the
// measured figures.
const (
	// frameFixed covers the return address, frame pointer, stack-check
	// slot, call area and every register either ISA could save (arm64:
	// 63 registers × 16 bytes).
	frameFixed = 1024
	// slotBytes is the largest spill slot of a value contracts can have.
	slotBytes = 8
	// insertedValues is the most values one inserted gas charge or call
	// wrapper produces.
	insertedValues = 10
)

// frameBytes is the bound on the native frame of the function just
// rewritten, given its params + locals + operand stack slots.
func (b *body) frameBytes(slots uint64) uint64 {
	// The variables: locals set, the module's globals, the two added
	// ones, memory base and length.
	vars := b.assigned + uint64(b.m.numGlobals) + 2 + 2
	n := slots + b.maxCall + b.values + b.arity + vars*(b.merges+1)
	return frameFixed + slotBytes*n
}

// flush charges the current segment at its start and moves it to the
// output. The next instruction starts a new segment.
func (b *body) flush() {
	if b.segCost > 0 && !b.segDead {
		b.out = b.m.appendCharge(b.out, b.segCost)
		b.values += insertedValues
	}
	b.out = append(b.out, b.seg...)
	b.seg = b.seg[:0]
	b.segCost = 0
	top := b.ctrls
	b.segDead = len(top) > 0 && top[len(top)-1].unreachable
}

// appendCharge appends: gas -= cost; if gas < 0 { unreachable }.
func (m *rewriter) appendCharge(out []byte, cost uint64) []byte {
	out = append(out, opGlobalGet)
	out = appendU32(out, m.gasIdx)
	out = append(out, opI64Const)
	out = appendS64(out, int64(cost))
	out = append(out, opI64Sub, opGlobalSet)
	out = appendU32(out, m.gasIdx)
	return m.appendGasCheck(out)
}

func (m *rewriter) appendGasCheck(out []byte) []byte {
	out = append(out, opGlobalGet)
	out = appendU32(out, m.gasIdx)
	return append(out, opI64Const, 0, opI64LtS, opIf, blockEmpty, opUnreachable, opEnd)
}

// appendDynamicCharge charges weight × n, where n is the i32 on top of the
// stack, leaving n in place.
func (b *body) appendDynamicCharge(weight uint64) {
	if weight == 0 {
		return
	}
	b.needScratch = true
	b.values += insertedValues
	m := b.m
	s := b.seg
	s = append(s, opLocalTee)
	s = appendU32(s, b.scratch)
	s = append(s, opGlobalGet)
	s = appendU32(s, m.gasIdx)
	s = append(s, opLocalGet)
	s = appendU32(s, b.scratch)
	s = append(s, opI64ExtendU, opI64Const)
	s = appendS64(s, int64(weight))
	s = append(s, opI64Mul, opI64Sub, opGlobalSet)
	s = appendU32(s, m.gasIdx)
	b.seg = m.appendGasCheck(s)
}

// appendCall wraps the call instruction raw in depth bookkeeping:
// depth++; if depth > max { unreachable }; call; depth--.
func (b *body) appendCall(raw []byte) {
	b.values += insertedValues
	m := b.m
	s := b.seg
	s = append(s, opGlobalGet)
	s = appendU32(s, m.depthIdx)
	s = append(s, opI32Const, 1, opI32Add, opGlobalSet)
	s = appendU32(s, m.depthIdx)
	s = append(s, opGlobalGet)
	s = appendU32(s, m.depthIdx)
	s = append(s, opI32Const)
	s = appendS64(s, int64(int32(m.cfg.MaxCallDepth)))
	s = append(s, opI32GtU, opIf, blockEmpty, opUnreachable, opEnd)
	s = append(s, raw...)
	s = append(s, opGlobalGet)
	s = appendU32(s, m.depthIdx)
	s = append(s, opI32Const, 1, opI32Sub, opGlobalSet)
	s = appendU32(s, m.depthIdx)
	b.seg = s
}

// pop and push track the operand stack height for the frame bound. In
// unreachable code the stack is polymorphic: pops stop at the block's base.
func (b *body) pop(n uint32) {
	top := &b.ctrls[len(b.ctrls)-1]
	b.height -= int(n)
	if b.height < top.height {
		b.height = top.height
	}
}

func (b *body) push(n uint32) {
	b.height += int(n)
	if b.height > b.maxHeight {
		b.maxHeight = b.height
	}
}

func (b *body) setUnreachable() {
	top := &b.ctrls[len(b.ctrls)-1]
	b.height = top.height
	top.unreachable = true
}

// blockType reads a block type and returns its parameter and result counts.
func (b *body) blockType() (params, results uint32, err error) {
	r := b.r
	at := r.off()
	if r.done() {
		return 0, 0, r.errorf("unexpected end")
	}
	switch t := r.b[r.pos]; t {
	case blockEmpty:
		r.pos++
		return 0, 0, nil
	case valI32, valI64, valF32, valF64, valV128, valFuncref, valExternref:
		r.pos++
		if err := checkValType(t, place{"block type in function", int(b.fn)}, at); err != nil {
			return 0, 0, err
		}
		return 0, 1, nil
	}
	idx, err := r.sleb(33)
	if err != nil {
		return 0, 0, err
	}
	if idx < 0 || idx >= int64(len(b.m.types)) {
		return 0, 0, b.errorf(ErrMalformed, at, "block type %d", idx)
	}
	ft := b.m.types[idx]
	return uint32(len(ft.Params)), uint32(len(ft.Results)), nil
}

func (b *body) funcType(idx uint64, at int) (FuncType, error) {
	if idx >= uint64(len(b.m.funcTypes)) {
		return FuncType{}, b.errorf(ErrMalformed, at, "function index %d out of range", idx)
	}
	return b.m.types[b.m.funcTypes[idx]], nil
}

func (b *body) label(at int) error {
	l, err := b.r.u32()
	if err != nil {
		return err
	}
	if int(l) >= len(b.ctrls) {
		return b.errorf(ErrMalformed, at, "branch depth %d out of range", l)
	}
	return nil
}

func (b *body) memarg(at int) error {
	align, err := b.r.u32()
	if err != nil {
		return err
	}
	if align >= 64 {
		return b.errorf(ErrUnsupported, at, "memory index in memarg (multiple memories)")
	}
	_, err = b.r.u32()
	return err
}

// zeroByte reads the reserved memory-index byte of memory.size/grow and the
// bulk memory instructions.
func (b *body) zeroByte(at int) error {
	c, err := b.r.byte()
	if err != nil {
		return err
	}
	if c != 0 {
		return b.errorf(ErrUnsupported, at, "memory index %d (multiple memories)", c)
	}
	return nil
}

// changesState records the first instruction that changes a table or
// drops a segment (Output.StateOp).
func (b *body) changesState(op string) {
	if b.m.stateOp.Name == "" {
		b.m.stateOp = StateOp{Name: op, Func: b.fn}
	}
}

func (b *body) float(at int, op string) error {
	return b.errorf(ErrFloat, at, "%s", op)
}

// instr decodes one instruction, appends it (instrumented) to the current
// segment and ends the segment where control flow may enter or leave.
func (b *body) instr() error {
	r := b.r
	at := r.off()
	start := r.pos
	op, err := r.byte()
	if err != nil {
		return err
	}
	costs := b.m.cfg.Costs
	cost := costs.Default
	endSegment := false
	var raw []byte // set when the instruction is emitted by a helper

	switch {
	case op == opUnreachable, op == opReturn:
		b.setUnreachable()
		endSegment = true
	case op == 0x01: // nop
	case op == opBlock || op == opLoop || op == opIf:
		params, results, err := b.blockType()
		if err != nil {
			return err
		}
		if op == opIf {
			b.pop(1)
		}
		b.pop(params)
		if len(b.ctrls) >= maxVec {
			return b.errorf(ErrTooLarge, at, "blocks nested too deeply")
		}
		b.ctrls = append(b.ctrls, ctrl{height: b.height, params: params, results: results, isIf: op == opIf})
		b.push(params)
		b.merges++
		b.arity += uint64(params) + uint64(results)
		// A block is entered only by falling into it; loop headers and if
		// arms are branch targets or conditional.
		endSegment = op != opBlock
	case op == opElse:
		top := &b.ctrls[len(b.ctrls)-1]
		if !top.isIf || len(b.ctrls) == 1 {
			return b.errorf(ErrMalformed, at, "else without if")
		}
		top.isIf = false
		top.unreachable = false
		b.height = top.height
		b.push(top.params)
		endSegment = true
	case op == opEnd:
		top := b.ctrls[len(b.ctrls)-1]
		b.ctrls = b.ctrls[:len(b.ctrls)-1]
		b.height = top.height
		if len(b.ctrls) > 0 {
			b.push(top.results)
		}
		endSegment = true
	case op == opBr:
		if err := b.label(at); err != nil {
			return err
		}
		b.setUnreachable()
		endSegment = true
	case op == opBrIf:
		if err := b.label(at); err != nil {
			return err
		}
		b.pop(1)
		endSegment = true
	case op == opBrTable:
		n, err := r.count("br_table targets", maxVec)
		if err != nil {
			return err
		}
		for i := 0; i <= n; i++ {
			if err := b.label(at); err != nil {
				return err
			}
		}
		b.pop(1)
		b.setUnreachable()
		endSegment = true
	case op == opCall:
		idx, err := r.u32()
		if err != nil {
			return err
		}
		ft, err := b.funcType(uint64(idx), at)
		if err != nil {
			return err
		}
		b.pop(uint32(len(ft.Params)))
		b.push(uint32(len(ft.Results)))
		b.maxCall = max(b.maxCall, uint64(len(ft.Params)+len(ft.Results)))
		cost = costs.Call
		raw = r.b[start:r.pos]
		b.appendCall(raw)
	case op == opCallIndirect:
		tidx, err := r.u32()
		if err != nil {
			return err
		}
		if _, err := r.u32(); err != nil { // table
			return err
		}
		if int(tidx) >= len(b.m.types) {
			return b.errorf(ErrMalformed, at, "type index %d out of range", tidx)
		}
		ft := b.m.types[tidx]
		b.pop(1 + uint32(len(ft.Params)))
		b.push(uint32(len(ft.Results)))
		b.maxCall = max(b.maxCall, uint64(len(ft.Params)+len(ft.Results)))
		cost = costs.CallIndirect
		raw = r.b[start:r.pos]
		b.appendCall(raw)
	case op == 0x1a: // drop
		b.pop(1)
	case op == 0x1b: // select
		b.pop(3)
		b.push(1)
	case op == 0x1c: // select t*
		n, err := r.count("select types", maxVec)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			_, refusal, err := valType(r, place{"select type in function", int(b.fn)})
			if err != nil {
				return err
			}
			if refusal != nil {
				return refusal
			}
		}
		b.pop(3)
		b.push(1)
	case op >= 0x20 && op <= 0x24: // local.get/set/tee, global.get/set
		idx, err := r.u32()
		if err != nil {
			return err
		}
		// Original code must not reach the scratch local or the appended
		// globals: in a module that validated it cannot, but Instrument
		// does not rely on that.
		if op <= 0x22 && idx >= b.scratch || op >= 0x23 && idx >= b.m.numGlobals {
			return b.errorf(ErrMalformed, at, "index %d out of range", idx)
		}
		switch op {
		case 0x20, 0x23:
			b.push(1)
		case 0x21, 0x24:
			b.pop(1)
		}
		if (op == 0x21 || op == 0x22) && !b.isSet[idx] {
			b.isSet[idx] = true
			b.assigned++
		}
	case op == 0x25: // table.get
		if _, err := r.u32(); err != nil {
			return err
		}
		b.pop(1)
		b.push(1)
	case op == 0x26: // table.set
		if _, err := r.u32(); err != nil {
			return err
		}
		b.pop(2)
		b.changesState("table.set")
	case op >= 0x28 && op <= 0x3e: // loads and stores
		switch op {
		case 0x2a, 0x2b, 0x38, 0x39:
			return b.float(at, memOpName[op])
		}
		if err := b.memarg(at); err != nil {
			return err
		}
		if op <= 0x35 {
			cost = costs.Load
			b.pop(1)
			b.push(1)
		} else {
			cost = costs.Store
			b.pop(2)
		}
	case op == 0x3f: // memory.size
		if err := b.zeroByte(at); err != nil {
			return err
		}
		b.push(1)
	case op == opMemoryGrow:
		if err := b.zeroByte(at); err != nil {
			return err
		}
		cost = costs.MemoryGrow
		b.appendDynamicCharge(costs.GrowPerPage)
	case op == opI32Const:
		if _, err := r.sleb(32); err != nil {
			return err
		}
		b.push(1)
	case op == opI64Const:
		if _, err := r.sleb(64); err != nil {
			return err
		}
		b.push(1)
	case op == 0x43:
		return b.float(at, "f32.const")
	case op == 0x44:
		return b.float(at, "f64.const")
	case op >= 0x45 && op <= 0xc4:
		pops, ok := numericPops(op)
		if !ok {
			return b.float(at, fmt.Sprintf("opcode %#x", op))
		}
		switch op {
		case 0x6d, 0x6e, 0x6f, 0x70, 0x7f, 0x80, 0x81, 0x82:
			cost = costs.DivRem
		}
		b.pop(pops)
		b.push(1)
	case op == 0xd0: // ref.null
		if err := refType(r); err != nil {
			return err
		}
		b.push(1)
	case op == 0xd1: // ref.is_null
		b.pop(1)
		b.push(1)
	case op == 0xd2: // ref.func
		if _, err := r.u32(); err != nil {
			return err
		}
		b.push(1)
	case op == opPrefixFC:
		c, err := b.prefixFC(at)
		if err != nil {
			return err
		}
		cost = c
	case op == 0xfd:
		return b.errorf(ErrUnsupported, at, "SIMD instruction")
	case op == 0xfe:
		return b.errorf(ErrUnsupported, at, "threads instruction")
	default:
		return b.errorf(ErrUnsupported, at, "opcode %#x", op)
	}

	b.values++
	if raw == nil {
		b.seg = append(b.seg, r.b[start:r.pos]...)
	}
	b.segCost += cost
	if endSegment {
		b.flush()
	}
	return nil
}

// prefixFC handles the 0xFC instructions: bulk memory and table operations
// (saturating truncations are floats). It appends the dynamic charge, not
// the instruction itself, and returns the static cost.
func (b *body) prefixFC(at int) (uint64, error) {
	r := b.r
	sub, err := r.u32()
	if err != nil {
		return 0, err
	}
	costs := b.m.cfg.Costs
	u32s := func(n int) error {
		for i := 0; i < n; i++ {
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		return nil
	}
	switch sub {
	case 0, 1, 2, 3, 4, 5, 6, 7:
		return 0, b.float(at, "trunc_sat")
	case 8: // memory.init data 0
		if err := u32s(1); err != nil {
			return 0, err
		}
		if err := b.zeroByte(at); err != nil {
			return 0, err
		}
		b.appendDynamicCharge(costs.BulkPerByte)
		b.pop(3)
	case 9: // data.drop
		b.changesState("data.drop")
		if err := u32s(1); err != nil {
			return 0, err
		}
	case 10: // memory.copy 0 0
		if err := b.zeroByte(at); err != nil {
			return 0, err
		}
		if err := b.zeroByte(at); err != nil {
			return 0, err
		}
		b.appendDynamicCharge(costs.BulkPerByte)
		b.pop(3)
	case 11: // memory.fill 0
		if err := b.zeroByte(at); err != nil {
			return 0, err
		}
		b.appendDynamicCharge(costs.BulkPerByte)
		b.pop(3)
	case 12: // table.init elem table
		b.changesState("table.init")
		if err := u32s(2); err != nil {
			return 0, err
		}
		b.appendDynamicCharge(costs.TablePerElem)
		b.pop(3)
	case 13: // elem.drop
		b.changesState("elem.drop")
		if err := u32s(1); err != nil {
			return 0, err
		}
	case 14: // table.copy dst src
		b.changesState("table.copy")
		if err := u32s(2); err != nil {
			return 0, err
		}
		b.appendDynamicCharge(costs.TablePerElem)
		b.pop(3)
	case 15: // table.grow
		b.changesState("table.grow")
		if err := u32s(1); err != nil {
			return 0, err
		}
		b.appendDynamicCharge(costs.TablePerElem)
		b.pop(2)
		b.push(1)
	case 16: // table.size
		if err := u32s(1); err != nil {
			return 0, err
		}
		b.push(1)
		return costs.Default, nil
	case 17: // table.fill
		b.changesState("table.fill")
		if err := u32s(1); err != nil {
			return 0, err
		}
		b.appendDynamicCharge(costs.TablePerElem)
		b.pop(3)
	default:
		return 0, b.errorf(ErrUnsupported, at, "opcode 0xfc %d", sub)
	}
	return costs.Bulk, nil
}

// numericPops returns how many operands an integer numeric instruction in
// 0x45..0xc4 pops (it pushes one); ok is false for float instructions.
func numericPops(op byte) (pops uint32, ok bool) {
	switch {
	case op == 0x45, op == 0x50: // eqz
		return 1, true
	case op >= 0x46 && op <= 0x4f, op >= 0x51 && op <= 0x5a: // comparisons
		return 2, true
	case op >= 0x67 && op <= 0x69, op >= 0x79 && op <= 0x7b: // clz ctz popcnt
		return 1, true
	case op >= 0x6a && op <= 0x78, op >= 0x7c && op <= 0x8a: // binary
		return 2, true
	case op == 0xa7, op == 0xac, op == 0xad: // wrap, extend
		return 1, true
	case op >= 0xc0 && op <= 0xc4: // sign extension
		return 1, true
	}
	return 0, false
}

var memOpName = map[byte]string{0x2a: "f32.load", 0x2b: "f64.load", 0x38: "f32.store", 0x39: "f64.store"}
