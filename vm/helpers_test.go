package vm

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

// mapStore is a Store: a protocol.State is one.
type mapStore = protocol.State

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := NewEngine(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func deployTestdata(t testing.TB, e *Engine, name string) *Module {
	t.Helper()
	m, err := e.Deploy(context.Background(), testdata(t, name))
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return m
}

func addr(b byte) protocol.Address {
	var a protocol.Address
	for i := range a {
		a[i] = b
	}
	return a
}

// script builds the input of abi.wasm's "run" entry: up to maxCmds
// commands of 21 bytes, then data the commands point at. The input is
// copied to guest address inputBase.
type script struct {
	cmds []byte
	data []byte
}

const (
	inputBase = 4096
	maxCmds   = 32
	dataBase  = inputBase + maxCmds*21
	scratch   = 20000 // free guest memory for res_get destinations
	outBase   = 32768 // where run appends host results
)

// Ops of the "run" interpreter.
const (
	opEnd = iota
	opInputRead
	opSender
	opHeight
	opTimestamp
	opResGet
	opResPut
	opResDel
	opEmit
	opOutput
	opFlush
	opAbort
)

func (s *script) op(op byte, args ...uint32) *script {
	var c [21]byte
	c[0] = op
	for i, a := range args {
		binary.LittleEndian.PutUint32(c[1+4*i:], a)
	}
	s.cmds = append(s.cmds, c[:]...)
	return s
}

// ptr stores b in the data area and returns its guest address.
func (s *script) ptr(b []byte) uint32 {
	p := uint32(dataBase + len(s.data))
	s.data = append(s.data, b...)
	return p
}

func (s *script) put(a protocol.Address, typ string, val []byte) *script {
	return s.op(opResPut, s.ptr(a[:]), s.ptr([]byte(typ)), uint32(len(typ)), s.ptr(val), uint32(len(val)))
}

func (s *script) get(a protocol.Address, typ string, dst, capacity uint32) *script {
	return s.op(opResGet, s.ptr(a[:]), s.ptr([]byte(typ)), uint32(len(typ)), dst, capacity)
}

func (s *script) del(a protocol.Address, typ string) *script {
	return s.op(opResDel, s.ptr(a[:]), s.ptr([]byte(typ)), uint32(len(typ)))
}

func (s *script) emit(typ string, data []byte) *script {
	return s.op(opEmit, s.ptr([]byte(typ)), uint32(len(typ)), s.ptr(data), uint32(len(data)))
}

func (s *script) abort(code uint32, msg string) *script {
	return s.op(opAbort, code, s.ptr([]byte(msg)), uint32(len(msg)))
}

func (s *script) flush() *script { return s.op(opFlush) }

func (s *script) bytes() []byte {
	if len(s.cmds) > maxCmds*21 {
		panic("script too long")
	}
	out := make([]byte, maxCmds*21, maxCmds*21+len(s.data))
	copy(out, s.cmds)
	return append(out, s.data...)
}

// resultBytes is a canonical encoding of everything in a Result, for
// byte-for-byte comparisons.
func resultBytes(r Result) []byte {
	e := protocol.NewEncoder(64)
	e.U8(uint8(r.Status))
	e.U32(r.AbortCode)
	e.String(r.Message)
	e.U64(r.GasUsed)
	r.ChangeSet.Encode(e)
	protocol.EncodeEvents(e, r.Events)
	e.Bool(r.Output != nil)
	e.Bytes(r.Output)
	return e.Out()
}

func u32le(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func mustContract(t testing.TB, name string) []byte {
	t.Helper()
	c, err := contracts.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return c.Wasm
}
